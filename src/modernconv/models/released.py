"""Known released weights: ``name.tag`` -> the file, where it is published, its licence, its class count and the
preprocessing it was evaluated with (``released_weights.csv``, generated from timm's and torchvision's own
descriptions by ``benchmarks/make_released_weights.py``).

Nothing is downloaded. ``create_model("convnextv2_tiny.fcmae_ft_in1k", pretrained=True)`` looks for the file in
the weights cache (``$MODERNCONV_CACHE``, else ``~/.cache/modernconv``), under its published name or as
``NAME.TAG.safetensors`` or ``NAME.TAG/model.safetensors`` (a Hugging Face snapshot), and checks its sha256:
against the published hash where the publisher names one (torchvision's file names carry its first 8 hex digits),
otherwise against the hash recorded at its first use (``hashes.json`` in the cache; the first use prints it so it
can be compared with the publisher's). A hash is recorded only once the file has loaded strictly as that release
(every key and shape, the release's classifier), so another file under its name is refused and leaves no record;
a read-only cache is checked that way at each use, without a record."""
from __future__ import annotations

import csv
import fnmatch
import functools
import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import fit_state_dict, read_checkpoint
from ..checkpoint.load import CLASSIFIER_PREFIX, CLASSIFIER_WEIGHTS, check_values, is_encoder_only
from ..data.preprocessing import DataConfig
from ..errors import CheckpointError, ConfigError, ModelNotFoundError
from ..files import atomic_write_text

TABLE = Path(__file__).with_name("released_weights.csv")
CACHE_ENV = "MODERNCONV_CACHE"
HASHES = "hashes.json"
HUB_FILE = "model.safetensors"
SHA256 = re.compile(r"[0-9a-f]{64}")
JSON_KINDS = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


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
    """The file's sha256, checked against the published hash, or the one recorded at first use. With neither, the
    file must load strictly as the release (``check_is_release``) before its hash is recorded, with a warning that
    shows it; a cache that cannot be written is not recorded in, and a warning says so."""
    digest = sha256_of(path)
    if release.sha256:
        if not digest.startswith(release.sha256):
            raise CheckpointError(f"{path}: sha256 {digest[:16]}... is not the published {release.sha256}...; the "
                                  f"file is not {release.key} as released (or is damaged)")
        return digest
    record = cache / HASHES
    hashes = read_hashes(record)
    known = hashes.get(release.key)
    if known is None:
        check_is_release(path, release)
        try:
            atomic_write_text(record, json.dumps({**hashes, release.key: digest}, indent=1, sort_keys=True))
        except OSError as e:
            warnings.warn(f"{release.key}: {path.name} has sha256 {digest}, not recorded: {cache} is not writable "
                          f"({e.strerror or e}), so the file is checked afresh at each use; compare it with "
                          f"{release.source}", stacklevel=3)
        else:
            warnings.warn(f"{release.key}: first use of {path.name}, sha256 {digest} (recorded in {record}; compare "
                          f"it with {release.source})", stacklevel=3)
    elif known != digest:
        raise CheckpointError(f"{path}: sha256 {digest[:16]}... differs from {known[:16]}... recorded at its first "
                              f"use ({record}); the file changed")
    return digest


def read_hashes(record: Path) -> dict[str, str]:
    """The hashes recorded in ``record`` (``{name.tag: sha256}``; none if it does not exist); one line saying what
    is wrong with a file of another shape."""
    if not record.exists():
        return {}
    try:
        hashes = json.loads(record.read_bytes().decode("utf-8"))
    except IsADirectoryError:
        raise _malformed(record, "is a folder, not a file") from None
    except OSError as e:
        raise _malformed(record, f"cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise _malformed(record, "is not text (not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise _malformed(record, f"is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(hashes, dict):
        kind = JSON_KINDS.get(type(hashes), type(hashes).__name__)
        raise _malformed(record, f'holds a JSON {kind}, not an object {{"name.tag": "sha256", ...}}')
    bad = next((k for k, v in hashes.items() if not (isinstance(v, str) and SHA256.fullmatch(v))), None)
    if bad is not None:
        raise _malformed(record, f"records {json.dumps(hashes[bad])} for {bad}, not a sha256 (64 hex digits)")
    return hashes


def _malformed(record: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{record} {problem}; delete it to record each release's hash afresh at its next use")


def check_is_release(path: Path, release: Released) -> None:
    """Refuse, in one line, a file that does not load strictly into ``release``'s model: every key and shape
    (the stem too, never adapted), the release's classifier (none for an encoder release), finite values."""
    from .registry import create_model  # the registry imports this module

    with torch.device("meta"):  # shapes only: nothing is allocated
        target = create_model(release.name, num_classes=release.num_classes).state_dict()
    source, _ = read_checkpoint(path)
    fitted, report = fit_state_dict(source, target, in_chans=0)  # a stem of other channels: mis-shaped, not adapted
    check_values(fitted, target, os.fspath(path))
    if report.clean or (release.num_classes == 0 and is_encoder_only(report)):
        return
    differing = report.missing + report.unexpected + [m.split(":")[0] for m in report.mismatched]
    if all(k.startswith(CLASSIFIER_PREFIX) for k in differing):
        classes = next((v.shape[0] for k, v in source.items() if v.dim() == 2 and k.endswith(CLASSIFIER_WEIGHTS)), 0)
        why = f"holds {_classifier(classes)} where {release.key} has {_classifier(release.num_classes)}"
    else:
        why = f"does not fit {release.key} (checkpoint layout: {report.source_format}): {report.problems()}"
    raise CheckpointError(f"{path} {why}; it is not that release's file: put {release.file} from {release.source} "
                          "there (no hash was recorded)")


def _classifier(classes: int) -> str:
    return f"a classifier of {classes} classes" if classes else "no classifier"


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
