"""The paper's input features: 123 numbers every 10 ms.

Section 4 of the paper: "The audio data was encoded using a Fourier-transform-based
filter-bank with 40 coefficients (plus energy) distributed on a mel-scale, together with their
first and second temporal derivatives. Each input vector was therefore size 123. The data were
normalised so that every element of the input vectors had zero mean and unit variance over the
training set."

Frames are 25 ms Hamming windows every 10 ms, centred, so frame ``t`` is centred on
``t * 10 ms``: a phone that spans ``[start, end)`` seconds covers the frames whose centres fall
in that span (:func:`frame_labels`). First derivatives use the regression formula over +-2
frames (HTK's, ``librosa.feature.delta(width=5)``); second derivatives are librosa's: the
second-order Savitzky-Golay derivative over the same five frames, not HTK's delta of the deltas.

``warp`` (keyword-only in :func:`filterbank` and :func:`fbank123`) is vocal-tract-length
perturbation (Jaitly & Hinton 2013, used by :mod:`asrlib.augment`): ``warp=1.0``, the default,
is the paper's features unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import librosa
import numpy as np

SAMPLE_RATE = 16_000
HOP_LENGTH = 160      # 10 ms
WIN_LENGTH = 400      # 25 ms
N_FFT = 512
N_MELS = 40
DELTA_WIDTH = 5       # regression over +-2 frames
NUM_FEATURES = 3 * (N_MELS + 1)  # 123
LOG_FLOOR = 1e-10
VTLP_BOUNDARY_HZ = 4800.0  # Jaitly & Hinton (2013)'s F_hi: below it the warp is f -> alpha f
IGNORE_INDEX = -100   # the label of a frame outside every phone: cross_entropy's ignore_index

# Names of the 123 dimensions, for plots: mel bands 0..39, energy, then the same for the
# first (d) and second (dd) derivatives.
FEATURE_NAMES = tuple(
    f"{prefix}{name}" for prefix in ("", "d ", "dd ") for name in [*(f"mel {m}" for m in range(N_MELS)), "energy"]
)


def pcm_to_float(pcm: np.ndarray) -> np.ndarray:
    """16-bit integer samples as float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


def num_frames(num_samples: int) -> int:
    """Frames of a signal of ``num_samples`` samples (centred frames, 10 ms hop)."""
    return 1 + num_samples // HOP_LENGTH


def filterbank(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *, warp: float = 1.0) -> np.ndarray:
    """Log mel filter-bank energies and log frame energy.

    Parameters
    ----------
    audio : ndarray, shape (N,)
        Mono audio at 16 kHz, float in [-1, 1].
    warp : float
        VTLP factor alpha (:func:`vtlp_warp`): the power at frequency ``f`` is counted by the mel
        filters as if it were at ``vtlp_warp(f, warp)``. ``1.0`` (the default) is no warp; the
        frame energy is never warped.

    Returns
    -------
    ndarray, shape (T, 41)
        40 log mel energies, then the log energy of the frame, ``T = num_frames(N)``.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono with shape (N,), got shape {audio.shape}")
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"features are defined at {SAMPLE_RATE} Hz, got audio at {sample_rate} Hz; resample first")
    if audio.size == 0:
        raise ValueError("audio is empty")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    if not (np.isfinite(warp) and warp > 0):
        raise ValueError(f"warp must be a positive finite factor, got {warp}")
    audio = audio.astype(np.float32, copy=False)
    power = (
        np.abs(
            librosa.stft(
                audio, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window="hamming",
                center=True, pad_mode="constant",
            )
        )
        ** 2
    )  # (1 + N_FFT/2, T)
    mel_basis = _mel_basis() if warp == 1.0 else _warped_mel_basis(warp)
    mel = mel_basis @ power
    energy = power.sum(axis=0, keepdims=True)
    return np.log(np.concatenate([mel, energy], axis=0) + LOG_FLOOR).T.astype(np.float32)


_MEL_BASIS: np.ndarray | None = None


def _mel_basis() -> np.ndarray:
    global _MEL_BASIS
    if _MEL_BASIS is None:
        _MEL_BASIS = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2)
    return _MEL_BASIS


def vtlp_warp(freqs: np.ndarray, alpha: float, boundary_hz: float = VTLP_BOUNDARY_HZ) -> np.ndarray:
    """Jaitly & Hinton (2013)'s piecewise-linear frequency warp, in Hz.

    ``f -> alpha f`` up to ``f0 = boundary_hz * min(alpha, 1) / alpha``, then the straight line
    from ``(f0, alpha f0)`` to the Nyquist frequency, which maps to itself, so the warped axis
    still covers exactly 0 .. 8 kHz. ``alpha > 1`` moves formants up (a shorter vocal tract).
    """
    nyquist = SAMPLE_RATE / 2
    freqs = np.asarray(freqs, dtype=np.float64)
    f0 = boundary_hz * min(alpha, 1.0) / alpha
    upper = nyquist - (nyquist - boundary_hz * min(alpha, 1.0)) / (nyquist - f0) * (nyquist - freqs)
    return np.where(freqs <= f0, alpha * freqs, upper)


def _warped_mel_basis(alpha: float) -> np.ndarray:
    """librosa's mel filters (Slaney scale and area normalisation) evaluated at the warped
    frequency of each FFT bin, as Kaldi's VTLN does. Written out because
    ``librosa.filters.mel`` takes no warp; with ``alpha = 1`` it equals librosa's basis."""
    freqs = vtlp_warp(librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT), alpha)  # (1 + N_FFT/2,)
    edges = librosa.mel_frequencies(N_MELS + 2, fmin=0.0, fmax=SAMPLE_RATE / 2)  # (N_MELS + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    return weights.astype(np.float32)  # (N_MELS, 1 + N_FFT/2)


def add_deltas(static: np.ndarray) -> np.ndarray:
    """Append first and second temporal derivatives: (T, D) -> (T, 3 D)."""
    d1 = librosa.feature.delta(static, width=DELTA_WIDTH, order=1, axis=0, mode="nearest")
    d2 = librosa.feature.delta(static, width=DELTA_WIDTH, order=2, axis=0, mode="nearest")
    return np.concatenate([static, d1, d2], axis=1).astype(np.float32)


def fbank123(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *, warp: float = 1.0) -> np.ndarray:
    """The paper's 123 inputs, before normalisation: shape (T, 123). ``warp``: see :func:`filterbank`."""
    return add_deltas(filterbank(audio, sample_rate, warp=warp))


def frame_labels(starts: np.ndarray, ends: np.ndarray, labels: np.ndarray, T: int) -> np.ndarray:
    """The label of every frame from phone boundaries in samples (at 16 kHz).

    Frame ``t`` takes the label of the phone that contains its centre, sample ``t * HOP_LENGTH``.
    Frames outside every phone (there are none when the phones tile the utterance) get
    :data:`IGNORE_INDEX`.
    """
    centres = np.arange(T) * HOP_LENGTH
    idx = np.searchsorted(np.asarray(ends), centres, side="right")
    out = np.full(T, IGNORE_INDEX, dtype=np.int64)
    inside = idx < len(ends)
    inside[inside] &= np.asarray(starts)[idx[inside]] <= centres[inside]
    out[inside] = np.asarray(labels)[idx[inside]]
    return out


@dataclass
class Normaliser:
    """Per-dimension mean and standard deviation, estimated on the training split only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: Iterable[np.ndarray]) -> Normaliser:
        """Statistics over all frames of ``features`` (each (T, F)), in one pass with float64
        sums, so that a corpus can stream its training split through it."""
        count, s1, s2 = 0, 0.0, 0.0
        for f in features:
            x = np.asarray(f, dtype=np.float64)
            count, s1, s2 = count + len(x), s1 + x.sum(axis=0), s2 + (x * x).sum(axis=0)
        if count == 0:
            raise ValueError("cannot fit a normaliser on no frames")
        mean = s1 / count
        std = np.sqrt(np.maximum(s2 / count - mean**2, 1e-12))
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if features.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"features have {features.shape[-1]} dimensions, the normaliser {self.mean.shape[0]}"
            )
        return ((features - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))
