"""The fast peephole LSTM (asrlib.fused_lstm) against the readable loop, torch's nn.LSTM with the
peepholes at zero, and float64 gradcheck of its hand-written backward pass."""

import pytest
import torch
from torch import nn

from asrlib import fused_lstm
from asrlib.cells import LSTMCell
from asrlib.fused_lstm import PeepholeLSTMFunction
from asrlib.layers import DeepRecurrent, Recurrent, load_builtin

I, H = 5, 4


@pytest.mark.parametrize("outputs", ["h", "c", "both"])
def test_gradcheck_float64_fused_peephole_sequence(outputs):
    """The hand-written backward, through h, c or both (an output no loss uses gets no gradient)."""
    torch.manual_seed(3)
    args = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in
            [(4, 2, 3), (2, H), (2, H), (4 * H, 3), (4 * H, H), (4 * H,), (H,), (H,), (H,)]]
    pick = {"h": lambda h, c: h, "c": lambda h, c: c, "both": lambda h, c: (h, c)}[outputs]
    assert torch.autograd.gradcheck(lambda *a: pick(*PeepholeLSTMFunction.apply(*a)), args)


def test_fused_float32_path_equals_the_loop_in_outputs_and_gradients():
    """float32 on the CPU takes the oneDNN-packed products (float64 takes plain ones)."""
    torch.manual_seed(6)
    cell = LSTMCell(I, 16)
    x = torch.randn(4, 30, I)
    lens = torch.tensor([30, 12, 25, 1])
    outs = {}
    for impl in ("fused", "loop"):
        y, (h, c) = Recurrent(cell, impl=impl)(x, lens)
        grads = torch.autograd.grad(y.pow(2).sum() + h.sum() + c.sum(), list(cell.parameters()))
        outs[impl] = (y, h, c, grads)
    for a, b in zip(outs["fused"][:3], outs["loop"][:3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(outs["fused"][3], outs["loop"][3]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fused_bidirectional_with_peepholes_zeroed_equals_torch_multilayer_lstm():
    """With zero peepholes the fused path computes nn.LSTM's network, both directions, two levels."""
    torch.manual_seed(0)
    deep = DeepRecurrent("lstm", 6, 5, num_levels=2, bidirectional=True, impl="fused")
    ref = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
    load_builtin(deep, ref)  # the peepholes at zero
    x = torch.randn(3, 9, 6, requires_grad=True)
    ours, theirs = deep(x), ref(x)[0]
    torch.testing.assert_close(ours, theirs)
    g = torch.randn_like(ours)
    bwd = deep.levels[0].bwd.cell
    grads = torch.autograd.grad(ours, [x, bwd.weight_ih, bwd.weight_hh, bwd.bias_hh], g)
    want = torch.autograd.grad(theirs, [x, ref.weight_ih_l0_reverse, ref.weight_hh_l0_reverse, ref.bias_hh_l0_reverse], g)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_deep_bidirectional_equals_the_loop_in_outputs_and_every_gradient(dtype):
    """float32 on a CPU takes oneDNN's products, float64 the plain ones; padded batch."""
    torch.manual_seed(5)
    fused = DeepRecurrent("lstm", 4, 7, num_levels=2, bidirectional=True, impl="fused").to(dtype)
    loop = DeepRecurrent("lstm", 4, 7, num_levels=2, bidirectional=True, impl="loop").to(dtype)
    loop.load_state_dict(fused.state_dict())
    lens = torch.tensor([11, 4, 9])
    x = torch.randn(3, 11, 4, dtype=dtype, requires_grad=True)
    outs = {}
    for name, model in (("fused", fused), ("loop", loop)):
        y = model(x, lens)
        outs[name] = (y, *torch.autograd.grad(y.pow(2).sum(), [x, *model.parameters()]))
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    for a, b in zip(outs["fused"], outs["loop"]):
        torch.testing.assert_close(a, b, **tol)


@pytest.fixture
def onednn_probe():
    """A fresh oneDNN probe for the test, and again after it."""
    fused_lstm._onednn_works.cache_clear()
    yield
    fused_lstm._onednn_works.cache_clear()


def test_onednn_is_switched_off_by_its_variable_or_by_any_failure(onednn_probe, monkeypatch):
    x = torch.randn(2, 3)
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    assert fused_lstm._onednn(x) and not fused_lstm._onednn(x.double())
    monkeypatch.setenv("ASRLIB_ONEDNN", "0")
    fused_lstm._onednn_works.cache_clear()
    assert not fused_lstm._onednn(x)
    monkeypatch.delenv("ASRLIB_ONEDNN")

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError(f"no operator {name}")

    monkeypatch.setattr(torch.ops, "mkldnn", Broken())
    fused_lstm._onednn_works.cache_clear()
    assert not fused_lstm._onednn(x)
    # and the layer still computes the same numbers on the plain path
    torch.manual_seed(7)
    cell = LSTMCell(I, 6)
    x, lens = torch.randn(3, 8, I), torch.tensor([8, 5, 2])
    torch.testing.assert_close(Recurrent(cell, impl="fused")(x, lens)[0], Recurrent(cell, impl="loop")(x, lens)[0],
                               rtol=1e-5, atol=1e-5)
