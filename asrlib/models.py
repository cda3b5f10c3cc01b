"""The paper's networks, by the names of its Table 1.

A name reads ``{CTC|Trans|PreTrans}-{N}l-{M}h[-tanh|-gru][-uni][-nopeep]``: N hidden levels of
M cells (per direction), LSTM with peepholes unless ``-tanh`` or ``-gru`` says otherwise,
bidirectional unless ``-uni``. ``-nopeep`` (not in the paper) drops the peepholes, so the LSTM
runs on torch's built-in (cuDNN on a GPU). ``build_model("CTC-3l-250h")`` is the paper's
3-level bidirectional LSTM CTC network, 3.8M weights.

* ``CTC-...``: an :class:`AcousticModel`, a deep recurrent network and a softmax layer of
  V = K + 1 outputs at every frame (eq. 10, 13). Chapter 4 trains the same network
  framewise, with a cross-entropy at every frame instead of CTC.
* ``Trans-...`` and ``PreTrans-...``: a :class:`asrlib.transducer.Transducer`, the same acoustic network plus a
  prediction network and the joint network of eq. (15)-(18). ``PreTrans`` is the same network;
  the name says it is trained from pretrained acoustic and prediction networks.

Weight counts include both of torch's bias vectors per layer (``bias_ih`` and ``bias_hh``, of
which the paper has one); the difference is under 0.2% and every Table 1 count rounds to the
paper's figure (checked in ``tests/test_models.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from asrlib.layers import DeepRecurrent
from asrlib.transducer import Transducer

FAMILIES = ("CTC", "Trans", "PreTrans")
SUFFIXES = ("tanh", "gru", "uni", "nopeep")
GRAMMAR = (
    "{CTC|Trans|PreTrans}-{N}l-{M}h[-tanh|-gru][-uni][-nopeep], e.g. 'CTC-3l-250h', "
    "'CTC-3l-421h-uni', 'CTC-3l-500h-tanh', 'Trans-3l-250h', 'CTC-2l-300h-gru-uni'"
)
_NAME = re.compile(rf"({'|'.join(FAMILIES)})-([1-9][0-9]*)l-([1-9][0-9]*)h((?:-[a-z]+)*)")


@dataclass(frozen=True)
class Table1Row:
    """One row of the paper's Table 1 (TIMIT core test set)."""

    name: str
    weights: float  # millions, as printed
    epochs: int
    per: float      # phone error rate, percent


TABLE1 = tuple(
    Table1Row(*row)
    for row in (
        ("CTC-3l-500h-tanh", 3.7, 107, 37.6),
        ("CTC-1l-250h", 0.8, 82, 23.9),
        ("CTC-1l-622h", 3.8, 87, 23.0),
        ("CTC-2l-250h", 2.3, 55, 21.0),
        ("CTC-3l-421h-uni", 3.8, 115, 19.6),
        ("CTC-3l-250h", 3.8, 124, 18.6),
        ("CTC-5l-250h", 6.8, 150, 18.4),
        ("Trans-3l-250h", 4.3, 112, 18.3),
        ("PreTrans-3l-250h", 4.3, 144, 17.7),
    )
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed network name."""

    family: str
    levels: int
    hidden: int
    cell: str = "lstm"
    bidirectional: bool = True
    peephole: bool = True

    @property
    def name(self) -> str:
        """The canonical name (suffixes in grammar order)."""
        suffixes = [self.cell] if self.cell != "lstm" else []
        suffixes += [] if self.bidirectional else ["uni"]
        suffixes += [] if self.peephole or self.cell != "lstm" else ["nopeep"]
        return "-".join([self.family, f"{self.levels}l", f"{self.hidden}h", *suffixes])

    @property
    def cell_kwargs(self) -> dict:
        return {"peephole": self.peephole} if self.cell == "lstm" else {}


def parse_name(name: str) -> ModelSpec:
    """``"CTC-3l-421h-uni"`` -> ``ModelSpec("CTC", 3, 421, "lstm", bidirectional=False)``.

    Raises ValueError naming the problem and the grammar for anything else.
    """
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"cannot read network name {name!r}; names read {GRAMMAR}")
    family, levels, hidden, tail = match.groups()
    suffixes = tail.split("-")[1:]
    unknown = [s for s in suffixes if s not in SUFFIXES]
    if unknown:
        raise ValueError(f"unknown suffix -{unknown[0]} in {name!r}; names read {GRAMMAR}")
    if len(set(suffixes)) != len(suffixes) or {"tanh", "gru"} <= set(suffixes):
        raise ValueError(f"repeated or conflicting suffixes in {name!r}; names read {GRAMMAR}")
    cell = "tanh" if "tanh" in suffixes else "gru" if "gru" in suffixes else "lstm"
    if "nopeep" in suffixes and cell != "lstm":
        raise ValueError(f"-nopeep applies to the LSTM only, not to -{cell}, in {name!r}")
    return ModelSpec(family, int(levels), int(hidden), cell, "uni" not in suffixes, "nopeep" not in suffixes)


class AcousticModel(nn.Module):
    """A deep recurrent network and a softmax output layer at every frame: the CTC network.

    ``y_t = W_fy hf^N_t + W_by hb^N_t + b_y`` (eq. 10 on the top level), one linear layer over
    the concatenated directions.

    Shapes
    ------
    ``forward(x, x_lens)`` with ``x : (B, T, F)``, ``x_lens : (B,)`` returns logits
    ``(B, T, V)``; ``log_softmax`` of them are the ``Pr(k|t)`` of eq. (13) in log space.
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, num_levels: int, num_classes: int,
        bidirectional: bool = True, impl: str = "auto", **cell_kwargs,
    ):
        super().__init__()
        self.encoder = DeepRecurrent(kind, input_size, hidden_size, num_levels, bidirectional, impl, **cell_kwargs)
        self.output = nn.Linear(self.encoder.output_size, num_classes)

    @property
    def num_classes(self) -> int:
        return self.output.out_features

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.encoder(x, x_lens))


def init_paper_(model: nn.Module, scale: float = 0.1) -> nn.Module:
    """The paper's initialisation: every weight uniform in [-scale, scale] (section 4)."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-scale, scale)
    return model


def build_model(
    name: str, input_size: int = 123, num_classes: int = 62, init: str = "paper", impl: str = "auto",
) -> nn.Module:
    """The network of a Table 1 name (or any name of the same grammar, see :data:`GRAMMAR`).

    Parameters
    ----------
    name : str
        e.g. ``"CTC-3l-250h"``, ``"Trans-3l-250h"``.
    input_size : int
        F, 123 for the paper's features.
    num_classes : int
        V = K + 1 outputs with the blank: 62 for TIMIT's 61 phones.
    init : str
        ``"paper"`` (uniform in [-0.1, 0.1]) or ``"torch"`` (torch's defaults).
    impl : str
        The recurrent layers' implementation (:class:`asrlib.layers.Recurrent`).

    >>> count_parameters(build_model("CTC-3l-250h"))  # Table 1: 3.8M
    3793562
    """
    spec = parse_name(name)
    if init not in ("paper", "torch"):
        raise ValueError(f"unknown init {init!r}; expected 'paper' or 'torch'")
    if input_size < 1 or num_classes < 2:
        raise ValueError(f"need input_size >= 1 and num_classes >= 2 (phones and the blank), got {input_size}, {num_classes}")
    cls = AcousticModel if spec.family == "CTC" else Transducer
    model = cls(spec.cell, input_size, spec.hidden, spec.levels, num_classes, spec.bidirectional, impl, **spec.cell_kwargs)
    model.spec = spec
    return init_paper_(model) if init == "paper" else model


def count_parameters(model: nn.Module) -> int:
    """Trainable weights, as the paper's Table 1 counts them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
