"""Framewise phone classification: a label for every 10 ms frame, from the exact segmentation.

Before CTC (chapters 5 and 6) the book trains on a simpler target: the phone under every frame,
which the corpus knows from its segmentation, with a cross-entropy loss per frame (Graves &
Schmidhuber 2005 compared LSTM, bidirectional LSTM and other networks on exactly this task on
TIMIT). It is fast to train and directly compares cells, directions and depths. The network is
:class:`asrlib.models.AcousticModel`, the CTC network itself, only trained differently.

Accuracy is scored after folding both the prediction and the target onto the 39 classes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from asrlib.data import IGNORE_INDEX


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
        logits[..., 0] = float("-inf")  # index 0 is the CTC blank, never a frame label
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


def train_framewise(
    model: nn.Module, train_loader, dev_loader, fold_table: list[int], epochs: int = 5, lr: float = 3e-3,
    clip: float = 1.0, device: torch.device | str = "cpu", progress: bool = True,
) -> dict:
    """Adam on the framewise cross-entropy, its learning rate decayed to zero over the epochs on
    a cosine (so the last epoch is a settled one, not a step of a still-large learning rate);
    the dev accuracy after every epoch."""
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / steps, 1))))
    history = {"epoch": [], "train_loss": [], "dev_accuracy": []}
    for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, leave=False):
        total, frames = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            logits = model(batch.x, batch.x_lens)
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), batch.frame_y, ignore_index=IGNORE_INDEX)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            schedule.step()
            n = (batch.frame_y != IGNORE_INDEX).sum().item()
            total, frames = total + loss.item() * n, frames + n
        history["epoch"].append(epoch)
        history["train_loss"].append(total / frames)
        history["dev_accuracy"].append(frame_accuracy(model, dev_loader, fold_table, device))
    return history
