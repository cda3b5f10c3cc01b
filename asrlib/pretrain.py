"""Pretraining the transducer as the paper did (section 3.2): ``PreTrans`` from CTC and a phone LM.

The paper's best network starts its transcription network from a trained CTC network of the
same shape, and its prediction network from a *next-phone* language model with the prediction
network's architecture, trained on the training transcriptions; only the joint network starts
from random weights.

* :class:`PhoneLM`: the prediction network (one LSTM layer over one-hot phones, the zero vector
  first) with an output layer over the K phones: ``Pr(y_{u+1} | y_1 .. y_u)``.
* :class:`PhoneLMObjective`: its cross-entropy for :func:`asrlib.train.train`; the dev scores
  are the loss (nats per phone) and the perplexity.
* :func:`pretrained_transducer`: a transducer whose transcription network is a CTC network's and
  whose prediction network is a phone LM's, with a ValueError naming both shapes when they do
  not match.
* :func:`sample`: phone sequences drawn from a phone LM (what the prediction network learnt).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader

from asrlib.data import Batch
from asrlib.objectives import Objective
from asrlib.transducer import PredictionNetwork, Transducer


class PhoneLM(nn.Module):
    """A next-phone language model shaped like the transducer's prediction network.

    ``forward(y, y_lens)`` with ``y : (B, U)`` (phones 1..K) returns logits ``(B, U + 1, K)``:
    row u predicts phone ``y_{u+1}`` (index k - 1 for phone k) from ``y_1 .. y_u``."""

    def __init__(self, num_phones: int, hidden_size: int, **cell_kwargs):
        super().__init__()
        self.prediction = PredictionNetwork(num_phones, hidden_size, **cell_kwargs)
        self.output = nn.Linear(hidden_size, num_phones)

    def forward(self, y: torch.Tensor, y_lens: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.prediction(y, y_lens))


class PhoneLMObjective(Objective):
    """Cross-entropy of every next phone of the training transcriptions (the unit is the phone;
    the sequence's end is not predicted). Dev scores: ``loss`` and ``perplexity``."""

    monitor, mode = "loss", "min"

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.y, batch.y_lens)[:, :-1]                       # rows 0..U-1 predict y_1..y_U
        real = torch.arange(batch.y.shape[1], device=batch.y.device) < batch.y_lens[:, None]
        return nn.functional.cross_entropy(logits[real], batch.y[real] - 1, reduction="sum")

    def count(self, batch: Batch) -> int:
        return int(batch.y_lens.sum())

    def evaluate(self, model: nn.Module, data: DataLoader, device: torch.device) -> dict[str, float]:
        total, phones = 0.0, 0
        for batch in data:
            batch = batch.to(device)
            total += self.loss(model, batch).item()
            phones += self.count(batch)
        return {"loss": total / phones, "perplexity": math.exp(total / phones)}


def train_phone_lm(spec, num_phones: int, train_set, dev_set, config, checkpoint, device=None) -> tuple[PhoneLM, float]:
    """A :class:`PhoneLM` shaped like the prediction network of network ``spec`` (a
    :class:`asrlib.models.ModelSpec`) over ``num_phones`` phones, trained on ``train_set``'s
    transcriptions with ``config`` (:func:`asrlib.train.train`, checkpoint ``checkpoint``).
    Returns the LM and its best dev perplexity."""
    from asrlib.train import train

    lm = PhoneLM(num_phones, spec.hidden, **(spec.cell_kwargs if spec.cell == "lstm" else {}))
    history = train(lm, PhoneLMObjective(), train_set, dev_set, config, device=device, checkpoint=checkpoint)
    return lm, min(history["dev_perplexity"])


def _copy(target: nn.Module, source: nn.Module, what: str, target_name: str, source_name: str) -> None:
    theirs, ours = source.state_dict(), target.state_dict()
    shapes = lambda sd: {k: tuple(v.shape) for k, v in sd.items()}  # noqa: E731
    if shapes(theirs) != shapes(ours):
        raise ValueError(f"the {what} of {source_name} does not fit {target_name}: "
                         f"{sorted(shapes(theirs).items())} against {sorted(shapes(ours).items())}")
    target.load_state_dict(theirs)


def pretrained_transducer(transducer: Transducer, ctc: nn.Module, lm: PhoneLM | None = None) -> Transducer:
    """Put a trained CTC network's transcription network (``ctc.encoder``) and a phone LM's
    prediction network into ``transducer``, in place; its joint network is left as it is. A
    shape that does not match raises a ValueError naming both networks. Returns ``transducer``."""
    name = getattr(getattr(transducer, "spec", None), "name", type(transducer).__name__)
    _copy(transducer.encoder, ctc.encoder, "transcription network",
          name, getattr(getattr(ctc, "spec", None), "name", type(ctc).__name__))
    if lm is not None:
        _copy(transducer.prediction, lm.prediction, "prediction network", name, "the phone LM")
    return transducer


@torch.no_grad()
def sample(lm: PhoneLM, n: int, length: int, temperature: float = 1.0, seed: int = 0) -> list[list[int]]:
    """``n`` phone sequences of ``length`` phones (indices 1..K) drawn from ``lm``."""
    gen = torch.Generator().manual_seed(seed)
    device = next(lm.parameters()).device
    y = torch.zeros(n, 0, dtype=torch.long, device=device)
    for _ in range(length):
        logits = lm(y)[:, -1] / temperature
        k = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=gen).to(device) + 1
        y = torch.cat([y, k], 1)
    return y.tolist()
