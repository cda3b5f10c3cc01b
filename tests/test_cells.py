"""Cells and layers against independent references: the torch built-ins, a slow LSTM written
from eq. (3)-(7) here, float64 gradcheck, and padded batches against one-by-one runs."""

import pytest
import torch
from torch import nn

from asrlib.cells import GRUCell, LSTMCell, RNNCell, make_cell
from asrlib.layers import PeepholeLSTMFunction, Recurrent, reverse_padded

torch.manual_seed(0)
I, H, B, T = 5, 4, 3, 7


def copy_from(builtin, cell, suffix=""):
    """Copy a built-in's parameters into a cell (the names match by design)."""
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(builtin, name + suffix))


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
    copy_from(ref, cell)
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
    copy_from(ref, cell)
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
    params = [p for p in cell.parameters()]

    def f(x, *ps):
        state = cell(x)
        return state if isinstance(state, tuple) else (state,)

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("outputs", ["h", "c", "both"])
def test_gradcheck_float64_fused_peephole_sequence(outputs):
    """The hand-written backward, through h, c or both (an output no loss uses gets no gradient)."""
    torch.manual_seed(3)
    args = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in
            [(4, 2, 3), (2, H), (2, H), (4 * H, 3), (4 * H, H), (4 * H,), (H,), (H,), (H,)]]
    pick = {"h": lambda h, c: h, "c": lambda h, c: c, "both": lambda h, c: (h, c)}[outputs]
    assert torch.autograd.gradcheck(lambda *a: pick(*PeepholeLSTMFunction.apply(*a)), args)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_layer_builtin_path_equals_builtin_module(kind):
    torch.manual_seed(4)
    ref = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](I, H, batch_first=True)
    cell = make_cell(kind, I, H, **({"peephole": False} if kind == "lstm" else {}))
    copy_from(ref, cell, "_l0")
    x = torch.randn(B, T, I)
    for impl in ("builtin", "loop"):
        y, final = Recurrent(cell, impl=impl)(x)
        y_ref, final_ref = ref(x)
        torch.testing.assert_close(y, y_ref)
        final_ref = tuple(s[0] for s in final_ref) if kind == "lstm" else final_ref[0]
        torch.testing.assert_close(final, final_ref)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("kind,impl", [
    ("rnn", "builtin"), ("rnn", "loop"), ("gru", "builtin"), ("gru", "loop"),
    ("lstm-nopeep", "builtin"), ("lstm", "fused"), ("lstm", "loop"),
])
def test_padded_batch_equals_one_by_one(kind, impl, reverse):
    torch.manual_seed(5)
    cell = make_cell(kind.split("-")[0], I, H, **({"peephole": False} if kind == "lstm-nopeep" else {})).double()
    layer = Recurrent(cell, reverse=reverse, impl=impl)
    lens = torch.tensor([7, 3, 5])
    x = torch.randn(3, 7, I, dtype=torch.float64)
    x_padded = x.clone()
    for b, n in enumerate(lens):
        x_padded[b, n:] = 100.0  # garbage in the padding must not matter
    y, final = layer(x_padded, lens)
    loss = y.pow(2).sum()
    grads = torch.autograd.grad(loss, list(cell.parameters()))
    total = [torch.zeros_like(g) for g in grads]
    for b, n in enumerate(lens):
        y_b, final_b = layer(x[b : b + 1, :n])
        torch.testing.assert_close(y[b : b + 1, :n], y_b)
        assert y[b, n:].abs().sum() == 0
        for got, want in zip(final if isinstance(final, tuple) else (final,), final_b if isinstance(final_b, tuple) else (final_b,)):
            torch.testing.assert_close(got[b : b + 1], want)
        for acc, g in zip(total, torch.autograd.grad(y_b.pow(2).sum(), list(cell.parameters()))):
            acc += g
    for g, want in zip(grads, total):
        torch.testing.assert_close(g, want)
    y_only, none = layer(x_padded, lens, return_final=False)
    assert none is None
    torch.testing.assert_close(y_only, y)


def test_reverse_padded_reverses_within_lengths_and_is_its_own_inverse():
    x = torch.arange(8.0).view(2, 4, 1)
    lens = torch.tensor([4, 2])
    r = reverse_padded(x, lens)
    assert r[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    torch.testing.assert_close(reverse_padded(r, lens), x)


def test_wrong_shapes_name_expected_and_actual():
    cell = LSTMCell(I, H)
    with pytest.raises(ValueError, match=rf"x must have shape \(B, {I}\), got \(3, 6\)"):
        cell(torch.randn(3, 6))
    with pytest.raises(ValueError, match=rf"h must have shape \(3, {H}\), got \(3, 5\)"):
        cell(torch.randn(3, I), (torch.randn(3, 5), torch.randn(3, H)))
    layer = Recurrent(cell)
    with pytest.raises(ValueError, match=rf"x must have shape \(B, T, {I}\), got \(2, 7\)"):
        layer(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"x_lens must lie in 1..7"):
        layer(torch.randn(2, 7, I), torch.tensor([7, 8]))
    with pytest.raises(ValueError, match=r"x_lens must be an integer tensor of shape \(2,\)"):
        layer(torch.randn(2, 7, I), torch.tensor([7.0, 3.0]))
    with pytest.raises(ValueError, match="initial h must have shape"):
        layer(torch.randn(2, 7, I), state=(torch.zeros(3, H), torch.zeros(3, H)))
    with pytest.raises(ValueError, match="no peephole LSTM"):
        Recurrent(cell, impl="builtin")
    with pytest.raises(ValueError, match="unknown cell 'lstmp'"):
        make_cell("lstmp", I, H)


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
