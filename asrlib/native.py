"""Compiled kernels for the CPU (optional): the peephole LSTM's per-step elementwise work and CTC's
forward-backward recursions.

torch has no peephole LSTM, so :class:`asrlib.fused_lstm.PeepholeLSTMFunction` runs its own time loop.
Between one step's matrix products it does about ten small elementwise tensor operations, and on
a CPU each costs more in dispatch and memory traffic than in arithmetic. ``peephole_lstm.c`` (next
to this file) does a step's elementwise work in one pass instead. :mod:`asrlib.ctc`'s tensor loop
launches four small kernels a frame; ``ctc.c`` runs a whole utterance's recursions in one call
(:func:`ctc_trellis`), and ``ctc_beam.c`` the beam search of :mod:`asrlib.ctc_decode`
(:func:`ctc_beam_search`). All three are compiled here at first use with the machine's C compiler
into one library, cached by a hash of the sources, compiler, flags and CPU, and loaded with
:mod:`ctypes`: no build step and no download.

Where there is no C compiler (or ``ASRLIB_NATIVE=0`` is set) :func:`kernels` returns None and
the callers take their PyTorch paths, which compute the same things. :func:`status` says which
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

HERE = Path(__file__).parent
SOURCES = (HERE / "peephole_lstm.c", HERE / "ctc.c", HERE / "ctc_beam.c")
HEADERS = (HERE / "ctc_trellis.h",)  # included by ctc.c

# Most specific first: -march=native for this CPU's vector width, and glibc's libmvec for a
# vectorised expf and logf (see the pragmas in ctc.c). Each attempt falls back to a plainer one; the
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
    "peephole_forward_sequence": [_I] * 3 + [_P] * 7 + [_I] + [_P] * 3,
    "peephole_backward_sequence": [_I] * 3 + [_P] * 13,
    "ctc_trellis_f32": [_I] * 6 + [_P] * 8,
    "ctc_trellis_f64": [_I] * 6 + [_P] * 8,
    "ctc_beam_search": [_I] * 4 + [_P] * 4,
    "peephole_exp": [ctypes.c_float],
}
_RETURNS = {"ctc_beam_search": _I, "peephole_exp": ctypes.c_float}  # the others return nothing


class Status(NamedTuple):
    """Whether the CPU kernels run: ``compiled`` with ``flags`` from the library at ``path``, or
    not, and why (``reason``)."""

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
    """Compile SOURCES into one library in ``directory`` (atomically) unless already there; returns
    the library and the flags used."""
    source = b"\0".join(f.read_bytes() for f in SOURCES + HEADERS)
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    errors = []
    for cflags, libs in _ATTEMPTS:
        key = hashlib.sha256(b"\0".join(
            s.encode() if isinstance(s, str) else s
            for s in (source, compiler, version, " ".join(cflags + libs), platform.machine(), _cpu_signature())
        )).hexdigest()[:16]
        target = directory / f"asrlib_native-{key}.so"
        flags = f"{Path(compiler).name} {' '.join(cflags)}"
        if target.exists():
            return target, flags
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            objs, lib = [str(Path(tmp) / f"{f.stem}.o") for f in SOURCES], Path(tmp) / "kernels.so"
            steps = [*([compiler, *cflags, "-fPIC", "-c", str(f), "-o", o] for f, o in zip(SOURCES, objs)),
                     [compiler, "-shared", *objs, "-o", str(lib), *libs]]
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
            fn.argtypes, fn.restype = argtypes, _RETURNS.get(name)
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        _status = Status(False, reason=f"compiling failed, using the PyTorch path: {err}")
        return None
    _status = Status(True, flags, path)
    return lib


def info() -> Status:
    """Whether the CPU kernels run, as a :class:`Status` (loads the kernels first)."""
    kernels()
    return _status


def status() -> str:
    """Whether the CPU kernels run, in words: compiled (with which flags), or why not."""
    return str(info())


def serves(x, dtypes) -> bool:
    """Whether the kernels serve tensor ``x``: on a CPU, of one of ``dtypes``, with the kernels built."""
    return x.device.type == "cpu" and x.dtype in dtypes and kernels() is not None


def ctc_ok(x) -> bool:
    """Whether :func:`ctc_trellis` serves ``x``: float32 or float64 on a CPU, with the kernels built."""
    import torch

    return serves(x, (torch.float32, torch.float64))


def use_ctc_kernel(x, compiled: bool | None) -> bool:
    """Whether :mod:`asrlib.ctc` runs :func:`ctc_trellis` on ``x``: as ``compiled`` asks (True or False),
    or wherever it serves (None). True where it cannot serve is an error naming why."""
    available = ctc_ok(x)
    if compiled and not available:
        raise ValueError(f"no compiled CTC for {x.dtype} on {x.device} ({status()})")
    return available if compiled is None else compiled


@functools.cache
def _pool(workers: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="asrlib-native")


def side_by_side(jobs) -> list:
    """Run the calls ``jobs`` (functions without arguments, each a ctypes call, which lets go of the
    GIL) at the same time, one thread each: the results in order."""
    if len(jobs) == 1:
        return [jobs[0]()]
    running = [_pool(len(jobs) - 1).submit(job) for job in jobs[1:]]
    first = jobs[0]()
    return [first, *(r.result() for r in running)]


class Mkl(NamedTuple):
    """MKL's packed single-precision product, from torch's CPU library (which links MKL in and
    exports it): ``pack_size(identifier, m, n, k)``, ``pack(layout, identifier, trans, m, n, k,
    alpha, src, ld, dest)``, and the addresses of ``cblas_sgemm_compute`` and
    ``MKL_Set_Num_Threads_Local`` (the C one: ``mkl_set_num_threads_local`` there is
    the Fortran one, which takes a pointer), which the compiled sequence calls."""

    pack_size: object
    pack: object
    compute: int
    set_threads: int


ROW_MAJOR, NO_TRANS, TRANS, PACKED, B_MATRIX = 101, 111, 112, 151, 162  # MKL's CBLAS enumerations


@functools.cache
def mkl() -> Mkl | None:
    """torch's MKL, checked once on a small product against torch's; None where the library has
    no MKL (non-x86 builds), the kernels are not built, or the check fails."""
    import numpy as np
    import torch

    if kernels() is None:
        return None
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        size, pack = lib.cblas_sgemm_pack_get_size, lib.cblas_sgemm_pack
        size.argtypes, size.restype = [_I] * 4, ctypes.c_size_t
        pack.argtypes, pack.restype = [_I] * 6 + [ctypes.c_float, _P, _I, _P], None
        found = Mkl(size, pack, *(ctypes.cast(getattr(lib, name), _P).value
                                  for name in ("cblas_sgemm_compute", "MKL_Set_Num_Threads_Local")))
        compute = ctypes.CFUNCTYPE(None, *[_I] * 6, _P, _I, _P, _I, ctypes.c_float, _P, _I)(found.compute)
        gen = torch.Generator().manual_seed(0)
        a, w, c = (torch.randn(*shape, generator=gen) for shape in ((3, 5), (8, 5), (3, 8)))
        packed = pack_weight(found, w, 3)
        out = c.clone()
        compute(ROW_MAJOR, NO_TRANS, PACKED, 3, 8, 5, a.data_ptr(), 5, packed.data_ptr(), 8, 1.0, out.data_ptr(), 8)
        return found if np.allclose(out.numpy(), (c + a @ w.t()).numpy(), atol=1e-5) else None
    except (OSError, AttributeError):  # no such library or symbol
        return None


def pack_weight(found: Mkl, weight, rows: int):
    """``weight.T`` (``weight : (N, K)`` float32, contiguous) packed by MKL as the right operand of
    products with ``rows`` rows: a byte buffer, kept alive by the caller while it is used."""
    import torch

    N, K = weight.shape
    packed = torch.empty(found.pack_size(B_MATRIX, rows, N, K), dtype=torch.uint8)
    found.pack(ROW_MAJOR, B_MATRIX, TRANS, rows, N, K, 1.0, weight.data_ptr(), K, packed.data_ptr())
    return packed


def ctc_trellis(log_probs, states, input_lengths, target_lengths, with_gamma: bool):
    """CTC's ``(alpha, beta, ln Pr(z|x), occupation or None)`` by the compiled kernel (see ``ctc.c``);
    the arguments and results as :func:`asrlib.ctc.alpha_beta` and :func:`asrlib.ctc.occupation`
    (``states`` the extended sequences of :func:`asrlib.ctc.extend`). The batch is cut into one
    share per torch thread, run side by side (ctypes lets go of the GIL during the call)."""
    import torch

    lp = log_probs.detach().contiguous()
    T, B, V = lp.shape
    S = states.shape[1]
    states, input_lengths, target_lengths = (x.contiguous() for x in (states, input_lengths, target_lengths))
    alpha, beta = (lp.new_full((T, B, S), float("-inf")) for _ in range(2))
    log_p = lp.new_empty(B)
    gamma = lp.new_zeros(T, B, V) if with_gamma else None
    fn = kernels().ctc_trellis_f32 if lp.dtype == torch.float32 else kernels().ctc_trellis_f64
    ptrs = [x.data_ptr() for x in (lp, states, input_lengths, target_lengths, alpha, beta, log_p)]
    ptrs.append(gamma.data_ptr() if with_gamma else None)
    workers = max(1, min(torch.get_num_threads(), B))
    cuts = [B * k // workers for k in range(workers + 1)]
    if workers == 1:
        fn(T, B, V, S, 0, B, *ptrs)
    else:
        for done in [_pool(workers).submit(fn, T, B, V, S, b0, b1, *ptrs) for b0, b1 in zip(cuts, cuts[1:])]:
            done.result()
    return alpha, beta, log_p, gamma


def ctc_beam_search(lp, beam: int, blank: int) -> list[tuple[tuple[int, ...], float]]:
    """:func:`asrlib.ctc_decode.beam_search` by the compiled search (``ctc_beam.c``), on one utterance's
    ``lp : (T, V)`` float64 numpy array: the beam's hypotheses, best first."""
    import numpy as np

    lp = np.ascontiguousarray(lp, dtype=np.float64)
    T, V = lp.shape
    labels = np.zeros((beam, max(T, 1)), np.int32)
    lengths, scores = np.zeros(beam, np.int32), np.zeros(beam, np.float64)
    n = kernels().ctc_beam_search(T, V, blank, beam, *(a.ctypes.data for a in (lp, labels, lengths, scores)))
    if n < 0:
        raise MemoryError(f"the compiled beam search ran out of memory ({T} frames, width {beam})")
    return [(tuple(labels[h, : lengths[h]].tolist()), float(scores[h])) for h in range(n)]
