"""The 123 input features, checked against librosa's own routes and by hand."""

import librosa
import numpy as np
import pytest

from asrlib import features as F


@pytest.fixture
def chirp():
    t = np.arange(int(0.73 * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)


def test_shape_and_frame_count(chirp):
    feats = F.fbank123(chirp)
    assert feats.shape == (1 + len(chirp) // 160, 123) == (F.num_frames(len(chirp)), F.NUM_FEATURES)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()
    assert len(F.FEATURE_NAMES) == 123


def test_mel_bands_equal_librosa_melspectrogram(chirp):
    ref = librosa.feature.melspectrogram(
        y=chirp, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hamming", center=True,
        pad_mode="constant", power=2.0, n_mels=40, fmin=0.0, fmax=8000,
    )
    np.testing.assert_allclose(F.filterbank(chirp)[:, :40], np.log(ref.T + F.LOG_FLOOR), rtol=1e-4, atol=1e-4)


def test_energy_is_the_frame_power_computed_by_hand(chirp):
    # frame t by hand: zero-padded by N_FFT/2 (centred frames), a 400-sample periodic Hamming
    # window centred in 512 samples, the one-sided power spectrum summed
    padded = np.pad(chirp, 256)
    t = 20
    frame = padded[t * 160 : t * 160 + 512]
    window = np.zeros(512)
    window[56:456] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = np.abs(np.fft.rfft(frame * window)) ** 2
    np.testing.assert_allclose(F.filterbank(chirp)[t, 40], np.log(power.sum() + F.LOG_FLOOR), rtol=1e-5)


def test_deltas_of_a_ramp_are_its_slope_and_zero():
    static = np.outer(np.arange(30, dtype=np.float32), [1.0, -2.0])
    feats = F.add_deltas(static)
    np.testing.assert_allclose(feats[5:-5, 2:4], [[1.0, -2.0]] * 20, atol=1e-5)
    np.testing.assert_allclose(feats[5:-5, 4:6], 0, atol=1e-5)


def test_bad_audio_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mono with shape \(N,\), got shape \(2, 100\)"):
        F.filterbank(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="at 8000 Hz"):
        F.filterbank(np.zeros(100), sample_rate=8000)
    with pytest.raises(ValueError, match="NaN"):
        F.filterbank(np.full(1000, np.nan))
    with pytest.raises(ValueError, match="empty"):
        F.filterbank(np.zeros(0))


def test_frame_labels_take_the_phone_under_each_frame_centre():
    starts, ends, labels = np.array([0, 300, 500]), np.array([300, 500, 1000]), np.array([7, 8, 9])
    # centres at 0, 160, 320, 480, 640, 800, 960, 1120
    np.testing.assert_array_equal(F.frame_labels(starts, ends, labels, 8), [7, 7, 8, 8, 9, 9, 9, -100])


def test_normaliser_round_trip():
    rng = np.random.default_rng(0)
    feats = [rng.normal(3, 2, size=(n, 4)).astype(np.float32) for n in (10, 50, 7)]
    norm = F.Normaliser.fit(feats)
    out = np.concatenate([norm(f) for f in feats])
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-5)
    again = F.Normaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again(feats[0]), norm(feats[0]))
    with pytest.raises(ValueError, match="features have 3 dimensions, the normaliser 4"):
        norm(np.zeros((2, 3), np.float32))
