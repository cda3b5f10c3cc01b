"""The compiled peephole-LSTM steps (asrlib.native) against the PyTorch steps, and their build."""

import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asrlib import fused_lstm, native
from asrlib.fused_lstm import PeepholeLSTMFunction
from asrlib.layers import DeepRecurrent

T, B, I, H = 9, 3, 5, 37  # H: whole vectors of 16 and 8 floats, and a remainder


@pytest.fixture
def fresh_kernels(monkeypatch, tmp_path):
    """kernels() rebuilt from scratch in a temporary cache, and forgotten again afterwards."""
    monkeypatch.setenv("ASRLIB_CACHE", str(tmp_path))
    native.kernels.cache_clear()
    yield tmp_path
    native.kernels.cache_clear()


def test_kernels_build_wherever_there_is_a_c_compiler():
    """So that a broken build cannot hide behind the PyTorch fallback."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler here")
    assert native.kernels() is not None, native.status()
    assert native.status().startswith("compiled")


PATHS = ("sequence", "steps", "torch")  # the whole sequence compiled (MKL), compiled steps, PyTorch steps


def _use(path, monkeypatch):
    if path != "torch" and native.kernels() is None:
        pytest.skip(native.status())
    if path == "sequence" and native.mkl() is None:
        pytest.skip("torch's library has no MKL here")
    monkeypatch.setattr(fused_lstm, "_native_ok", lambda x: path != "torch")
    monkeypatch.setattr(fused_lstm, "_mkl_ok", lambda x: path == "sequence")


def _run(args, path, monkeypatch):
    _use(path, monkeypatch)
    args = [a.detach().clone().requires_grad_(True) for a in args]
    h, c = PeepholeLSTMFunction.apply(*args)
    torch.manual_seed(1)
    g_h, g_c = torch.randn_like(h), torch.randn_like(c)
    grads = torch.autograd.grad((h * g_h).sum() + (c[-2:] * g_c[-2:]).sum(), args, retain_graph=True)
    only_h = torch.autograd.grad((h * g_h).sum(), args)  # c unused: its gradient arrives as None
    return (h, c, *grads, *only_h)


@pytest.mark.parametrize("path", PATHS[:2])
@pytest.mark.parametrize("steps, batch", [(T, B), (1, 1), (40, 16)])
def test_compiled_paths_equal_the_pytorch_steps(path, steps, batch, monkeypatch):
    torch.manual_seed(0)
    args = [torch.randn(*s) for s in [(steps, batch, I), (batch, H), (batch, H), (4 * H, I), (4 * H, H), (4 * H,), (H,),
                                      (H,), (H,)]]
    args[3:5] = [w * 0.5 for w in args[3:5]]
    ours, reference = _run(args, path, monkeypatch), _run(args, "torch", monkeypatch)
    tol = 1e-5 if steps * batch < 100 else 2e-4  # weight gradients: float32 sums over 640 frames
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("path", PATHS[:2])
def test_saturated_gates_and_large_cells_stay_finite(path, monkeypatch):
    """Gates driven to 0 or 1 (pre-activations of +-100) and cell states that grow by one a step
    to +-100: exp() overflows inside the kernel's sigmoid and tanh, and must not give NaN."""
    torch.manual_seed(0)
    args = [torch.randn(*s) for s in [(100, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (H,), (H,), (H,)]]
    args[3:5] = [w * 0.01 for w in args[3:5]]
    sign = torch.randn(H).sign()
    args[5] = 100 * torch.cat([torch.ones(2 * H), sign, -sign])  # i = f = 1, g = +-1, o = 0 or 1
    ours, reference = _run(args, path, monkeypatch), _run(args, "torch", monkeypatch)
    assert ours[1].abs().max() > 90  # the cell states did grow
    for got, want in zip(ours, reference):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # sums over 100 frames


def test_the_kernels_exp_keeps_its_stated_error_and_clamps():
    """peephole_lstm.c's own e^x: relative error below 2e-7 over [-87, 87] (its comment says 1.1e-7,
    measured), and clamped outside, so that 1 + e^x stays finite."""
    if native.kernels() is None:
        pytest.skip(native.status())
    exp = native.kernels().peephole_exp
    xs = np.concatenate([np.linspace(-87, 87, 40_001), [0.0, 1e-30, -1e-30, 86.999, -86.999]]).astype(np.float32)
    got = np.array([exp(float(x)) for x in xs], np.float64)
    relative = np.abs(got / np.exp(xs.astype(np.float64)) - 1)
    assert relative.max() < 2e-7, (relative.max(), xs[relative.argmax()])
    assert exp(1000.0) == exp(87.0) and np.isfinite(exp(1000.0)) and exp(-1000.0) == exp(-87.0) > 0


def test_asrlib_native_0_turns_the_kernels_off(fresh_kernels, monkeypatch):
    monkeypatch.setenv("ASRLIB_NATIVE", "0")
    assert native.kernels() is None
    assert "ASRLIB_NATIVE=0" in native.status()


def test_a_failing_compiler_falls_back_and_says_why(fresh_kernels, monkeypatch):
    monkeypatch.setenv("CC", "false")  # exits 1 whatever it is asked
    if shutil.which("false") is None:
        pytest.skip("no `false` command")
    assert native.kernels() is None
    assert native.status().startswith("compiling failed")
    monkeypatch.setenv("CC", "no-such-compiler-here")
    native.kernels.cache_clear()
    assert native.kernels() is None and "no C compiler" in native.status()


def test_a_built_kernel_is_reused_not_rebuilt(fresh_kernels):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler here")
    assert native.kernels() is not None
    (built,) = fresh_kernels.glob("*.so")
    stamp = built.stat().st_mtime_ns
    native.kernels.cache_clear()
    assert native.kernels() is not None
    assert [p.name for p in fresh_kernels.iterdir()] == [built.name] and built.stat().st_mtime_ns == stamp


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_directions_side_by_side_equal_the_training_path_and_the_loop(two_threads, monkeypatch):
    """Inference runs a bidirectional level's two directions at once (one thread each); with
    autograd they run in turn through PeepholeLSTMFunction; the loop is the reference."""
    if native.mkl() is None:
        pytest.skip("torch's library has no MKL here")
    calls, original = [], native.side_by_side
    monkeypatch.setattr(native, "side_by_side", lambda jobs: calls.append(len(jobs)) or original(jobs))
    torch.manual_seed(0)
    fused = DeepRecurrent("lstm", I, H, 2, peephole=True)
    for p in fused.parameters():
        torch.nn.init.normal_(p, std=0.3)
    loop = DeepRecurrent("lstm", I, H, 2, peephole=True, impl="loop")
    loop.load_state_dict(fused.state_dict())
    x, lens = torch.randn(4, 23, I), torch.tensor([23, 5, 17, 1])
    with torch.no_grad():
        together = fused(x, lens)
    assert calls == [2, 2]  # both levels, both directions at once
    torch.testing.assert_close(together, fused(x, lens).detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together, loop(x, lens).detach(), rtol=1e-5, atol=1e-5)


def test_side_by_side_gives_mkl_its_threads_back(two_threads):
    if native.mkl() is None:
        pytest.skip("torch's library has no MKL here")
    threads = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")).mkl_get_max_threads
    before = threads()
    with torch.no_grad():
        DeepRecurrent("lstm", I, H, 1, peephole=True)(torch.randn(2, 7, I))
    assert threads() == before == 2
