"""Where the computation runs, how to make it repeat, and every setting read from the environment.

The same notebook runs on a laptop CPU, in Colab on a GPU, or on an Apple machine: the device
is chosen once, here, in the order CUDA, Apple MPS, CPU. A reader overrides the choice with the
environment variable ``ASRLIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), for example to
compare a CPU run with a GPU run on the same machine.

Every ``ASRLIB_*`` variable is read here and nowhere else:

====================  ========================================================================
``ASRLIB_DEVICE``     the device (:func:`get_device`)
``ASRLIB_DATA``       where corpora are cached (:func:`data_dir`)
``ASRLIB_CACHE``      where compiled kernels are cached (:func:`cache_dir`)
``ASRLIB_CORPUS``     ``synthetic`` or ``timit``: the corpus :func:`asrlib.corpus.load_corpus` picks
``ASRLIB_TIMIT``      a TIMIT folder (and, when set alone, the choice of TIMIT)
``ASRLIB_NATIVE``     ``0`` turns the compiled peephole-LSTM kernels off (:mod:`asrlib.native`)
``ASRLIB_ONEDNN``     ``0`` turns oneDNN's prepacked products off (:mod:`asrlib.fused_lstm`)
``ASRLIB_PROGRESS``   ``0`` hides every progress bar (:func:`progress_bar`): the executed HTML
                      book and CI set it, a live run shows them
====================  ========================================================================

Both folders default to ``$XDG_CACHE_HOME/asrlib`` (``~/.cache/asrlib`` where that is unset):
corpora at its top, kernels in its ``kernels`` subfolder.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

DEVICE_ENV = "ASRLIB_DEVICE"
DATA_ENV = "ASRLIB_DATA"
CACHE_ENV = "ASRLIB_CACHE"
CORPUS_ENV = "ASRLIB_CORPUS"
TIMIT_ENV = "ASRLIB_TIMIT"
NATIVE_ENV = "ASRLIB_NATIVE"
ONEDNN_ENV = "ASRLIB_ONEDNN"
PROGRESS_ENV = "ASRLIB_PROGRESS"


def setting(name: str) -> str | None:
    """The value of environment variable ``name``, None when it is unset or empty."""
    return os.environ.get(name) or None


def enabled(name: str) -> bool:
    """An on/off switch (``ASRLIB_NATIVE``, ``ASRLIB_ONEDNN``): on unless set to ``0``."""
    return os.environ.get(name, "1") != "0"


def progress_bar(*args, disable: bool = False, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(*args, **kwargs)``, hidden when ``disable`` or ``ASRLIB_PROGRESS=0``."""
    return tqdm(*args, disable=disable or not enabled(PROGRESS_ENV), **kwargs)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """``model`` in evaluation mode inside the block, back in the mode it was in afterwards, also
    when the block raises: for code that runs a network it was handed, training or not.

    >>> net = torch.nn.Dropout(); net.train()
    Dropout(p=0.5, inplace=False)
    >>> with evaluating(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asrlib"


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Where corpora are cached: ``root``, else ``$ASRLIB_DATA``, else ``$XDG_CACHE_HOME/asrlib``
    (``~/.cache/asrlib``).

    >>> data_dir("/tmp/corpora")
    PosixPath('/tmp/corpora')
    """
    root = root if root is not None else setting(DATA_ENV)
    return Path(root).expanduser() if root is not None else _cache_home()


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$ASRLIB_CACHE``, else ``$XDG_CACHE_HOME/asrlib/kernels``
    (``~/.cache/asrlib/kernels``)."""
    root = setting(CACHE_ENV)
    return Path(root).expanduser() if root is not None else _cache_home() / "kernels"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    Parameters
    ----------
    preferred : str or torch.device, optional
        Asked-for device. When omitted, ``$ASRLIB_DEVICE`` is used if set, otherwise the
        first available of CUDA, Apple MPS and CPU.

    Raises
    ------
    ValueError
        If the asked-for device is not a device name torch knows, or is not available on
        this machine (the message says which, and where the request came from).

    Examples
    --------
    >>> get_device("cpu")
    device(type='cpu')
    """
    source = "argument"
    if preferred is None:
        preferred = setting(DEVICE_ENV)
        source = f"environment variable {DEVICE_ENV}"
    if preferred is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {preferred!r} (from the {source}); "
            "expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {preferred!r} (from the {source}) asked for, but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {preferred!r} (from the {source}) asked for, but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"device {preferred!r} (from the {source}) asked for, but Apple MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device {preferred!r} (from the {source}) is not supported; expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return device


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (all devices) so that a run repeats.

    Parameters
    ----------
    seed : int
        The seed. A notebook that calls ``seed_everything(0)`` at its top draws the same
        initial weights and the same batches every time it runs on the same device.
    deterministic : bool
        Also ask torch for deterministic kernels (slower on GPU; cuDNN's RNNs then choose
        deterministic algorithms). Off by default: on CPU the runs already repeat.

    Returns
    -------
    int
        The seed, for logging.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators as well
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return int(seed)
