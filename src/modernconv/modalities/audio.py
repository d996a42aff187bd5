"""Audio as an image: a waveform becomes a 1 x mel x frame log-mel spectrogram (UniRepLKNet on Speech Commands:
128 mel bins x 128 frames, 25 ms windows, 10 ms hop, 16 kHz), with SpecAugment's frequency and time masks as
the training augmentation.

The spectrogram is computed in the model's adapter, batched with ``torch.stft`` on whatever device the model
runs on; the mel filter bank is librosa's (HTK mel scale, unnormalised triangles, as Kaldi's fbank used by AST
and the paper). Files are read with soundfile and resampled with librosa (soxr) when their rate differs."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, UnreadableFileError
from .speech import spoken_digits
from ..data.preprocessing import MAX_SIDE
from .spec import ModalitySpec, at_most, positive, require

LOG_FLOOR = 1e-6  # added to the mel energies before the log: silence reads log(1e-6)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_AMPLITUDE = 1e6  # beyond any audio (float files saved unscaled reach 32768); above it a file is refused


@dataclass(frozen=True)
class AudioOptions:
    """Log-mel settings (the paper's defaults) and SpecAugment's mask widths (0 turns a mask off)."""

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_mels: int = 128
    frames: int = 128
    window_ms: float = 25.0
    hop_ms: float = 10.0
    freq_mask: int = 24
    time_mask: int = 24
    masks: int = 2

    def __post_init__(self) -> None:
        positive("audio sample_rate, clip_seconds, n_mels, frames, window_ms and hop_ms", self.sample_rate,
                 self.clip_seconds, self.n_mels, self.frames, self.window_ms, self.hop_ms)
        if min(self.freq_mask, self.time_mask, self.masks) < 0:
            raise ConfigError("audio freq_mask, time_mask and masks must be >= 0")
        window, hop = self.sample_rate * self.window_ms / 1000, self.sample_rate * self.hop_ms / 1000
        if window < 2 or hop < 1 or self.clip_samples < window:
            raise ConfigError(f"audio window_ms {self.window_ms:g} and hop_ms {self.hop_ms:g} give {window:.3g} and "
                              f"{hop:.3g} samples at {self.sample_rate} Hz: a window needs 2 samples, a hop 1, and "
                              f"the clip ({self.clip_seconds:g} s) a window")
        at_most("audio n_mels", self.n_mels, 1024)
        at_most("audio frames", self.frames, MAX_SIDE)
        at_most("audio clip_seconds", self.clip_seconds, 3600)

    @property
    def clip_samples(self) -> int:
        return round(self.sample_rate * self.clip_seconds)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One clip: (samples,)."""
        return (self.clip_samples,)


class LogMel(nn.Module):
    """(B, S) or (B, 1, S) waveforms -> (B, 1, n_mels, frames) log-mel maps, row 0 the lowest band, each map
    standardised to zero mean and unit variance; shorter clips are padded with silence, longer ones cut."""

    def __init__(self, opts: AudioOptions) -> None:
        super().__init__()
        librosa = require("librosa", "the audio adapter")
        self.opts = opts
        self.win = round(opts.sample_rate * opts.window_ms / 1000)
        self.hop = round(opts.sample_rate * opts.hop_ms / 1000)
        self.n_fft = 2 ** math.ceil(math.log2(self.win))
        bank = librosa.filters.mel(sr=opts.sample_rate, n_fft=self.n_fft, n_mels=opts.n_mels, htk=True, norm=None)
        self.register_buffer("filters", torch.from_numpy(bank).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim == 3:
            wave = wave.squeeze(1)
        power = torch.stft(wave.float(), self.n_fft, self.hop, self.win, self.window, center=True,
                           return_complex=True).abs().pow(2)
        logmel = torch.log(self.filters @ power + LOG_FLOOR)[..., :self.opts.frames]
        logmel = F.pad(logmel, (0, self.opts.frames - logmel.shape[-1]), value=math.log(LOG_FLOOR))
        mean = logmel.mean((1, 2), keepdim=True)
        std = logmel.std((1, 2), keepdim=True)
        return ((logmel - mean) / (std + 1e-5)).unsqueeze(1)


def band_masks(batch: int, size: int, width: int, count: int, device: torch.device) -> torch.Tensor:
    """(batch, size) booleans: ``count`` random bands per row, each of a width drawn from 0..width."""
    positions = torch.arange(size, device=device)
    masked = torch.zeros(batch, size, dtype=torch.bool, device=device)
    for _ in range(count):
        widths = torch.randint(0, width + 1, (batch, 1), device=device)
        starts = (torch.rand(batch, 1, device=device) * (size - widths + 1)).floor()
        masked |= (positions >= starts) & (positions < starts + widths)
    return masked


class SpecAugment(nn.Module):
    """SpecAugment's frequency and time masks (set to 0, the standardised mean), in training mode only."""

    def __init__(self, opts: AudioOptions) -> None:
        super().__init__()
        self.opts = opts

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.opts.masks:
            return spec
        b, _, n_mels, frames = spec.shape
        freq = band_masks(b, n_mels, min(self.opts.freq_mask, n_mels), self.opts.masks, spec.device)
        time = band_masks(b, frames, min(self.opts.time_mask, frames), self.opts.masks, spec.device)
        keep = ~(freq[:, None, :, None] | time[:, None, None, :])
        return spec * keep


def audio_adapter(opts: AudioOptions) -> nn.Module:
    return nn.Sequential(LogMel(opts), SpecAugment(opts))


def fit_clip(wave: np.ndarray, length: int, train: bool = False) -> torch.Tensor:
    """A mono float32 clip of exactly ``length`` samples: zero-padded at the end, or cut from a longer wave
    (its start; a random stretch while training)."""
    start = np.random.randint(len(wave) - length + 1) if train and len(wave) > length else 0
    clip = np.zeros(length, dtype=np.float32)
    part = wave[start:start + length]
    clip[:len(part)] = part
    return torch.from_numpy(clip)


def read_audio(path: str, opts: AudioOptions, train: bool = False) -> torch.Tensor:
    """One file as a mono clip at the options' rate and length."""
    soundfile = require("soundfile", "reading audio")
    try:
        wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise UnreadableFileError(f"cannot read audio {path} ({e})") from None
    if not len(wave):
        raise UnreadableFileError(f"audio {path} holds no samples")
    loudest = float(np.abs(wave).max())  # NaN, inf or 1e30 would reach the log-mel as NaN predictions
    if not math.isfinite(loudest):
        raise UnreadableFileError(f"audio {path} holds NaN or infinite samples")
    if loudest > MAX_AMPLITUDE:
        raise UnreadableFileError(f"audio {path} holds samples of amplitude {loudest:.3g} (audio lies within -1..1)")
    wave = wave.mean(1)
    if rate != opts.sample_rate:
        wave = require("librosa", "resampling audio").resample(wave, orig_sr=rate, target_sr=opts.sample_rate)
    if len(wave) > opts.clip_samples:  # said once (the message names no file: Python shows it once)
        warnings.warn(f"audio longer than clip_seconds ({opts.clip_seconds:g} s) is cut to that: its start, or a "
                      "random stretch in training; set the audio option clip_seconds to keep more", stacklevel=2)
    return fit_clip(wave, opts.clip_samples, train)


AUDIO = ModalitySpec("audio", 1, AudioOptions, audio_adapter, read_audio, AUDIO_EXTENSIONS,
                     {"spoken-digits": spoken_digits}, samples="clips")
