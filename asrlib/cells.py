"""Recurrent cells written out from their equations: tanh RNN, LSTM with peepholes, GRU.

Each cell computes one time step. Parameter names, shapes and gate order follow
``torch.nn.RNNCell``, ``torch.nn.LSTMCell`` and ``torch.nn.GRUCell`` (``weight_ih``,
``weight_hh``, ``bias_ih``, ``bias_hh``; LSTM gates stacked as i, f, g, o; GRU gates as r, z,
n), so that the tests can copy weights from the built-ins and compare. The LSTM adds the
paper's peepholes (eq. 3-7): *diagonal* cell-to-gate weights, stored as the vectors
``weight_ci``, ``weight_cf`` and ``weight_co``; ``peephole=False`` removes them and the cell is
then exactly ``nn.LSTMCell``.

These cells are written for reading; :mod:`asrlib.layers` unrolls them over whole sequences
and has the fast paths used for training.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def check_step_input(x: torch.Tensor, input_size: int, name: str = "x") -> None:
    """A clear error for a step input that is not (B, input_size)."""
    if x.ndim != 2 or x.shape[1] != input_size:
        raise ValueError(f"{name} must have shape (B, {input_size}), got {tuple(x.shape)}")


def check_state(h: torch.Tensor, batch: int, hidden_size: int, name: str) -> None:
    if h.shape != (batch, hidden_size):
        raise ValueError(f"{name} must have shape ({batch}, {hidden_size}), got {tuple(h.shape)}")


class _Cell(nn.Module):
    """Shared parameters: input and recurrent weights for ``gates`` stacked blocks of H."""

    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(self.num_gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(self.num_gates * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(self.num_gates * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(self.num_gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: uniform in [-1/sqrt(H), 1/sqrt(H)] for every parameter."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``W_ih x + b_ih``: the part of every gate that does not depend on the past, which a
        layer computes for all frames at once."""
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)

    def recurrent_projection(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(h, self.weight_hh, self.bias_hh)

    def init_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The zero state (B, H); the LSTM's is a pair (h, c)."""
        return like.new_zeros(batch, self.hidden_size)

    def step(self, xg: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x : (B, input_size); h : (B, H) or None (zeros). Returns h_t : (B, H)."""
        check_step_input(x, self.input_size)
        h = self.init_state(len(x), x) if h is None else h
        check_state(h, len(x), self.hidden_size, "h")
        return self.step(self.input_projection(x), h)


class RNNCell(_Cell):
    """Plain recurrent unit, eq. (1): ``h_t = H(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    ``nonlinearity`` is ``"tanh"`` (the paper's ``-tanh`` networks) or ``"relu"``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def step(self, xg: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from the precomputed input projection ``xg`` (B, H)."""
        pre = xg + self.recurrent_projection(h)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class LSTMCell(_Cell):
    """LSTM with the paper's peephole connections, eq. (3)-(7)::

        i_t = sigma(W_xi x_t + W_hi h_{t-1} + w_ci * c_{t-1} + b_i)      (3)
        f_t = sigma(W_xf x_t + W_hf h_{t-1} + w_cf * c_{t-1} + b_f)      (4)
        c_t = f_t * c_{t-1} + i_t * tanh(W_xc x_t + W_hc h_{t-1} + b_c)  (5)
        o_t = sigma(W_xo x_t + W_ho h_{t-1} + w_co * c_t + b_o)          (6)  note: c_t
        h_t = o_t * tanh(c_t)                                             (7)

    ``*`` is elementwise: the cell-to-gate matrices are diagonal, stored as vectors. The
    biases b_i, b_f, b_c, b_o are ``bias_ih + bias_hh`` (two vectors, as in torch).
    """

    num_gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = True):
        self.peephole = peephole
        super().__init__(input_size, hidden_size, bias)
        if peephole:
            bound = 1.0 / math.sqrt(hidden_size)
            self.weight_ci = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
            self.weight_cf = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
            self.weight_co = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        else:
            for name in ("weight_ci", "weight_cf", "weight_co"):
                self.register_parameter(name, None)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, peephole={self.peephole}"

    def init_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros.clone()

    def gates(self, xg: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step, with every intermediate: gates ``i, f, o``, candidate ``g``, states ``c, h``."""
        h, c = state
        i, f, g, o = (xg + self.recurrent_projection(h)).chunk(4, dim=1)
        if self.peephole:
            i = i + self.weight_ci * c                  # eq. (3)
            f = f + self.weight_cf * c                  # eq. (4)
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c = f * c + i * g                               # eq. (5)
        if self.peephole:
            o = o + self.weight_co * c                  # eq. (6): the new cell state
        o = torch.sigmoid(o)
        h = o * torch.tanh(c)                           # eq. (7)
        return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}

    def step(self, xg: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.gates(xg, state)
        return out["h"], out["c"]

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x : (B, input_size); state : (h, c), each (B, H), or None (zeros). Returns (h_t, c_t)."""
        check_step_input(x, self.input_size)
        state = self.init_state(len(x), x) if state is None else state
        check_state(state[0], len(x), self.hidden_size, "h")
        check_state(state[1], len(x), self.hidden_size, "c")
        return self.step(self.input_projection(x), state)


class GRUCell(_Cell):
    """Gated recurrent unit (Cho et al. 2014), torch's formulation::

        r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    """

    num_gates = 3

    def step(self, xg: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x_r, x_z, x_n = xg.chunk(3, dim=1)
        h_r, h_z, h_n = self.recurrent_projection(h).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h


CELLS = {"rnn": RNNCell, "tanh": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(kind: str, input_size: int, hidden_size: int, **kwargs) -> _Cell:
    """A cell by name: ``"tanh"`` (or ``"rnn"``), ``"lstm"`` or ``"gru"``."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}; expected one of {sorted(CELLS)}")
    return CELLS[kind](input_size, hidden_size, **kwargs)
