"""FCMAE masked-autoencoder pre-training (ConvNeXt V2): the model and its sparse execution, the run's config.

The run itself (it pulls in the training engine) is ``modernconv.pretrain.loop.pretrain``."""
from .config import PretrainConfig
from .fcmae import FCMAE, FCMAEDecoder, FCMAEOutput

__all__ = ["FCMAE", "FCMAEDecoder", "FCMAEOutput", "PretrainConfig"]
