"""Compiled kernels for the peephole LSTM's per-step elementwise work on a CPU (optional).

torch has no peephole LSTM, so :class:`asrlib.fused_lstm.PeepholeLSTMFunction` runs its own time loop.
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
from typing import NamedTuple

from asrlib import runtime

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


class Status(NamedTuple):
    """Which path the peephole LSTM's CPU steps take: ``compiled`` with ``flags`` from the library
    at ``path``, or not, and why (``reason``)."""

    compiled: bool
    flags: str | None = None
    path: Path | None = None
    reason: str = "not loaded yet"

    def __str__(self) -> str:
        return f"compiled: {self.flags}, cached in {self.path}" if self.compiled else self.reason


_status = Status(False)


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
    if not runtime.enabled(runtime.NATIVE_ENV):
        _status = Status(False, reason=f"disabled by {runtime.NATIVE_ENV}=0")
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        _status = Status(False, reason=f"no C compiler ({os.environ.get('CC', 'cc')}) on PATH")
        return None
    try:
        try:
            path, flags = _build(compiler, runtime.cache_dir())
        except PermissionError:
            path, flags = _build(compiler, Path(tempfile.gettempdir()) / f"asrlib-{getattr(os, 'getuid', lambda: 0)()}")
        lib = ctypes.CDLL(str(path))
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, None
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        _status = Status(False, reason=f"compiling failed, using the PyTorch path: {err}")
        return None
    _status = Status(True, flags, path)
    return lib


def info() -> Status:
    """How the peephole LSTM's CPU steps run, as a :class:`Status` (loads the kernels first)."""
    kernels()
    return _status


def status() -> str:
    """How the peephole LSTM's CPU steps run, in words: compiled (with which flags), or why not."""
    return str(info())
