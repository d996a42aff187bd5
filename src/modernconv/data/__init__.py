"""Data: the built-in digits, a synthetic set and image folders, labelled or not; the preprocessing a model
expects; train/eval transforms; MixUp/CutMix; deterministic loaders.

Channels: images are decoded as grayscale ("L") for a 1-channel model and RGB otherwise (grayscale, RGBA,
palette, CMYK and 16-bit files are converted; transparency is dropped). The transforms output ``len(mean)``
channels, repeating or truncating the decoded ones cyclically (gray -> RGB replicates; RGB -> 4 channels is
R, G, B, R), so other ``in_chans`` work with colour augmentation intact."""
from ..errors import DataError
from .datasets import DataSplit, build_datasets, build_split, build_unlabelled
from .images import read_image
from .loader import batches_per_epoch, build_loader
from .mixing import BatchMixer, build_mixing, smooth_one_hot, soft_target_cross_entropy
from .preprocessing import DataConfig
from .transforms import MatchChannels, eval_transform, train_transform

__all__ = ["BatchMixer", "DataConfig", "DataError", "DataSplit", "MatchChannels", "batches_per_epoch",
           "build_datasets", "build_loader", "build_mixing", "build_split", "build_unlabelled", "eval_transform",
           "read_image", "smooth_one_hot", "soft_target_cross_entropy", "train_transform"]
