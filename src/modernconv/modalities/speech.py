"""The built-in audio set: the spoken digits "zero" ... "nine", synthesised offline by eSpeak NG (the library and
its voice data come from the ``espeakng-loader`` wheel on PyPI, called through ctypes).

Each of 84 voices (7 English accents x 12 speaker variants) says each digit once, at a random speaking rate and
pitch, placed at a random moment of the clip over a little background noise. The held-out split is one voice in
five: its speakers are never heard in training, as in Speech Commands' speaker-disjoint split."""
from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np
import torch

from ..errors import ConfigError
from .generated import GeneratedSet
from .spec import require

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-US", "en-GB-scotland", "en-GB-x-rp", "en-029", "en-US-nyc", "en-GB-x-gbclan")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
VOICES = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)
HELD_OUT_EVERY = 5  # voices 0, 5, 10, ... are the held-out speakers
SYNCHRONOUS, POS_CHARACTER, RATE, PITCH = 2, 1, 1, 3  # espeak_AUDIO_OUTPUT, espeak_POSITION_TYPE, espeak_PARAMETER
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Speaker:
    """eSpeak NG in synchronous mode: ``say`` returns the samples of one utterance (one process-wide engine)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        loader = require("espeakng_loader", "the spoken-digits set")
        self.lib = ctypes.CDLL(loader.get_library_path())
        self.rate = self.lib.espeak_Initialize(SYNCHRONOUS, 0, loader.get_data_path().encode(), 0)
        if self.rate <= 0:
            raise ConfigError("eSpeak NG did not start (espeakng-loader's data folder is missing or unreadable)")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples: ctypes.Array, count: int, events: int) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        return 0

    def say(self, text: str, voice: str, words_per_minute: int, pitch: int) -> np.ndarray:
        """float32 samples in [-1, 1] at ``self.rate`` Hz."""
        with self._lock:
            self._chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"eSpeak NG has no voice {voice!r}")
            self.lib.espeak_SetParameter(RATE, words_per_minute, 0)
            self.lib.espeak_SetParameter(PITCH, pitch, 0)
            data = text.encode()
            self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, 0, None, None)
            self.lib.espeak_Synchronize()
            chunks = self._chunks
        return np.concatenate(chunks).astype(np.float32) / 32768 if chunks else np.zeros(0, np.float32)


@functools.cache
def speaker() -> Speaker:
    return Speaker()


@functools.lru_cache(maxsize=None)
def spoken_clip(index: int, rate: int, length: int) -> np.ndarray:
    """Sample ``index``: digit ``index % 10`` said by voice ``index // 10``, as a clip of ``length`` samples."""
    rng = np.random.default_rng([5, index])
    engine = speaker()
    voice = engine.say(DIGITS[index % 10], VOICES[index // 10], int(rng.integers(130, 220)), int(rng.integers(25, 75)))
    voice = require("librosa", "the spoken-digits set").resample(voice, orig_sr=engine.rate, target_sr=rate)[:length]
    clip = rng.normal(0, rng.uniform(0.001, 0.01), length).astype(np.float32)
    start = int(rng.integers(0, length - len(voice) + 1))
    clip[start:start + len(voice)] += voice * rng.uniform(0.5, 1.0)
    return clip


class SpokenDigits(GeneratedSet):
    """Clips (S,) at the options' rate and length, labelled 0..9."""

    classes = len(DIGITS)

    def sample(self, index: int, label: int) -> torch.Tensor:
        return torch.from_numpy(spoken_clip(index, self.opts.sample_rate, self.opts.clip_samples))


def spoken_digits(opts) -> tuple[SpokenDigits, SpokenDigits, list[str]]:
    """Train (67 voices) and held-out (17 other voices) splits."""
    indices = np.arange(len(VOICES) * len(DIGITS))
    held_out = (indices // 10) % HELD_OUT_EVERY == 0
    return SpokenDigits(opts, indices[~held_out]), SpokenDigits(opts, indices[held_out]), list(DIGITS)
