"""Recurrent layers: a cell unrolled over a padded batch, forwards or backwards in time.

:class:`Recurrent` runs any cell of :mod:`asrlib.cells` over ``x : (B, T, F)`` with lengths
``x_lens``. Padding sits after each utterance's last frame and never changes a real frame's
output, in either direction: the backward direction reverses each utterance *within its own
length*, so its first step is the utterance's last real frame, not padding.

Three implementations compute the same thing:

``"loop"``
    the cell's own ``step`` in a Python loop, with autograd: the readable reference.
``"builtin"``
    where torch has the same network (tanh/ReLU RNN, GRU, LSTM without peepholes), the
    parameters are handed to ``torch.nn.RNN/GRU/LSTM`` (cuDNN on a GPU) through
    ``torch.func.functional_call``.
``"fused"``
    the peephole LSTM, which torch does not have: :class:`asrlib.fused_lstm.PeepholeLSTMFunction`, a
    whole sequence with a hand-written backward pass through time, about as fast as ``nn.LSTM`` on a CPU.

``impl="auto"`` picks ``"builtin"`` where it exists and ``"fused"`` for the peephole LSTM.

On these, :class:`Bidirectional` pairs a forward and a backward layer (eq. 8-10) and
:class:`DeepRecurrent` stacks levels (eq. 11-12), each bidirectional level reading both
directions of the level below. :func:`load_builtin` copies the weights of torch's own
``nn.LSTM``/``nn.GRU``/``nn.RNN`` (or their cells) into any of them, for checking one against the other.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call

from asrlib.cells import GRUCell, LSTMCell, RNNCell, _Cell, make_cell
from asrlib.fused_lstm import PeepholeLSTMFunction, Reorder, peephole_inference

IMPLS = ("auto", "loop", "builtin", "fused")


def check_batch(x: torch.Tensor, x_lens: torch.Tensor | None, input_size: int) -> torch.Tensor:
    """Validate a padded batch and return its lengths (all T when ``x_lens`` is None)."""
    if x.ndim != 3 or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape (B, T, {input_size}), got {tuple(x.shape)}")
    B, T, _ = x.shape
    if x_lens is None:
        return torch.full((B,), T, dtype=torch.long, device=x.device)
    if not isinstance(x_lens, torch.Tensor) or x_lens.shape != (B,) or x_lens.is_floating_point():
        shape = tuple(x_lens.shape) if isinstance(x_lens, torch.Tensor) else type(x_lens).__name__
        raise ValueError(f"x_lens must be an integer tensor of shape ({B},), got {shape}")
    if B and (int(x_lens.min()) < 1 or int(x_lens.max()) > T):
        raise ValueError(f"x_lens must lie in 1..{T} (the padded length), got {x_lens.tolist()}")
    return x_lens.to(device=x.device, dtype=torch.long)


def frame_order(x_lens: torch.Tensor, T: int, reverse: bool) -> torch.Tensor:
    """(T, B): the frame read at each step. Backwards, each utterance is read from its last real
    frame to its first and its padding stays after it. The map is its own inverse."""
    t = torch.arange(T, device=x_lens.device).unsqueeze(1)
    lens = x_lens.unsqueeze(0)
    return torch.where(t < lens, lens - 1 - t, t) if reverse else t.expand(T, len(x_lens))


def reverse_padded(x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x : (B, T, ...)`` within its length; padding stays in place.
    Its own inverse."""
    idx = frame_order(x_lens.to(x.device), x.shape[1], reverse=True).t()
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand_as(x))


def time_mask(x_lens: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) boolean mask of the real frames."""
    return torch.arange(T, device=x_lens.device).unsqueeze(0) < x_lens.unsqueeze(1)


_BUILTINS = {RNNCell: nn.RNN, GRUCell: nn.GRU, LSTMCell: nn.LSTM}


class Recurrent(nn.Module):
    """A cell unrolled over a padded batch.

    Parameters
    ----------
    cell : RNNCell, LSTMCell or GRUCell
    reverse : bool
        Run backwards in time (the backward half of a bidirectional layer).
    impl : str
        ``"auto"``, ``"loop"``, ``"builtin"`` or ``"fused"`` (see the module docstring).

    Shapes
    ------
    ``forward(x, x_lens=None, state=None)`` with ``x : (B, T, F)``, ``x_lens : (B,)`` returns
    ``(y, final)``: ``y : (B, T, H)``, zero at padded frames, and the final state (``h``, or
    ``(h, c)`` for the LSTM, each ``(B, H)``) after each sequence's last real frame (for the
    backward direction: after its first frame). ``return_final=False`` gives ``(y, None)`` and
    lets the built-in path skip packing, its slow part on a CPU.
    """

    def __init__(self, cell: _Cell, reverse: bool = False, impl: str = "auto"):
        super().__init__()
        if type(cell) not in _BUILTINS:
            raise TypeError(f"cell must be an RNNCell, LSTMCell or GRUCell, got {type(cell).__name__}")
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")
        self.cell = cell
        self.reverse = reverse
        self.impl = self._resolve(impl)

    def _resolve(self, impl: str) -> str:
        peephole = isinstance(self.cell, LSTMCell) and self.cell.peephole
        if impl == "auto":
            return "fused" if peephole else "builtin"
        if impl == "builtin" and peephole:
            raise ValueError("torch has no peephole LSTM: use impl='fused' or 'loop'")
        if impl == "fused" and not peephole:
            raise ValueError("impl='fused' is the peephole LSTM's; use 'builtin' or 'loop' for this cell")
        return impl

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def extra_repr(self) -> str:
        return f"reverse={self.reverse}, impl={self.impl!r}"

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None, state=None, return_final: bool = True):
        x_lens = check_batch(x, x_lens, self.cell.input_size)
        state = self._check_state(state, x.shape[0], x)
        if self.impl == "fused":  # PeepholeLSTMFunction over the frames in this direction's order
            frames, inputs = self._fused_inputs(x, x_lens, state)
            y, final = self._fused_outputs(*PeepholeLSTMFunction.apply(*inputs), frames, x_lens)
            return y, final if return_final else None
        if self.reverse:
            x = reverse_padded(x, x_lens)
        if self.impl == "builtin":
            y, final = self._builtin(x, x_lens, state, return_final)
        else:
            y, final = self._loop(x, x_lens, state)
            final = final if return_final else None
        y = y * time_mask(x_lens, x.shape[1]).unsqueeze(-1).to(y.dtype)
        if self.reverse:
            y = reverse_padded(y, x_lens)
        return y, final

    def _check_state(self, state, B: int, x: torch.Tensor):
        if state is None:
            return self.cell.init_state(B, x)
        parts = state if isinstance(self.cell, LSTMCell) else (state,)
        if isinstance(self.cell, LSTMCell) and not (isinstance(state, tuple) and len(state) == 2):
            raise ValueError("the LSTM's state must be a tuple (h, c)")
        for name, s in zip(("h", "c"), parts):
            if s.shape != (B, self.cell.hidden_size):
                raise ValueError(f"initial {name} must have shape ({B}, {self.cell.hidden_size}), got {tuple(s.shape)}")
        return state

    def _loop(self, x, x_lens, state):
        """The reference: the cell's step at every frame, states frozen after each length."""
        xg = self.cell.input_projection(x)  # (B, T, G*H) for all frames at once
        mask = time_mask(x_lens, x.shape[1]).unsqueeze(-1)
        is_lstm = isinstance(self.cell, LSTMCell)
        outputs = []
        for t, xg_t in enumerate(xg.unbind(1)):
            new = self.cell.step(xg_t, state)
            keep = mask[:, t]
            if is_lstm:
                state = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1]))
                outputs.append(new[0])
            else:
                state = torch.where(keep, new, state)
                outputs.append(new)
        return torch.stack(outputs, 1), state

    def _fused_inputs(self, x, x_lens, state):
        """The frame order of this direction, and :class:`PeepholeLSTMFunction`'s inputs."""
        cell, frames = self.cell, frame_order(x_lens, x.shape[1], self.reverse)
        bias = cell.bias_ih + cell.bias_hh if cell.bias_ih is not None else x.new_zeros(4 * cell.hidden_size)
        return frames, (Reorder.apply(x, frames, True), state[0], state[1], cell.weight_ih, cell.weight_hh, bias,
                        cell.weight_ci, cell.weight_cf, cell.weight_co)

    def _fused_outputs(self, h, c, frames, x_lens):
        """``(y, final)`` from the time-major states ``h``, ``c`` in this direction's frame order."""
        y = Reorder.apply(h, frames, False) * time_mask(x_lens, h.shape[0]).unsqueeze(-1).to(h.dtype)
        last, batch = x_lens - 1, torch.arange(h.shape[1], device=h.device)   # the last step, either way
        return y, (h[last, batch], c[last, batch])

    def _builtin(self, x, x_lens, state, return_final=True):
        cell = self.cell
        kwargs = {"nonlinearity": cell.nonlinearity} if isinstance(cell, RNNCell) else {}
        template = _BUILTINS[type(cell)](
            cell.input_size, cell.hidden_size, bias=cell.bias_ih is not None, batch_first=True, device="meta", **kwargs
        )
        params = {f"{name}_l0": p for name, p in cell.named_parameters() if p is not None}
        # Packing makes the built-in stop at each length, which only the final state needs:
        # outputs at real frames never depend on the padding that follows them. Unpacked, a CPU
        # runs oneDNN's fused kernel, about 4x faster than the packed path.
        padded = return_final and bool((x_lens < x.shape[1]).any())
        inputs = nn.utils.rnn.pack_padded_sequence(x, x_lens.cpu(), batch_first=True, enforce_sorted=False) if padded else x
        hx = tuple(s.unsqueeze(0) for s in state) if isinstance(state, tuple) else state.unsqueeze(0)
        with warnings.catch_warnings():
            # cuDNN prefers one flat weight buffer; ours are separate parameters (same result)
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            out, final = functional_call(template, params, (inputs, hx))
        y = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0] if padded else out
        if not return_final:
            return y, None
        final = tuple(s.squeeze(0) for s in final) if isinstance(final, tuple) else final.squeeze(0)
        return y, final


class Bidirectional(nn.Module):
    """A bidirectional layer, eq. (8)-(10): one cell run forwards and another backwards over the
    same input, their outputs concatenated frame by frame.

    ``forward(x, x_lens)`` with ``x : (B, T, F)`` returns ``(B, T, 2H)``: ``[hf_t, hb_t]``,
    zero at padded frames. A linear layer over this concatenation is eq. (10)'s
    ``W_fy hf_t + W_by hb_t + b_y``.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, impl: str = "auto", **cell_kwargs):
        super().__init__()
        self.fwd = Recurrent(make_cell(kind, input_size, hidden_size, **cell_kwargs), reverse=False, impl=impl)
        self.bwd = Recurrent(make_cell(kind, input_size, hidden_size, **cell_kwargs), reverse=True, impl=impl)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None) -> torch.Tensor:
        x_lens = check_batch(x, x_lens, self.fwd.input_size)
        if self.fwd.impl == self.bwd.impl == "fused" and not torch.is_grad_enabled():
            # inference: the two directions' sequences side by side where they run compiled
            inputs = [d._fused_inputs(x, x_lens, d.cell.init_state(x.shape[0], x)) for d in (self.fwd, self.bwd)]
            states = peephole_inference([args for _, args in inputs])
            return torch.cat([d._fused_outputs(*hc, frames, x_lens)[0]
                              for d, (frames, _), hc in zip((self.fwd, self.bwd), inputs, states)], -1)
        return torch.cat([self.fwd(x, x_lens, return_final=False)[0], self.bwd(x, x_lens, return_final=False)[0]], -1)


class DeepRecurrent(nn.Module):
    """N recurrent levels stacked, eq. (11)-(12): level n reads level n-1's outputs, ``h^0 = x``.

    Bidirectional, every level is a :class:`Bidirectional` layer, so it receives *both* the
    forward and the backward sequence of the level below (the paper's deep bidirectional
    network); unidirectional, every level runs forwards.

    Parameters
    ----------
    kind : str
        The cell: ``"lstm"``, ``"gru"`` or ``"tanh"`` (see :func:`asrlib.cells.make_cell`).
    input_size, hidden_size, num_levels : int
        ``hidden_size`` is per direction.
    bidirectional : bool
    impl : str
        Passed to every :class:`Recurrent`.
    **cell_kwargs
        e.g. ``peephole=False`` for the LSTM.

    Shapes
    ------
    ``forward(x, x_lens=None)`` with ``x : (B, T, F)`` returns ``(B, T, D)``, the top level's
    outputs, with ``D = output_size = hidden_size * (2 if bidirectional else 1)``;
    ``return_levels=True`` returns the list of every level's outputs instead.
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, num_levels: int = 1, bidirectional: bool = True,
        impl: str = "auto", **cell_kwargs,
    ):
        super().__init__()
        if num_levels < 1 or hidden_size < 1:
            raise ValueError(f"need at least one level and one cell, got num_levels={num_levels}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size, self.bidirectional = input_size, hidden_size, bidirectional
        self.output_size = hidden_size * (2 if bidirectional else 1)
        levels = []
        for n in range(num_levels):
            size = input_size if n == 0 else self.output_size
            if bidirectional:
                levels.append(Bidirectional(kind, size, hidden_size, impl=impl, **cell_kwargs))
            else:
                levels.append(Recurrent(make_cell(kind, size, hidden_size, **cell_kwargs), impl=impl))
        self.levels = nn.ModuleList(levels)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None, return_levels: bool = False):
        x_lens = check_batch(x, x_lens, self.input_size)
        outputs = []
        for level in self.levels:
            x = level(x, x_lens) if self.bidirectional else level(x, x_lens, return_final=False)[0]
            outputs.append(x)
        return outputs if return_levels else x


def _pairs(ours: nn.Module, builtin: nn.Module):
    """(our cell, torch's parameter-name suffix) for every cell of ``ours``."""
    if isinstance(ours, _Cell):
        yield ours, "" if isinstance(builtin, nn.RNNCellBase) else "_l0"
    elif isinstance(ours, Recurrent):
        yield ours.cell, "_l0_reverse" if ours.reverse else "_l0"
    elif isinstance(ours, Bidirectional):
        yield ours.fwd.cell, "_l0"
        yield ours.bwd.cell, "_l0_reverse"
    elif isinstance(ours, DeepRecurrent):
        for n, level in enumerate(ours.levels):
            for cell, suffix in _pairs(level, builtin):
                yield cell, suffix.replace("_l0", f"_l{n}")
    else:
        raise TypeError(f"cannot copy into a {type(ours).__name__}; expected a cell, Recurrent, Bidirectional "
                        "or DeepRecurrent")


@torch.no_grad()
def load_builtin(ours: nn.Module, builtin: nn.Module) -> nn.Module:
    """Copy the weights of torch's own network into ours, so that both compute the same function.

    ``builtin`` is an ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` (into a cell of
    :mod:`asrlib.cells`) or an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, uni- or bidirectional, of one or
    more layers (into a cell, :class:`Recurrent`, :class:`Bidirectional` or :class:`DeepRecurrent`
    of the same shape). Peephole weights, which torch does not have, are set to zero. Returns ``ours``.

    >>> ours = DeepRecurrent("gru", 3, 4, num_levels=2)
    >>> theirs = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    >>> x = torch.randn(1, 5, 3)
    >>> torch.allclose(load_builtin(ours, theirs)(x), theirs(x)[0], atol=1e-6)
    True
    """
    kinds = {RNNCell: (nn.RNN, nn.RNNCell), GRUCell: (nn.GRU, nn.GRUCell), LSTMCell: (nn.LSTM, nn.LSTMCell)}
    used = set()
    for cell, suffix in _pairs(ours, builtin):
        if not isinstance(builtin, kinds[type(cell)]):
            raise TypeError(f"cannot copy a {type(builtin).__name__} into a {type(cell).__name__}")
        for name, p in cell.named_parameters():
            if name.startswith("weight_c"):      # a peephole
                p.zero_()
                continue
            source = getattr(builtin, name + suffix, None)
            if source is None or source.shape != p.shape:
                found = "nothing" if source is None else f"shape {tuple(source.shape)}"
                raise ValueError(f"{type(builtin).__name__} has {found} for {name}{suffix}, our "
                                 f"{type(cell).__name__} needs {tuple(p.shape)}")
            p.copy_(source)
            used.add(name + suffix)
    unused = {n for n, _ in builtin.named_parameters()} - used
    if unused:
        raise ValueError(f"{type(builtin).__name__} has weights that {type(ours).__name__} has no place for: "
                         f"{sorted(unused)}")
    return ours
