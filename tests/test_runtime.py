"""asrlib.runtime: device choice and seeding."""

import numpy as np
import pytest
import torch

import asrlib
from asrlib.runtime import DEVICE_ENV, evaluating, get_device, seed_everything


def test_version_is_exposed():
    major, minor, patch = asrlib.__version__.split(".")
    assert major.isdigit() and minor.isdigit()


def test_default_device_follows_availability(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected


def test_environment_variable_overrides(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert get_device() == torch.device("cpu")


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "not-a-device")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "not-a-device", "cuda:x"])
def test_unknown_device_names_it_and_its_source(monkeypatch, bad):
    monkeypatch.setenv(DEVICE_ENV, bad)
    with pytest.raises(ValueError, match=f"{bad!r}.*{DEVICE_ENV}"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    with pytest.raises(ValueError, match="CUDA device"):
        get_device(f"cuda:{torch.cuda.device_count()}")


def test_seeding_repeats_every_generator():
    def draw():
        return (np.random.rand(3), torch.rand(3), __import__("random").random())

    seed_everything(123)
    first = draw()
    seed_everything(123)
    second = draw()
    seed_everything(124)
    third = draw()
    np.testing.assert_array_equal(first[0], second[0])
    torch.testing.assert_close(first[1], second[1])
    assert first[2] == second[2]
    assert not torch.equal(first[1], third[1])


def test_seed_must_be_an_integer():
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(1.5)


@pytest.mark.parametrize("mode", [True, False])
def test_evaluating_restores_the_mode_it_found_even_on_error(mode):
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    net.train(mode)
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(net) as same:
            assert same is net and not net.training and not net[1].training
            raise RuntimeError("inside")
    assert net.training == mode and net[1].training == mode
