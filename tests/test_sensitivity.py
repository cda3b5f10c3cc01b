"""Input sensitivity (Fig. 3) against finite differences, and the reach of each direction."""

import pytest
import torch

from asrlib.models import build_model
from asrlib.sensitivity import input_sensitivity


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
