"""Structural re-parameterisation: turn a train-form model into its deploy form with the same eval outputs.

Protocol: a module with a deploy form has a ``reparameterize()`` method that converts it in place (its own
sub-modules included) and is idempotent; a model with a deploy form has a ``deploy`` attribute (and accepts
``deploy=True`` to build that form directly).
"""
from __future__ import annotations

import copy
from itertools import chain
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def reparameterize(model: M, inplace: bool = False) -> M:
    """The deploy form of ``model`` (a copy unless ``inplace``): identical outputs in eval mode.

    The fusion maths runs in float64 and each tensor is cast back to its original dtype once, so float32,
    float64 and bfloat16 models convert equally well. Running it on a deploy-form model changes nothing.
    """
    if not inplace:
        model = copy.deepcopy(model)
    dtypes = {name: t.dtype for name, t in _tensors(model) if t.is_floating_point()}
    with torch.no_grad():
        model.to(torch.float64)
        _reparameterize_outermost(model)
        _restore_dtypes(model, dtypes)
    if hasattr(model, "deploy"):
        model.deploy = True
        if hasattr(model, "model_kwargs"):
            model.model_kwargs = {**model.model_kwargs, "deploy": True}
    return model


def _reparameterize_outermost(module: nn.Module) -> None:
    if hasattr(module, "reparameterize"):
        module.reparameterize()
        return
    for child in module.children():
        _reparameterize_outermost(child)


def _tensors(model: nn.Module):
    return chain(model.named_parameters(), model.named_buffers())


def _restore_dtypes(model: nn.Module, dtypes: dict[str, torch.dtype]) -> None:
    """Cast every floating tensor back to its recorded dtype; a new one (e.g. a created bias) takes the dtype
    its module's weight had."""
    fallback = next(iter(dtypes.values()), torch.float32)
    for name, tensor in _tensors(model):
        if tensor.is_floating_point():
            sibling = name.rsplit(".", 1)[0] + ".weight"
            tensor.data = tensor.data.to(dtypes.get(name, dtypes.get(sibling, fallback)))
