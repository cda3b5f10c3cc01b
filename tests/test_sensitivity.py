"""Input sensitivity (Fig. 3) against finite differences, and the reach of each direction."""

import numpy as np
import pytest
import torch

from asrlib.models import build_model
from asrlib.sensitivity import emission_sensitivities, emission_sensitivity, input_sensitivity, segment_frames, spread


def test_sensitivity_equals_finite_differences():
    torch.manual_seed(0)
    model = build_model("CTC-2l-5h", input_size=3, num_classes=4).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    grad = input_sensitivity(model, x, frame=2, k=1)

    def prob(x):
        return model(x.unsqueeze(0), torch.tensor([6]))[0, 2].softmax(-1)[1]

    eps = 1e-6
    with torch.no_grad():
        for t, f in [(0, 0), (2, 1), (5, 2), (4, 0)]:
            up, down = x.clone(), x.clone()
            up[t, f] += eps
            down[t, f] -= eps
            assert abs((prob(up) - prob(down)).item() / (2 * eps) - grad[t, f].item()) < 1e-7


def test_a_unidirectional_network_cannot_look_ahead_and_a_bidirectional_one_does():
    torch.manual_seed(1)
    x = torch.randn(8, 3)
    uni = input_sensitivity(build_model("CTC-2l-4h-uni", input_size=3, num_classes=4), x, frame=3, k=2)
    bi = input_sensitivity(build_model("CTC-2l-4h", input_size=3, num_classes=4), x, frame=3, k=2)
    assert (uni[4:] == 0).all() and (uni[:4].abs().sum(1) > 0).all()
    assert (bi.abs().sum(1) > 0).all()


def test_bad_requests_name_the_problem():
    model = build_model("CTC-1l-4h", input_size=3, num_classes=4)
    with pytest.raises(ValueError, match="frame must lie in 0..4"):
        input_sensitivity(model, torch.randn(5, 3), frame=5, k=0)
    with pytest.raises(ValueError, match="k must lie in 0..3"):
        input_sensitivity(model, torch.randn(5, 3), frame=0, k=4)
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        input_sensitivity(model, torch.randn(1, 5, 3), frame=0, k=0)
    with pytest.raises(ValueError, match="output"):
        input_sensitivity(model, torch.randn(5, 3), frame=0, k=0, output="softmax")


def test_emission_sensitivity_rows_equal_one_at_a_time_for_ctc_and_the_transducer():
    torch.manual_seed(2)
    x, target = torch.randn(9, 3, dtype=torch.float64), torch.tensor([2, 1, 2])
    ctc = build_model("CTC-2l-4h", input_size=3, num_classes=4).double()
    grads, frames = emission_sensitivity(ctc, x, target)
    assert grads.shape == (3, 9, 3) and (frames.diff() > 0).all()
    for i, (t, k) in enumerate(zip(frames.tolist(), target.tolist())):
        assert torch.allclose(grads[i], input_sensitivity(ctc, x, t, k), atol=1e-12)

    trans = build_model("Trans-1l-4h", input_size=3, num_classes=4).double()
    grads, frames = emission_sensitivity(trans, x, target, output="log_prob")
    for i, (t, k) in enumerate(zip(frames.tolist(), target.tolist())):
        xi = x.clone().requires_grad_(True)
        logits = trans(xi[None], torch.tensor([9]), target[None], torch.tensor([3]))[0, t, i]
        (expected,) = torch.autograd.grad(logits.log_softmax(-1)[k], xi)
        assert torch.allclose(grads[i], expected, atol=1e-12)


class FrameLocal(torch.nn.Module):
    """A network that sees one frame only."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)

    def forward(self, x, x_lens=None):
        return self.linear(x)


def test_the_spread_of_a_network_that_sees_one_frame_is_all_inside_its_segment():
    torch.manual_seed(3)
    grads, frames = emission_sensitivity(FrameLocal(), torch.randn(12, 3), torch.tensor([1, 3, 2, 3]))
    assert (grads.abs().sum(-1) > 0).sum(1).eq(1).all()               # one frame per row
    shares = spread(grads, frames.numpy() - 1, frames.numpy() + 1)  # segments around each emission
    assert np.allclose(shares, [[1, 0, 0, 0]] * 4)


def test_spread_puts_mass_in_the_right_neighbourhood():
    first, end = np.array([0, 2, 4, 6, 8]), np.array([2, 4, 6, 8, 10])
    grads = torch.zeros(5, 12, 2)
    grads[2, 2, 0] = 1.0    # row 2: its first neighbour (segment 1)
    grads[2, 8, 1] = -3.0   # ... its second neighbour (segment 4), by magnitude
    grads[0, 0, 0] = 2.0    # row 0: its own segment
    grads[0, 11, 0] = 2.0   # ... outside every segment
    grads[4, 9, :] = 1.0    # row 4: its own segment
    shares = spread(grads, first, end)
    assert np.allclose(shares[2], [0, 0.25, 0.75, 0])
    assert np.allclose(shares[0], [0.5, 0, 0, 0.5])
    assert np.allclose(shares[4], [1, 0, 0, 0])
    assert np.allclose(shares[1], 0)  # no gradient: no shares
    with pytest.raises(ValueError, match="one segment per row"):
        spread(grads, first[:4], end)


def test_segment_frames_follow_frame_labels():
    from asrlib.features import frame_labels

    starts, ends = np.array([0, 1000, 1700]), np.array([1000, 1700, 3300])
    first, end = segment_frames(starts, ends)
    labels = frame_labels(starts, ends, np.arange(3), 21)
    for i in range(3):
        assert (labels[first[i]:end[i]] == i).all() and (labels == i).sum() == end[i] - first[i]


@pytest.mark.parametrize("name", ["CTC-2l-4h", "CTC-2l-4h-uni", "Trans-1l-4h"])
def test_emission_sensitivities_of_a_padded_batch_equal_one_at_a_time(name):
    torch.manual_seed(4)
    model = build_model(name, input_size=3, num_classes=4).double()
    xs = [torch.randn(T, 3, dtype=torch.float64) for T in (9, 6, 11)]
    targets = [torch.tensor([1, 2, 1]), torch.tensor([3]), torch.tensor([2, 2, 3, 1])]
    batched = emission_sensitivities(model, xs, targets)
    for (g, f), x, t in zip(batched, xs, targets):
        alone, frames = emission_sensitivity(model, x, t)
        assert g.shape == (len(t), len(x), 3) and torch.equal(f, frames)
        assert torch.allclose(g, alone, atol=1e-12)
    with pytest.raises(ValueError, match="as many targets"):
        emission_sensitivities(model, xs, targets[:2])


@pytest.mark.parametrize("name", ["CTC-2l-4h", "Trans-1l-4h"])
def test_a_selection_of_labels_gives_their_rows_and_their_spread(name):
    torch.manual_seed(5)
    model = build_model(name, input_size=3, num_classes=4)
    x, t = torch.randn(12, 3), torch.tensor([1, 3, 2, 3, 1])
    (g_all, f_all), = emission_sensitivities(model, [x], [t])
    (g_sel, f_sel), = emission_sensitivities(model, [x], [t], select=[[3, 0]])
    assert torch.allclose(g_sel, g_all[[3, 0]], atol=1e-6) and torch.equal(f_sel, f_all[[3, 0]])
    first, end = np.array([0, 2, 4, 7, 9]), np.array([2, 4, 7, 9, 12])
    assert np.allclose(spread(g_sel, first, end, rows=[3, 0]), spread(g_all, first, end)[[3, 0]])
    with pytest.raises(ValueError, match="select"):
        emission_sensitivities(model, [x], [t], select=[[5]])
    with pytest.raises(ValueError, match="no label at all"):
        emission_sensitivities(model, [x], [t], select=[[]])
    # an utterance with no label chosen, last or not, leaves the others' rows as they are
    (g_a, _), (g_b, f_b) = emission_sensitivities(model, [x, x[:7]], [t, t[:2]], select=[[3, 0], []])
    assert torch.allclose(g_a, g_sel, atol=1e-6) and g_b.shape == (0, 7, 3) and len(f_b) == 0


def test_a_transducer_emits_where_its_most_probable_alignment_does():
    from asrlib.transducer_loss import viterbi as transducer_viterbi

    torch.manual_seed(6)
    model = build_model("Trans-1l-4h", input_size=3, num_classes=4).double()
    x, t = torch.randn(10, 3, dtype=torch.float64), torch.tensor([2, 1, 3])
    _, frames = emission_sensitivity(model, x, t)
    with torch.no_grad():
        expected, _ = transducer_viterbi(model(x[None], torch.tensor([10]), t[None], torch.tensor([3]))[0], t)
    assert torch.equal(frames, expected)
