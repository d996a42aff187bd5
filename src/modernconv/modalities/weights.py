"""Loading weights into a modality model: its own checkpoints (adapter + network), or an image checkpoint of
any supported layout into its network alone (fine-tuning ImageNet weights on another modality; the stem's
input channels are adapted as for any ``in_chans``)."""
from __future__ import annotations

import os

from ..checkpoint import LoadReport, load_tensors, read_checkpoint
from ..errors import CheckpointError
from .spec import ModalityModel

ADAPTER, NETWORK = "adapter.", "model."


def load_modality_checkpoint(model: ModalityModel, path: str | os.PathLike, strict: bool = True,
                             require_head: bool = False) -> LoadReport:
    """Load ``path`` into ``model``: a modality checkpoint fills the adapter and the network; any other into
    the network (the adapter keeps its initialisation; ``require_head`` refuses that when the adapter learns)."""
    source, metadata = read_checkpoint(path)
    if any(k.startswith(NETWORK) for k in source):
        adapter = {k[len(ADAPTER):]: v for k, v in source.items() if k.startswith(ADAPTER)}
        network = {k[len(NETWORK):]: v for k, v in source.items() if k.startswith(NETWORK)}
        try:
            model.adapter.load_state_dict(adapter, strict=True)
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            raise CheckpointError(f"{path}: its {model.modality} adapter does not fit ({reason})") from None
    else:
        network = source
        if require_head and any(True for _ in model.adapter.parameters()):
            raise CheckpointError(f"{path} holds no {model.modality} adapter weights; fine-tune it first "
                                  "(modernconv train --init)")
    return load_tensors(model.model, network, metadata, path, strict, require_head)
