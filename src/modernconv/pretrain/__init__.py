"""FCMAE masked-autoencoder pre-training (ConvNeXt V2): the model, its masking and sparse execution, and the
reconstruction previews; the task the training loop runs is ``modernconv.tasks.fcmae``."""
from .fcmae import FCMAE, FCMAEDecoder, FCMAEOutput

__all__ = ["FCMAE", "FCMAEDecoder", "FCMAEOutput"]
