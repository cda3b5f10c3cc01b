"""Recurrent layers and deep bidirectional networks: the torch built-in networks (one and several
layers, both directions), padded batches against one-by-one runs, and the weight-copying helper."""

import pytest
import torch
from torch import nn

from asrlib.cells import LSTMCell, make_cell
from asrlib.layers import DeepRecurrent, Recurrent, load_builtin, reverse_padded
from asrlib.models import AcousticModel

torch.manual_seed(0)
I, H, B, T = 5, 4, 3, 7


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_layer_builtin_path_equals_builtin_module(kind):
    torch.manual_seed(4)
    ref = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](I, H, batch_first=True)
    cell = make_cell(kind, I, H, **({"peephole": False} if kind == "lstm" else {}))
    load_builtin(cell, ref)
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


@pytest.mark.parametrize("kind, builtin, kwargs", [
    ("lstm", nn.LSTM, {"peephole": False}), ("gru", nn.GRU, {}), ("tanh", nn.RNN, {}),
])
@pytest.mark.parametrize("impl", ["loop", "builtin"])
def test_deep_bidirectional_equals_torch_multilayer_bidirectional(kind, builtin, kwargs, impl):
    torch.manual_seed(0)
    deep = DeepRecurrent(kind, 6, 5, num_levels=3, bidirectional=True, impl=impl, **kwargs).double()
    ref = builtin(6, 5, num_layers=3, bidirectional=True, batch_first=True).double()
    load_builtin(deep, ref)
    x = torch.randn(3, 9, 6, dtype=torch.float64, requires_grad=True)
    ours = deep(x)
    theirs = ref(x)[0]
    torch.testing.assert_close(ours, theirs)
    g = torch.randn_like(ours)
    (gx_ours,) = torch.autograd.grad(ours, x, g)
    (gx_theirs,) = torch.autograd.grad(theirs, x, g)
    torch.testing.assert_close(gx_ours, gx_theirs)
    w_ours = deep.levels[0].bwd.cell.weight_hh
    (gw_ours,) = torch.autograd.grad(deep(x), w_ours, g)
    (gw_theirs,) = torch.autograd.grad(ref(x)[0], ref.weight_hh_l0_reverse, g)
    torch.testing.assert_close(gw_ours, gw_theirs)


@pytest.mark.parametrize("impl", ["loop", "fused"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_deep_network_padded_batch_equals_one_by_one(impl, bidirectional):
    torch.manual_seed(1)
    model = AcousticModel("lstm", 4, 6, 3, 5, bidirectional=bidirectional, impl=impl).double()
    lens = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 4, dtype=torch.float64)
    x[torch.arange(7) >= lens[:, None]] = 1e3  # loud padding: any leak shows
    x.requires_grad_(True)
    batched = model(x, lens)
    g = torch.randn_like(batched)
    (gx,) = torch.autograd.grad(batched, x, g)
    for b, n in enumerate(lens.tolist()):
        xb = x[b : b + 1, :n].detach().requires_grad_(True)
        alone = model(xb, torch.tensor([n]))
        torch.testing.assert_close(batched[b, :n], alone[0])
        (gxb,) = torch.autograd.grad(alone, xb, g[b : b + 1, :n])
        torch.testing.assert_close(gx[b, :n], gxb[0])
        assert (gx[b, n:] == 0).all()


def test_return_levels_gives_every_level():
    model = DeepRecurrent("gru", 4, 3, num_levels=2, bidirectional=True)
    x = torch.randn(2, 5, 4)
    levels = model(x, return_levels=True)
    assert [tuple(h.shape) for h in levels] == [(2, 5, 6), (2, 5, 6)]
    torch.testing.assert_close(levels[-1], model(x))
    torch.testing.assert_close(levels[1], model.levels[1](levels[0]))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        model(torch.randn(2, 5, 3))
