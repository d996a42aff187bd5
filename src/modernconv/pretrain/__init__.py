"""FCMAE masked-autoencoder pre-training (ConvNeXt V2): the model and its sparse execution, and the task the
training loop runs (``modernconv.pretrain.loop.pretrain``)."""
from ..config import PretrainConfig
from .fcmae import FCMAE, FCMAEDecoder, FCMAEOutput

__all__ = ["FCMAE", "FCMAEDecoder", "FCMAEOutput", "PretrainConfig"]
