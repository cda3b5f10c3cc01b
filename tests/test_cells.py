"""Cells against independent references: the torch built-in cells, a slow LSTM written from
eq. (3)-(7) here, and float64 gradcheck."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from asrlib.cells import GRUCell, LSTMCell, RNNCell, make_cell
from asrlib.layers import Recurrent, load_builtin

torch.manual_seed(0)
I, H, B, T = 5, 4, 3, 7


def slow_peephole_lstm(x, h, c, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    """eq. (3)-(7) of the paper, one gate at a time, from the row blocks i, f, g(c), o."""
    Wx = dict(zip("ifco", W_ih.chunk(4)))
    Wh = dict(zip("ifco", W_hh.chunk(4)))
    b = dict(zip("ifco", (b_ih + b_hh).chunk(4)))
    outs = []
    for x_t in x.unbind(1):
        i = torch.sigmoid(x_t @ Wx["i"].T + h @ Wh["i"].T + w_ci * c + b["i"])
        f = torch.sigmoid(x_t @ Wx["f"].T + h @ Wh["f"].T + w_cf * c + b["f"])
        c = f * c + i * torch.tanh(x_t @ Wx["c"].T + h @ Wh["c"].T + b["c"])
        o = torch.sigmoid(x_t @ Wx["o"].T + h @ Wh["o"].T + w_co * c + b["o"])  # c_t, not c_{t-1}
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), (h, c)


@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_cell_equals_its_builtin_twin_in_outputs_and_gradients(kind):
    torch.manual_seed(1)
    if kind.startswith("rnn"):
        nl = kind.split("-")[1]
        ref, cell = nn.RNNCell(I, H, nonlinearity=nl), RNNCell(I, H, nonlinearity=nl)
    elif kind == "lstm":
        ref, cell = nn.LSTMCell(I, H), LSTMCell(I, H, peephole=False)
    else:
        ref, cell = nn.GRUCell(I, H), GRUCell(I, H)
    load_builtin(cell, ref)
    x = torch.randn(B, I, requires_grad=True)
    state = (torch.randn(B, H), torch.randn(B, H)) if kind == "lstm" else torch.randn(B, H)
    out, want = cell(x, state), ref(x, state)
    out, want = (out[0] + 2 * out[1], want[0] + 2 * want[1]) if kind == "lstm" else (out, want)
    torch.testing.assert_close(out, want)
    g_out = torch.autograd.grad(out.sum(), [x, cell.weight_ih, cell.weight_hh, cell.bias_hh])
    g_ref = torch.autograd.grad(want.sum(), [x, ref.weight_ih, ref.weight_hh, ref.bias_hh])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)


def test_peephole_lstm_with_zero_peepholes_equals_builtin_lstm_cell():
    ref, cell = nn.LSTMCell(I, H), LSTMCell(I, H, peephole=True)
    load_builtin(cell, ref)
    with torch.no_grad():
        for p in (cell.weight_ci, cell.weight_cf, cell.weight_co):
            p.zero_()
    x, h, c = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)
    for a, b in zip(cell(x, (h, c)), ref(x, (h, c))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("impl", ["loop", "fused"])
def test_peephole_lstm_equals_the_slow_reference_from_the_equations(impl):
    torch.manual_seed(2)
    cell = LSTMCell(I, H).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    y, (h, c) = Recurrent(cell, impl=impl)(x, state=(h0, c0))
    y_ref, (h_ref, c_ref) = slow_peephole_lstm(x, h0, c0, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh,
                                               cell.weight_ci, cell.weight_cf, cell.weight_co)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    params = list(cell.parameters())
    g = torch.autograd.grad((y.sum() + c.pow(2).sum()), params)
    g_ref = torch.autograd.grad((y_ref.sum() + c_ref.pow(2).sum()), params)
    for a, b, p in zip(g, g_ref, cell.named_parameters()):
        torch.testing.assert_close(a, b, msg=lambda m: f"{p[0]}: {m}")


def test_output_gate_peephole_reads_the_new_cell_state():
    """eq. (6) uses c_t: a cell that used c_{t-1} would differ when w_co != 0."""
    cell = LSTMCell(I, H).double()
    x = torch.randn(B, I, dtype=torch.float64)
    h, c = cell(x)  # from zero state, c_{t-1} = 0: any effect of w_co must come through c_t
    with torch.no_grad():
        cell.weight_co.zero_()
    h0, _ = cell(x)
    assert not torch.allclose(h, h0)


@pytest.mark.parametrize("make", [
    lambda: RNNCell(I, H), lambda: GRUCell(I, H), lambda: LSTMCell(I, H, peephole=False), lambda: LSTMCell(I, H),
], ids=["tanh", "gru", "lstm", "peephole-lstm"])
def test_gradcheck_float64_every_cell(make):
    cell = make().double()
    x = torch.randn(2, I, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in cell.parameters()]

    def f(x, *ps):
        state = functional_call(cell, dict(zip(names, ps)), (x,))
        return state if isinstance(state, tuple) else (state,)

    assert torch.autograd.gradcheck(f, (x, *params))


def test_wrong_shapes_name_expected_and_actual():
    cell = LSTMCell(I, H)
    with pytest.raises(ValueError, match=rf"x must have shape \(B, {I}\), got \(3, 6\)"):
        cell(torch.randn(3, 6))
    with pytest.raises(ValueError, match=rf"h must have shape \(3, {H}\), got \(3, 5\)"):
        cell(torch.randn(3, I), (torch.randn(3, 5), torch.randn(3, H)))
    with pytest.raises(ValueError, match="unknown cell 'lstmp'"):
        make_cell("lstmp", I, H)
