"""Known released weights: ``name.tag`` -> the file, where it is published, its licence, its class count and the
preprocessing it was evaluated with (``released_weights.csv``, generated from timm's and torchvision's own
descriptions by ``benchmarks/make_released_weights.py``).

Nothing is downloaded. ``create_model("convnextv2_tiny.fcmae_ft_in1k", pretrained=True)`` looks for the file in
the weights cache (``$MODERNCONV_CACHE``, else ``~/.cache/modernconv``), under its published name or as
``NAME.TAG.safetensors`` or ``NAME.TAG/model.safetensors`` (a Hugging Face snapshot), and checks its sha256:
against the published hash where the publisher names one (torchvision's file names carry its first 8 hex digits),
otherwise against the hash recorded the first time the file was used (``hashes.json`` in the cache; the first use
prints it so it can be compared with the publisher's)."""
from __future__ import annotations

import csv
import fnmatch
import functools
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..data.preprocessing import DataConfig
from ..errors import CheckpointError, ConfigError, ModelNotFoundError
from ..files import atomic_write_text

TABLE = Path(__file__).with_name("released_weights.csv")
CACHE_ENV = "MODERNCONV_CACHE"
HASHES = "hashes.json"
HUB_FILE = "model.safetensors"


@dataclass(frozen=True)
class Released:
    """One released weights file of model ``name``."""

    name: str
    tag: str
    file: str
    source: str
    license: str
    num_classes: int
    input_size: tuple[int, ...]
    test_input_size: tuple[int, ...]
    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sha256: str  # the published hash or its prefix; "" when the publisher gives none

    @property
    def key(self) -> str:
        return f"{self.name}.{self.tag}"

    @property
    def noncommercial(self) -> bool:
        return "nc" in self.license.split("-") or "noncommercial" in self.license

    @property
    def data_config(self) -> DataConfig:
        """The preprocessing the weights were evaluated with."""
        return DataConfig(self.input_size, self.mean, self.std, self.crop_pct, self.interpolation)


def _numbers(text: str, kind: type) -> tuple:
    return tuple(kind(v) for v in text.split())


@functools.cache
def released_weights() -> dict[str, Released]:
    """Every known release, keyed ``name.tag``, in the table's order (each name's first tag is its default)."""
    with TABLE.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {f"{r['name']}.{r['tag']}": Released(
        r["name"], r["tag"], r["file"], r["source"], r["license"], int(r["num_classes"]),
        _numbers(r["input_size"], int), _numbers(r["test_input_size"], int), float(r["crop_pct"]),
        r["interpolation"], _numbers(r["mean"], float), _numbers(r["std"], float), r["sha256"]) for r in rows}


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted ``name.tag`` of the known releases matching ``pattern`` (fnmatch wildcards)."""
    return sorted(k for k in released_weights() if fnmatch.fnmatchcase(k, pattern))


def split_tag(name: str) -> tuple[str, str | None]:
    """"convnextv2_atto.fcmae_ft_in1k" -> ("convnextv2_atto", "fcmae_ft_in1k"); a plain name has no tag."""
    base, _, tag = name.partition(".")
    return base, tag or None


def find_released(name: str, tag: str | None = None) -> Released:
    """The release ``name.tag`` (the name's default release when ``tag`` is None)."""
    known = [r for r in released_weights().values() if r.name == name]
    if not known:
        raise ConfigError(f"no released weights are known for {name}; give the file: pretrained=PATH")
    if tag is None:
        return known[0]
    for release in known:
        if release.tag == tag:
            return release
    raise ModelNotFoundError(f"unknown release {name}.{tag}; {name} has: {', '.join(r.tag for r in known)}")


def cache_dir() -> Path:
    """Where released weights are looked for: $MODERNCONV_CACHE, else ~/.cache/modernconv."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "modernconv")


def candidates(release: Released, cache: Path) -> list[Path]:
    """The paths a release's file may have in ``cache``."""
    found = [cache / f"{release.key}.safetensors", cache / release.key / HUB_FILE]
    if release.file != HUB_FILE:
        found[:0] = [cache / release.file, cache / release.key / release.file]
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, release: Released, cache: Path) -> str:
    """The file's sha256, checked against the published hash, or the one recorded at first use (recorded now,
    with a warning that shows it, when there is none)."""
    digest = sha256_of(path)
    if release.sha256:
        if not digest.startswith(release.sha256):
            raise CheckpointError(f"{path}: sha256 {digest[:16]}... is not the published {release.sha256}...; the "
                                  f"file is not {release.key} as released (or is damaged)")
        return digest
    record = cache / HASHES
    try:
        hashes = json.loads(record.read_text()) if record.is_file() else {}
    except json.JSONDecodeError:
        raise CheckpointError(f"{record} is corrupt; delete it to record the hashes afresh") from None
    known = hashes.get(release.key)
    if known is None:
        hashes[release.key] = digest
        atomic_write_text(record, json.dumps(hashes, indent=1, sort_keys=True))
        warnings.warn(f"{release.key}: first use of {path.name}, sha256 {digest} (recorded in {record}; compare it "
                      f"with {release.source})", stacklevel=3)
    elif known != digest:
        raise CheckpointError(f"{path}: sha256 {digest[:16]}... differs from {known[:16]}... recorded at its first "
                              f"use ({record}); the file changed")
    return digest


def locate(release: Released, cache: str | os.PathLike | None = None) -> Path:
    """The verified local file of ``release`` in ``cache`` (default ``cache_dir()``); one line saying where to
    put it when it is missing."""
    cache = Path(cache) if cache else cache_dir()
    path = next((p for p in candidates(release, cache) if p.is_file()), None)
    if path is None:
        note = f" (licence {release.license}: non-commercial use only)" if release.noncommercial else ""
        raise CheckpointError(f"{release.key} is not in the weights cache and nothing is downloaded: put "
                              f"{release.file} from {release.source} at {candidates(release, cache)[0]}{note} "
                              f"(cache: ${CACHE_ENV} or ~/.cache/modernconv)")
    verify(path, release, cache)
    return path
