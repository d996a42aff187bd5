"""Reading one image file into the channel layout a model expects, with a clear error for a bad file."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import UnreadableFileError

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def base_mode(in_chans: int) -> str:
    """The PIL mode images are decoded to: "L" for one channel, "RGB" for any other count.

    Counts other than 1 and 3 are reached later by repeating or truncating the RGB channels
    (see ``transforms.MatchChannels``), after the colour augmentations that need RGB."""
    return "L" if in_chans == 1 else "RGB"


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert grayscale, 16-bit, RGBA, palette or CMYK images to ``mode`` ("L" or "RGB").

    Transparency is dropped; 16-bit images are scaled to 8 bits rather than clipped."""
    if img.mode in SIXTEEN_BIT_MODES:
        img = Image.fromarray((np.asarray(img, dtype=np.uint32) // 257).clip(0, 255).astype(np.uint8))
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert(mode)  # a copy even when the mode already matches


def read_image(path: str, in_chans: int) -> Image.Image:
    """Decode ``path`` fully (so truncated files fail here, not later) in ``base_mode(in_chans)``."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_mode(img, base_mode(in_chans))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableFileError(f"cannot read image {path} ({err})") from None
