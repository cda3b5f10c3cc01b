"""The RNN transducer (section 3.2): the prediction network and the paper's joint network.

CTC's output at a frame cannot see the phones already emitted. The transducer adds a
*prediction network*, a recurrent network over the previous phones, and combines its state
``p_u`` with the acoustic network's ``l_t`` at every node (t, u) of the T x (U+1) lattice into a
distribution over the next label or the blank. The paper's contribution is the *joint network*
of eq. (15)-(18): both vectors feed one tanh layer, where Graves (2012) multiplied two
distributions. The loss over the lattice is :mod:`asrlib.transducer_loss` (re-exported here),
and decoding :mod:`asrlib.transducer_decode`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asrlib.cells import LSTMCell
from asrlib.layers import DeepRecurrent, Recurrent
from asrlib.transducer_loss import occupation, rnnt_loss, viterbi

__all__ = ["JOINTS", "PredictionNetwork", "Transducer", "occupation", "rnnt_loss", "viterbi"]
JOINTS = ("paper", "graves2012")


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

    ``joint="graves2012"`` is the combination the paper improves on (Graves 2012): ``to_l`` and
    ``to_g`` map ``l_t`` and ``p_u`` each to V outputs, ``f_t`` and ``g_u``, and
    ``Pr(k|t,u)`` is proportional to ``exp(f_t^k + g_u^k)``, the product of two unnormalised
    distributions: the two networks meet only in the output.

    Either way ``l_t`` is projected once per frame and ``p_u`` once per label; only the sum, the
    tanh and the output layer run at all T x (U+1) nodes.

    Shapes
    ------
    ``forward(x, x_lens, y, y_lens)`` returns logits ``(B, T, U + 1, V)``, the layout of
    ``torchaudio.functional.rnnt_loss`` and :func:`rnnt_loss`. :meth:`encode`, :meth:`predict`
    and :meth:`joint` are the three parts, for decoding.
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, num_levels: int, num_classes: int,
        bidirectional: bool = True, impl: str = "auto", joint: str = "paper", **cell_kwargs,
    ):
        super().__init__()
        if joint not in JOINTS:
            raise ValueError(f"unknown joint {joint!r}; expected one of {JOINTS}")
        self.joint_kind = joint
        self.encoder = DeepRecurrent(kind, input_size, hidden_size, num_levels, bidirectional, impl, **cell_kwargs)
        prediction_kwargs = cell_kwargs if kind == "lstm" else {}
        self.prediction = PredictionNetwork(num_classes - 1, hidden_size, impl=impl, **prediction_kwargs)
        if joint == "paper":
            self.to_l = nn.Linear(self.encoder.output_size, hidden_size)     # eq. (15): W_fl, W_bl, b_l
            self.joint_l = nn.Linear(hidden_size, hidden_size)               # W_lh and b_h
            self.joint_p = nn.Linear(hidden_size, hidden_size, bias=False)  # W_pb
            self.output = nn.Linear(hidden_size, num_classes)                # W_hy and b_y
        else:
            self.to_l = nn.Linear(self.encoder.output_size, num_classes)     # f_t
            self.to_g = nn.Linear(hidden_size, num_classes)                  # g_u

    @property
    def num_classes(self) -> int:
        return self.prediction.num_phones + 1

    @torch.no_grad()
    def init_blank_prior_(self, frames_per_phone: float, blank: int = 0) -> Transducer:
        """Start with ``Pr(blank)`` near its share of an alignment, ``T / (T + U)``.

        An alignment holds about ``frames_per_phone`` blanks per phone, but a network with small
        random weights gives every output about 1/V. Trained with Adam, the joint network's tanh
        units then saturate within a few dozen steps to push the blank up, their gradients
        vanish, and training stalls at a loss where only the blank has been learnt (chapter 7
        shows it). Adding ``ln((V - 1) frames_per_phone)`` to the blank's output bias gives the
        blank that share from the first step. Returns the model.
        """
        if frames_per_phone <= 0:
            raise ValueError(f"frames_per_phone must be positive, got {frames_per_phone}")
        bias = self.output.bias if self.joint_kind == "paper" else self.to_l.bias
        bias[blank] += math.log((self.num_classes - 1) * frames_per_phone)
        return self

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``l : (B, T, H)``, eq. (15) (``f : (B, T, V)`` for the 2012 joint)."""
        return self.to_l(self.encoder(x, x_lens))

    def predict(self, y: torch.Tensor, y_lens: torch.Tensor | None = None) -> torch.Tensor:
        """``p : (B, U + 1, H)``."""
        return self.prediction(y, y_lens)

    def joint(self, l: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # noqa: E741 (the paper's l)
        """Eq. (16)-(17) for broadcastable ``l (..., H)`` and ``p (..., H)``: logits ``(..., V)``."""
        return self.combine(self.project_l(l), self.project_p(p))

    def project_l(self, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
        """``W_lh l_t + b_h``: once per frame (the 2012 joint: ``f_t`` itself)."""
        return l if self.joint_kind == "graves2012" else self.joint_l(l)

    def project_p(self, p: torch.Tensor) -> torch.Tensor:
        """``W_pb p_u``: once per label prefix (the 2012 joint: ``g_u``)."""
        return self.to_g(p) if self.joint_kind == "graves2012" else self.joint_p(p)

    def combine(self, lp: torch.Tensor, pp: torch.Tensor) -> torch.Tensor:
        """The rest of eq. (16)-(17) at each node, from broadcastable projections: logits."""
        return lp + pp if self.joint_kind == "graves2012" else self.output(torch.tanh(lp + pp))

    def forward(self, x, x_lens, y, y_lens):
        l, p = self.encode(x, x_lens), self.predict(y, y_lens)  # noqa: E741
        return self.joint(l.unsqueeze(2), p.unsqueeze(1))
