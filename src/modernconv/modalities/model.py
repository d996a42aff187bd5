"""The model of a non-image modality: its adapter in front of any registered network (UniRepLKNet's universal
perception: only the stem's input channels change), and how it loads weights (its own checkpoints fill adapter
and network; any image checkpoint fills the network, whose first conv adapts to C' channels)."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..checkpoint import LoadReport, load_tensors
from ..checkpoint.load import MODALITY_PARTS
from ..data.preprocessing import DataConfig
from ..errors import CheckpointError
from ..models.base import ModelWrapper

ADAPTER, NETWORK = MODALITY_PARTS  # the attributes below: self.adapter, self.model


class ModalityModel(ModelWrapper):
    """``model(adapter(raw))``: a registered network (``.model``, its stem taking C' channels) behind a
    modality's adapter (``.adapter``: log-mel, frame tiling, multi-view projection or step embedding).

    The adapter's training-time augmentation (SpecAugment, point-cloud rotation/scale/jitter) runs only in
    training mode; its learned parameters (the time-series embedding) train with the network."""

    def __init__(self, adapter: nn.Module, model: nn.Module, modality: str, options: Any) -> None:
        super().__init__()
        self.adapter = adapter
        self.model = model
        self.modality = modality
        self.options = options

    @property
    def model_kwargs(self) -> dict:
        return self.model.model_kwargs

    @property
    def data_config(self) -> DataConfig:
        """The network's preprocessing (its C' x H x W maps come from the adapter, not from images)."""
        return self.model.data_config

    @data_config.setter
    def data_config(self, config: DataConfig) -> None:
        """A checkpoint's recorded preprocessing is its network's, so it is set there (as on any network)."""
        self.model.data_config = config

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one raw sample, as the modality's readers give it (what the adapter takes)."""
        return self.options.sample_shape

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model(self.adapter(raw))

    def load_tensors(self, source: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike,
                     strict: bool = True, require_head: bool = False) -> LoadReport:
        """``load_checkpoint``'s work for this model: a modality checkpoint fills the adapter and the network;
        any other the network (the adapter keeps its initialisation; ``require_head`` refuses that when the
        adapter learns)."""
        if any(k.startswith(NETWORK) for k in source):
            adapter = {k[len(ADAPTER):]: v for k, v in source.items() if k.startswith(ADAPTER)}
            network = {k[len(NETWORK):]: v for k, v in source.items() if k.startswith(NETWORK)}
            try:
                self.adapter.load_state_dict(adapter, strict=True)
            except RuntimeError as e:  # torch's first line only says "Error(s) in loading state_dict for ...:"
                details = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
                reason = details[0] if details else str(e).strip()
                raise CheckpointError(f"{path}: its {self.modality} adapter does not fit ({reason})") from None
        else:
            network = source
            if require_head and any(True for _ in self.adapter.parameters()):
                raise CheckpointError(f"{path} holds no {self.modality} adapter weights; fine-tune it first "
                                      "(modernconv train --init)")
        return load_tensors(self.model, network, metadata, path, strict, require_head)
