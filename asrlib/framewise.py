"""Framewise phone classification: a label for every 10 ms frame, from the exact segmentation.

Before CTC (chapters 5 and 6) the book trains on a simpler target: the phone under every frame,
which the corpus knows from its segmentation, with a cross-entropy loss per frame (Graves &
Schmidhuber 2005 compared LSTM, bidirectional LSTM and other networks on exactly this task on
TIMIT). It is fast to train and directly compares cells, directions and depths. The network is
:class:`asrlib.models.AcousticModel`, the CTC network itself, only trained differently.

Accuracy is scored after folding both the prediction and the target onto the 39 classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from asrlib.features import IGNORE_INDEX
from asrlib.objectives import Objective
from asrlib.phones import BLANK
from asrlib.train import TrainConfig, train


@torch.no_grad()
def frame_predictions(
    model: nn.Module, loader, fold_table: list[int], device: torch.device | str = "cpu",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For every utterance of ``loader`` (in its order), the predicted and the target class of
    each real frame, both folded onto the 39 classes (-1 where the target folds to "deleted").
    ``fold_table`` is :meth:`asrlib.phones.PhoneSet.fold_table`."""
    model.eval()
    table = torch.tensor(fold_table, device=device)
    results = []
    for batch in loader:
        batch = batch.to(device)
        logits = model(batch.x, batch.x_lens)
        logits[..., BLANK] = float("-inf")  # the CTC blank is never a frame label
        predicted = table[logits.argmax(-1)].cpu().numpy()
        target = table[batch.frame_y.clamp(min=0)].cpu().numpy()
        for b, n in enumerate(batch.x_lens.tolist()):
            results.append((predicted[b, :n], target[b, :n]))
    model.train()
    return results


def frame_accuracy(model: nn.Module, loader, fold_table: list[int], device: torch.device | str = "cpu") -> float:
    """Fraction of real frames whose predicted phone folds onto the same of the 39 classes as
    the target (frames whose target folds to "deleted" are not counted)."""
    correct = total = 0
    for predicted, target in frame_predictions(model, loader, fold_table, device):
        keep = target >= 0
        correct += int((predicted == target)[keep].sum())
        total += int(keep.sum())
    return correct / max(total, 1)


class FramewiseObjective(Objective):
    """Cross-entropy of every real frame against its phone; the unit is the frame, the dev
    score the folded frame accuracy (:func:`frame_accuracy`)."""

    monitor, mode = "accuracy", "max"

    def __init__(self, fold_table: list[int]):
        self.fold_table = fold_table

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        logits = model(batch.x, batch.x_lens)
        return nn.functional.cross_entropy(logits.transpose(1, 2), batch.frame_y, ignore_index=IGNORE_INDEX,
                                           reduction="sum")

    def count(self, batch) -> int:
        return int((batch.frame_y != IGNORE_INDEX).sum())

    def evaluate(self, model: nn.Module, data, device) -> dict[str, float]:
        return {"accuracy": frame_accuracy(model, data, self.fold_table, device)}


def train_framewise(
    model: nn.Module, train_set, dev_set, fold_table: list[int], epochs: int = 5, lr: float = 3e-3,
    clip: float = 1.0, device: torch.device | str = "cpu", progress: bool = True, batch_size: int = 16,
) -> dict:
    """Adam on the framewise cross-entropy, its learning rate decayed to zero over the epochs on
    a cosine (so the last epoch is a settled one, not a step of a still-large learning rate);
    the dev accuracy after every epoch. :func:`asrlib.train.train` with the settings above; the
    model keeps its last epoch's weights."""
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr, schedule="cosine", clip=clip,
                         restore_best=False, progress=progress)
    return train(model, FramewiseObjective(fold_table), train_set, dev_set, config, device=device)
