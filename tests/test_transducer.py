"""The RNN transducer: the joint network of eq. (16)-(17) and a causal prediction network."""

import pytest
import torch

from asrlib.models import build_model


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
