"""Compiled kernels for the peephole LSTM's per-step elementwise work on a CPU (optional).

torch has no peephole LSTM, so :class:`asrlib.layers.PeepholeLSTMFunction` runs its own time loop.
Between one step's matrix products it does about ten small elementwise tensor operations, and on
a CPU each costs more in dispatch and memory traffic than in arithmetic. ``peephole_lstm.c`` (next
to this file) does a step's elementwise work in one pass instead. It is compiled here at first
use with the machine's C compiler, cached by a hash of the source, compiler, flags and CPU, and
loaded with :mod:`ctypes`: no build step and no download.

Where there is no C compiler (or ``ASRLIB_NATIVE=0`` is set) :func:`kernels` returns None and
the layer takes its PyTorch path, which computes the same thing. :func:`status` says which
happened, and why.

>>> status()  # doctest: +SKIP
'compiled: cc -O3 -march=native -fno-math-errno -fopenmp-simd, cached in ~/.cache/asrlib/...'
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("peephole_lstm.c")

# Most specific first: -march=native for this CPU's vector width, and glibc's libmvec for a
# vectorised expf (see the pragma in the source). Each attempt falls back to a plainer one; the
# last gives scalar code that any C compiler builds.
_ATTEMPTS = (
    (["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd"], ["-lmvec", "-lm"]),
    (["-O3", "-march=native", "-fno-math-errno"], ["-lm"]),
    (["-O2"], ["-lm"]),
)
_P, _I = ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "peephole_forward_step": [_I, _I] + [_P] * 9,
    "peephole_backward_step": [_I, _I] + [_P] * 10,
}
_status = "not loaded yet"


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$ASRLIB_CACHE``, else ``$XDG_CACHE_HOME/asrlib``, else
    ``~/.cache/asrlib``."""
    if os.environ.get("ASRLIB_CACHE"):
        return Path(os.environ["ASRLIB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asrlib"


def _cpu_signature() -> str:
    """The CPU's model and feature flags: a kernel built with -march=native runs only there."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(next((l for l in lines if l.startswith(k)), "") for k in ("model name", "flags"))  # noqa: E741
    except OSError:
        return platform.processor() or platform.machine()


def _build(compiler: str, directory: Path) -> tuple[Path, str]:
    """Compile SOURCE into ``directory`` (atomically) unless already there; returns the library and
    the flags used."""
    source = SOURCE.read_bytes()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    errors = []
    for cflags, libs in _ATTEMPTS:
        key = hashlib.sha256(b"\0".join(
            s.encode() if isinstance(s, str) else s
            for s in (source, compiler, version, " ".join(cflags + libs), platform.machine(), _cpu_signature())
        )).hexdigest()[:16]
        target = directory / f"peephole_lstm-{key}.so"
        flags = f"{Path(compiler).name} {' '.join(cflags)}"
        if target.exists():
            return target, flags
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            obj, lib = Path(tmp) / "kernel.o", Path(tmp) / "kernel.so"
            steps = ([compiler, *cflags, "-fPIC", "-c", str(SOURCE), "-o", str(obj)],
                     [compiler, "-shared", str(obj), "-o", str(lib), *libs])
            for cmd in steps:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                if done.returncode:
                    errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-300:]}")
                    break
            else:
                os.replace(lib, target)
                return target, flags
    raise RuntimeError("; ".join(errors))


@functools.cache
def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they cannot be had (see :func:`status`)."""
    global _status
    if os.environ.get("ASRLIB_NATIVE", "1") == "0":
        _status = "disabled by ASRLIB_NATIVE=0"
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        _status = f"no C compiler ({os.environ.get('CC', 'cc')}) on PATH"
        return None
    try:
        try:
            path, flags = _build(compiler, cache_dir())
        except PermissionError:
            path, flags = _build(compiler, Path(tempfile.gettempdir()) / f"asrlib-{getattr(os, 'getuid', lambda: 0)()}")
        lib = ctypes.CDLL(str(path))
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, None
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        _status = f"compiling failed, using the PyTorch path: {err}"
        return None
    _status = f"compiled: {flags}, cached in {path}"
    return lib


def status() -> str:
    """How the peephole LSTM's CPU steps run: compiled (with which flags), or why not."""
    kernels()
    return _status
