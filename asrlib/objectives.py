"""Objectives: how :func:`asrlib.train.train` turns a batch into a loss and scores the dev split.

An objective defines :meth:`Objective.loss` (a batch's summed loss over its units),
:meth:`Objective.count` (the units: phones for CTC, frames for framewise training) and
:meth:`Objective.evaluate` (dev scores), and names the score that early stopping watches.
:class:`CTCObjective` is section 3.1's, :class:`TransducerObjective` section 3.2's;
:class:`asrlib.framewise.FramewiseObjective` is the framewise cross-entropy of chapter 4.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from asrlib import ctc
from asrlib.data import Batch
from asrlib.evaluate import Outputs, score
from asrlib.evaluate import count as count_errors
from asrlib.transducer_decode import greedy
from asrlib.transducer_loss import rnnt_loss


class Objective:
    """What :func:`train` optimises. Subclasses define :meth:`loss`, :meth:`count` and
    :meth:`evaluate`, and name the dev score to early-stop on (``monitor``, a key of
    :meth:`evaluate`'s result) and whether lower is better (``mode``)."""

    monitor: str = "loss"
    mode: str = "min"

    def check(self, dataset) -> None:
        """Raise a ValueError naming any item of ``dataset`` that cannot be trained on."""

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The batch's summed loss over its units."""
        raise NotImplementedError

    def count(self, batch: Batch) -> int:
        """The number of units in the batch."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, data: DataLoader, device: torch.device) -> dict[str, float]:
        """Scores on a split (the model is in eval mode, gradients off)."""
        raise NotImplementedError

    def better(self, score: float, best: float | None) -> bool:
        return best is None or (score < best if self.mode == "min" else score > best)


def check_labels(dataset, num_classes: int, blank: int, min_frames, needs: str) -> None:
    """Raise a ValueError naming the first utterance of ``dataset`` with a label outside
    0..V-1 or equal to the blank, or with fewer frames than ``min_frames(y)`` (for ``needs``)."""
    for k in range(len(dataset)):
        x, y = dataset[k].x, dataset[k].y
        name = dataset.ids[k] if hasattr(dataset, "ids") else f"item {k}"
        bad = (y < 0) | (y >= num_classes) | (y == blank)
        if bad.any():
            raise ValueError(f"utterance {name!r}: label {int(y[bad][0])} is not a phone; labels must lie "
                             f"in 0..{num_classes - 1} without the blank {blank}")
        need = min_frames(y)
        if need > len(x):
            raise ValueError(f"utterance {name!r}: its {len(y)} phones need at least {need} frames "
                             f"for {needs}, but it has {len(x)}")


class CTCObjective(Objective):
    """CTC (section 3.1) on a model that maps ``(x, x_lens)`` to ``(B, T, V)`` logits.

    The loss is ``-ln Pr(z|x)`` summed over the batch; the unit is the phone, so the
    ``"mean"`` loss is in nats per target phone. ``impl="torch"`` computes it with
    ``F.ctc_loss`` (chapter 5 shows it equal to ``asrlib.ctc.ctc_loss``, as fast on a CPU,
    where ours runs compiled, and slower on a GPU), ``"asrlib"`` with ours. The dev scores are the loss and the phone error
    rate of best-path decoding (fast enough for every epoch; chapter 6 compares the decoders).
    """

    def __init__(self, phones, impl: str = "torch", monitor: str = "per", blank: int = 0):
        if impl not in ("torch", "asrlib"):
            raise ValueError(f"unknown impl {impl!r}; expected 'torch' or 'asrlib'")
        if monitor not in ("per", "loss"):
            raise ValueError(f"unknown monitor {monitor!r}; expected 'per' or 'loss'")
        self.phones, self.impl, self.monitor, self.blank = phones, impl, monitor, blank
        self.mode = "min"

    def check(self, dataset) -> None:
        check_labels(dataset, self.phones.num_classes, self.blank,
                     lambda y: int(ctc.min_frames(y[None], torch.tensor([len(y)]))), "a CTC alignment")

    def log_probs(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """``(T, B, V)`` log-probabilities, the layout of ``ctc_loss``."""
        return model(batch.x, batch.x_lens).log_softmax(-1).transpose(0, 1)

    def _ctc(self, log_probs: torch.Tensor, batch: Batch) -> torch.Tensor:
        fn = nn.functional.ctc_loss if self.impl == "torch" else ctc.ctc_loss
        return fn(log_probs, batch.y, batch.x_lens, batch.y_lens, blank=self.blank, reduction="sum")

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self._ctc(self.log_probs(model, batch), batch)

    def count(self, batch: Batch) -> int:
        return int(batch.y_lens.sum())

    def evaluate(self, model: nn.Module, data: DataLoader, device: torch.device) -> dict[str, float]:
        total, phones, outputs = 0.0, 0, Outputs([], [], [])
        for batch in data:
            batch = batch.to(device)
            lp = self.log_probs(model, batch)
            total += self._ctc(lp, batch).item()
            phones += self.count(batch)
            outputs.extend(lp.transpose(0, 1), batch)
        per = score(outputs, self.phones, "greedy", blank=self.blank).errors.rate
        return {"loss": total / phones, "per": per}


class TransducerObjective(Objective):
    """The RNN transducer (section 3.2) on a model called as ``model(x, x_lens, y, y_lens)`` that
    returns ``(B, T, U+1, V)`` logits (:class:`asrlib.transducer.Transducer`).

    The loss is ``-ln Pr(y|x)`` from :func:`asrlib.transducer.rnnt_loss` (log-softmax fused),
    summed over the batch; the unit is the phone. The dev scores are the loss and the phone
    error rate of greedy decoding (:func:`asrlib.transducer_decode.greedy`); ``monitor`` picks
    the one early stopping watches. Any utterance of at least one frame has an alignment.
    """

    def __init__(self, phones, monitor: str = "loss", blank: int = 0):
        if monitor not in ("per", "loss"):
            raise ValueError(f"unknown monitor {monitor!r}; expected 'per' or 'loss'")
        self.phones, self.blank = phones, blank
        self.monitor, self.mode = monitor, "min"

    def check(self, dataset) -> None:
        check_labels(dataset, self.phones.num_classes, self.blank, lambda y: 1, "a transducer alignment")

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.x, batch.x_lens, batch.y, batch.y_lens)
        return rnnt_loss(logits, batch.y, batch.x_lens, batch.y_lens, blank=self.blank, reduction="sum")

    def count(self, batch: Batch) -> int:
        return int(batch.y_lens.sum())

    def evaluate(self, model: nn.Module, data: DataLoader, device: torch.device) -> dict[str, float]:
        total, phones, refs, hyps = 0.0, 0, [], []
        for batch in data:
            batch = batch.to(device)
            total += self.loss(model, batch).item()
            phones += self.count(batch)
            refs += batch.references()
            hyps += [h for h, _ in greedy(model, batch.x, batch.x_lens, blank=self.blank)]
        return {"loss": total / phones, "per": count_errors(refs, hyps, self.phones).errors.rate}
