"""Reading checkpoint files safely and writing our own atomically."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..files import atomic_write

FORMAT_TAG = "modernconv"
_WRAPPER_KEYS = ("model", "state_dict", "model_state", "module")
_PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: str | os.PathLike, use_ema: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors, .pth, .pt or .bin file, or of a folder holding one (a Hugging
    Face ``save_pretrained`` folder: its ``config.json`` labels become ``class_names``), with wrappers and
    prefixes stripped. A training checkpoint with EMA weights (timm's ``state_dict_ema``) gives those unless
    ``use_ema`` is False, as timm does; ``metadata["chosen_weights"]`` then says which were read.

    Pickles are read with ``weights_only=True``: a file that needs code to unpickle is refused.
    """
    folder_meta: dict[str, str] = {}
    if Path(path).is_dir():
        path, folder_meta = _folder_weights(Path(path))
    path = _existing(path)
    if _is_safetensors(path):
        with _open_safetensors(path) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return strip_wrappers(tensors, path), {**folder_meta, **metadata}
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # training scripts save their args
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = re.search(r"GLOBAL (\S+)", str(e))  # "Unsupported global: GLOBAL x.y", "unsupported GLOBAL x.y whose..."
        if code:
            raise CheckpointError(f"{path}: refused to unpickle {code[1]}: only tensors and plain containers are "
                                  "loaded (weights_only=True); re-save the weights from trusted code") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt pickle)") from None
    except Exception as e:  # noqa: BLE001  (garbage can break the unpickler in any way; code is never run)
        reason = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    obj, chosen = _choose_weights(obj, use_ema)
    return strip_wrappers(obj, path), {**folder_meta, **({"chosen_weights": chosen} if chosen else {})}


_EMA_KEYS = ("state_dict_ema", "model_ema")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth")  # in a folder, the first present is read


MAX_CONFIG_BYTES = 16 * 2**20


def _choose_weights(obj: Any, use_ema: bool) -> tuple[Any, str | None]:
    """A training checkpoint's EMA weights (when it has them and ``use_ema``) or its plain ones, and which."""
    if not isinstance(obj, Mapping) or not any(isinstance(obj.get(k), Mapping) for k in _EMA_KEYS):
        return obj, None
    if use_ema:
        key = next(k for k in _EMA_KEYS if isinstance(obj.get(k), Mapping))
        return obj[key], f"the EMA weights ({key}; --no-ema for the plain ones)"
    plain = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
    return (obj[plain], f"the plain weights ({plain}), not the EMA ones") if plain else (obj, None)


def _folder_weights(folder: Path) -> tuple[Path, dict[str, str]]:
    """The weights file of a model folder, and the class names its config.json gives (Hugging Face's
    ``id2label``, when they are not the LABEL_i placeholders)."""
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder} is a folder without a weights file (looked for {', '.join(WEIGHT_FILES)})")
    meta: dict[str, str] = {}
    config = folder / "config.json"
    if config.is_file():
        if config.stat().st_size > MAX_CONFIG_BYTES:  # a model's config is kilobytes; ImageNet-22k's labels ~1 MB
            raise CheckpointError(f"{config} is {config.stat().st_size / 2**20:.0f} MB; a model's config.json holds "
                                  f"at most {MAX_CONFIG_BYTES // 2**20} MB")
        try:
            labels = json.loads(config.read_text()).get("id2label") or {}
            names = [labels[k] for k in sorted(labels, key=int)]
        except (json.JSONDecodeError, ValueError, AttributeError, TypeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{config}: unreadable config ({e})") from None
        if names and not all(re.fullmatch(r"LABEL_\d+", str(n)) for n in names):
            meta["class_names"] = json.dumps([str(n) for n in names])
    return weights, meta


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A checkpoint's metadata alone, without reading its tensors (safetensors carry it; pickles carry none)."""
    if Path(path).is_dir():
        path = _folder_weights(Path(path))[0]
    path = _existing(path)
    if not _is_safetensors(path):
        return {}
    with _open_safetensors(path) as f:
        return dict(f.metadata() or {})


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    return path


@contextlib.contextmanager
def _open_safetensors(path: Path) -> Iterator[Any]:
    """``safe_open`` with any read failure turned into one CheckpointError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from None


def _is_safetensors(path: Path) -> bool:
    """Safetensors files start with an 8-byte little-endian header length followed by a JSON object."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def strip_wrappers(obj: Any, source: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap {"model": ...}-style containers and drop DDP / torch.compile name prefixes."""
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise CheckpointError(f"{source}: no state dict found (top-level keys: {sorted(map(str, obj))[:8]})")
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: does not hold a state dict of tensors")
    out = {}
    for key, value in obj.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def save_checkpoint(model_or_state: torch.nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Write weights as safetensors atomically (temp file + rename), tagged with the model name and options.

    A model's ``model_name``, JSON-serialisable ``model_kwargs`` and ``structure`` (pruned stages, a backbone's
    outputs) are stored so the file can rebuild it, and its ``data_config`` and ``class_names`` (those of a model
    read back by ``load_model``) so it keeps its preprocessing and classes; ``metadata`` entries win.
    """
    meta: dict[str, str] = {"format": FORMAT_TAG}
    if isinstance(model_or_state, torch.nn.Module):
        state = model_or_state.state_dict()
        if hasattr(model_or_state, "model_name"):
            meta["model"] = model_or_state.model_name
        kwargs = getattr(model_or_state, "model_kwargs", {})
        meta["model_kwargs"] = json.dumps({k: v for k, v in kwargs.items() if _jsonable(v)})
        structure = getattr(model_or_state, "structure", None)
        if structure:  # a pruned model or a features_only backbone: rebuilt as such
            meta["structure"] = json.dumps(structure)
        if hasattr(model_or_state, "data_config"):
            meta.update(model_or_state.data_config.to_metadata())
        if getattr(model_or_state, "class_names", None):
            meta["class_names"] = json.dumps(list(model_or_state.class_names))
    else:
        state = dict(model_or_state)
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False
