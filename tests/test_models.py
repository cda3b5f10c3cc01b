"""Deep bidirectional networks and the Table 1 networks by name."""

import doctest

import pytest
import torch
from torch import nn

import asrlib.models
from asrlib.layers import Bidirectional, DeepRecurrent, Recurrent
from asrlib.models import (
    GRAMMAR, TABLE1, AcousticModel, ModelSpec, Transducer, build_model, count_parameters, parse_name,
)

# The paper's weights column, typed in independently of asrlib.models.TABLE1.
PAPER_WEIGHTS = {
    "CTC-3l-500h-tanh": 3.7, "CTC-1l-250h": 0.8, "CTC-1l-622h": 3.8, "CTC-2l-250h": 2.3,
    "CTC-3l-421h-uni": 3.8, "CTC-3l-250h": 3.8, "CTC-5l-250h": 6.8, "Trans-3l-250h": 4.3,
    "PreTrans-3l-250h": 4.3,
}


@pytest.mark.parametrize("name", sorted(PAPER_WEIGHTS))
def test_table1_networks_build_with_the_papers_weight_counts(name):
    model = build_model(name, input_size=123, num_classes=62)
    assert round(count_parameters(model) / 1e6, 1) == PAPER_WEIGHTS[name]


def test_table1_rows_are_the_paper_networks():
    assert {row.name: row.weights for row in TABLE1} == PAPER_WEIGHTS


def test_names_parse_into_their_parts():
    assert parse_name("CTC-3l-421h-uni") == ModelSpec("CTC", 3, 421, "lstm", bidirectional=False)
    assert parse_name("CTC-3l-500h-tanh") == ModelSpec("CTC", 3, 500, "tanh")
    assert parse_name("Trans-2l-64h-uni-gru") == ModelSpec("Trans", 2, 64, "gru", bidirectional=False)
    assert parse_name("CTC-1l-8h-nopeep") == ModelSpec("CTC", 1, 8, peephole=False)
    assert parse_name("CTC-2l-64h-uni-gru").name == "CTC-2l-64h-gru-uni"


def test_built_networks_have_the_named_cells_directions_and_sizes():
    model = build_model("CTC-2l-16h-gru-uni", input_size=5, num_classes=7)
    assert isinstance(model, AcousticModel) and model.encoder.num_levels == 2
    assert all(isinstance(level, Recurrent) and type(level.cell).__name__ == "GRUCell" for level in model.encoder.levels)
    assert model.output.in_features == 16 and model.output.out_features == 7
    model = build_model("PreTrans-2l-16h-tanh", input_size=5, num_classes=7)
    assert isinstance(model, Transducer) and model.spec.family == "PreTrans"
    assert all(isinstance(level, Bidirectional) for level in model.encoder.levels)
    assert model.encoder.levels[1].fwd.input_size == 32  # both directions of level 1 feed level 2
    assert model.prediction.rnn.cell.input_size == 6      # K = V - 1 phones, one-hot
    lstm = build_model("CTC-1l-8h").encoder.levels[0].fwd.cell
    assert lstm.peephole and not build_model("CTC-1l-8h-nopeep").encoder.levels[0].fwd.cell.peephole


@pytest.mark.parametrize(
    "name", ["CTC-3l", "ctc-3l-250h", "CTC-3l-250h-foo", "CTC-3l-250h-tanh-gru", "CTC-3l-250h-uni-uni",
             "CTC-0l-250h", "CTC-3l-0h", "CTC-3l-250h-tanh-nopeep", "RNN-3l-250h", "", None],
)
def test_malformed_names_raise_a_value_error_with_the_grammar(name):
    with pytest.raises(ValueError, match="l-|nopeep") as err:
        build_model(name)
    assert "nopeep" in str(err.value)
    if "nopeep" not in str(name):
        assert GRAMMAR in str(err.value)


def test_paper_initialisation_is_uniform_in_a_tenth():
    model = build_model("CTC-2l-32h", input_size=10, num_classes=5)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.abs().max() <= 0.1 and weights.std() > 0.05  # uniform(-0.1, 0.1) has std 0.0577
    torch_init = build_model("CTC-2l-32h", input_size=10, num_classes=5, init="torch")
    assert torch.cat([p.flatten() for p in torch_init.parameters()]).abs().max() > 0.1  # the output layer's 1/sqrt(64)
    with pytest.raises(ValueError, match="init"):
        build_model("CTC-1l-8h", init="xavier")


def test_doctests():
    assert doctest.testmod(asrlib.models, optionflags=doctest.ELLIPSIS).failed == 0


def _copy_into_builtin(deep: DeepRecurrent, builtin: nn.Module) -> None:
    """Copy a DeepRecurrent's weights into torch's multi-layer bidirectional RNN/GRU/LSTM."""
    with torch.no_grad():
        for n, level in enumerate(deep.levels):
            for suffix, direction in (("", level.fwd), ("_reverse", level.bwd)):
                for name, p in direction.cell.named_parameters():
                    getattr(builtin, f"{name}_l{n}{suffix}").copy_(p)


@pytest.mark.parametrize("kind, builtin, kwargs", [
    ("lstm", nn.LSTM, {"peephole": False}), ("gru", nn.GRU, {}), ("tanh", nn.RNN, {}),
])
@pytest.mark.parametrize("impl", ["loop", "builtin"])
def test_deep_bidirectional_equals_torch_multilayer_bidirectional(kind, builtin, kwargs, impl):
    torch.manual_seed(0)
    deep = DeepRecurrent(kind, 6, 5, num_levels=3, bidirectional=True, impl=impl, **kwargs).double()
    ref = builtin(6, 5, num_layers=3, bidirectional=True, batch_first=True).double()
    _copy_into_builtin(deep, ref)
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


def test_fused_bidirectional_with_peepholes_zeroed_equals_torch_multilayer_lstm():
    """With zero peepholes the fused path computes nn.LSTM's network, both directions, two levels."""
    torch.manual_seed(0)
    deep = DeepRecurrent("lstm", 6, 5, num_levels=2, bidirectional=True, impl="fused")
    ref = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for n, level in enumerate(deep.levels):
            for suffix, direction in (("", level.fwd), ("_reverse", level.bwd)):
                for name, p in direction.cell.named_parameters():
                    p.zero_() if name.startswith("weight_c") else p.copy_(getattr(ref, f"{name}_l{n}{suffix}"))
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


def test_transducer_joint_is_eq_16_17_and_prediction_is_causal():
    torch.manual_seed(2)
    model = build_model("Trans-1l-8h", input_size=4, num_classes=6).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    y = torch.tensor([[3, 1, 5], [2, 4, 0]])
    logits = model(x, torch.tensor([5, 4]), y, torch.tensor([3, 2]))
    assert logits.shape == (2, 5, 4, 6)
    l, p = model.encode(x, torch.tensor([5, 4])), model.predict(y, torch.tensor([3, 2]))  # noqa: E741
    h = torch.tanh(l[0, 2] @ model.joint_l.weight.T + model.joint_l.bias + p[0, 1] @ model.joint_p.weight.T)
    torch.testing.assert_close(logits[0, 2, 1], h @ model.output.weight.T + model.output.bias)
    # p_u sees y_1..y_u only: changing y_3 leaves p_0..p_2 alone; p_0 is the same for every sequence
    changed = model.predict(torch.tensor([[3, 1, 2], [2, 4, 0]]))
    torch.testing.assert_close(changed[:, :3], p[:, :3])
    torch.testing.assert_close(p[0, 0], p[1, 0])
    with pytest.raises(ValueError, match="1..5"):
        model.predict(torch.tensor([[6]]))
