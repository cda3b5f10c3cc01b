"""The RNN transducer (section 3.2): the prediction network and the paper's joint network.

CTC's output at a frame cannot see the phones already emitted. The transducer adds a
*prediction network*, a recurrent network over the previous phones, and combines its state
``p_u`` with the acoustic network's ``l_t`` at every node (t, u) of the T x (U+1) lattice into a
distribution over the next label or the blank. The paper's contribution is the *joint network*
of eq. (15)-(18): both vectors feed one tanh layer, where Graves (2012) multiplied two
distributions. Decoding is :mod:`asrlib.transducer_decode`.
"""

from __future__ import annotations

import torch
from torch import nn

from asrlib.cells import LSTMCell
from asrlib.layers import DeepRecurrent, Recurrent


class PredictionNetwork(nn.Module):
    """The transducer's prediction network: one LSTM layer over the previous phones.

    Its input at step u is the one-hot vector of phone ``y_u`` (K inputs, phones 1..K) and at
    u = 0 the all-zero vector (no phone yet), as in Graves (2012).

    Shapes
    ------
    ``forward(y, y_lens)`` with ``y : (B, U)`` (phones 1..K, padding ignored) returns
    ``p : (B, U + 1, H)``; ``p[:, u]`` has seen ``y_1 .. y_u``.
    """

    def __init__(self, num_phones: int, hidden_size: int, impl: str = "auto", **cell_kwargs):
        super().__init__()
        self.num_phones = num_phones
        self.rnn = Recurrent(LSTMCell(num_phones, hidden_size, **cell_kwargs), impl=impl)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, U)`` phones -> ``(B, U + 1, K)``: a zero vector, then one-hot phones (0 -> zeros)."""
        if y.ndim != 2:
            raise ValueError(f"y must have shape (B, U), got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_phones):
            raise ValueError(f"phones must lie in 1..{self.num_phones} (0 for padding), got {int(y.min())}..{int(y.max())}")
        hot = nn.functional.one_hot(y.long(), self.num_phones + 1)[..., 1:].to(torch.get_default_dtype())
        return nn.functional.pad(hot, (0, 0, 1, 0))

    def forward(self, y: torch.Tensor, y_lens: torch.Tensor | None = None, state=None):
        inputs = self.one_hot(y).to(self.rnn.cell.weight_ih.dtype)
        lens = None if y_lens is None else y_lens + 1
        return self.rnn(inputs, lens, state=state)[0]


class Transducer(nn.Module):
    """The paper's RNN transducer, eq. (15)-(18).

    * ``encoder``: the acoustic (transcription) network, as in :class:`AcousticModel`;
    * ``to_l``: eq. (15), ``l_t = W_fl hf^N_t + W_bl hb^N_t + b_l``, of size H;
    * ``prediction``: :class:`PredictionNetwork`, ``p_u``, of size H;
    * the joint network: eq. (16), ``h_{t,u} = tanh(W_lh l_t + W_pb p_u + b_h)``, and eq. (17),
      ``y_{t,u} = W_hy h_{t,u} + b_y``, V outputs.

    Shapes
    ------
    ``forward(x, x_lens, y, y_lens)`` returns logits ``(B, T, U + 1, V)``, the layout of
    ``torchaudio.functional.rnnt_loss``. :meth:`encode`, :meth:`predict` and :meth:`joint`
    are the three parts, for decoding.
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, num_levels: int, num_classes: int,
        bidirectional: bool = True, impl: str = "auto", **cell_kwargs,
    ):
        super().__init__()
        self.encoder = DeepRecurrent(kind, input_size, hidden_size, num_levels, bidirectional, impl, **cell_kwargs)
        self.to_l = nn.Linear(self.encoder.output_size, hidden_size)
        prediction_kwargs = cell_kwargs if kind == "lstm" else {}
        self.prediction = PredictionNetwork(num_classes - 1, hidden_size, impl=impl, **prediction_kwargs)
        self.joint_l = nn.Linear(hidden_size, hidden_size)               # W_lh and b_h
        self.joint_p = nn.Linear(hidden_size, hidden_size, bias=False)  # W_pb
        self.output = nn.Linear(hidden_size, num_classes)                # W_hy and b_y

    @property
    def num_classes(self) -> int:
        return self.output.out_features

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``l : (B, T, H)``, eq. (15)."""
        return self.to_l(self.encoder(x, x_lens))

    def predict(self, y: torch.Tensor, y_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``p : (B, U + 1, H)``."""
        return self.prediction(y, y_lens)

    def joint(self, l: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # noqa: E741 (the paper's l)
        """Eq. (16)-(17) for broadcastable ``l (..., H)`` and ``p (..., H)``: logits ``(..., V)``."""
        return self.output(torch.tanh(self.joint_l(l) + self.joint_p(p)))

    def forward(self, x, x_lens, y, y_lens):
        l, p = self.encode(x, x_lens), self.predict(y, y_lens)  # noqa: E741
        return self.joint(l.unsqueeze(2), p.unsqueeze(1))
