"""Framewise phone classification: a label for every 10 ms frame, from the exact segmentation.

Before CTC (chapters 5 and 6) the book trains on a simpler target: the phone under every frame,
which the corpus knows from its segmentation, with a cross-entropy loss per frame (Graves &
Schmidhuber 2005 compared LSTM, bidirectional LSTM and other networks on exactly this task on
TIMIT). It is fast to train and directly compares cells, directions and depths. The network is
:class:`asrlib.models.AcousticModel`, the CTC network itself, only trained differently.

Accuracy is scored after folding both the prediction and the target onto the 39 classes.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from asrlib.data import IGNORE_INDEX


@torch.no_grad()
def frame_accuracy(model: nn.Module, loader, fold_table: list[int], device: torch.device | str = "cpu") -> float:
    """Fraction of real frames whose predicted phone folds onto the same of the 39 classes as
    the target. ``fold_table`` is :meth:`asrlib.phones.PhoneSet.fold_table`."""
    model.eval()
    table = torch.tensor(fold_table, device=device)
    correct = total = 0
    for batch in loader:
        batch = batch.to(device)
        logits = model(batch.x, batch.x_lens)
        logits[..., 0] = float("-inf")  # index 0 is the CTC blank, never a frame label
        real = batch.frame_y != IGNORE_INDEX
        target = table[batch.frame_y.clamp(min=0)]
        keep = real & (target >= 0)
        correct += (table[logits.argmax(-1)] == target)[keep].sum().item()
        total += keep.sum().item()
    model.train()
    return correct / max(total, 1)


def train_framewise(
    model: nn.Module, train_loader, dev_loader, fold_table: list[int], epochs: int = 5, lr: float = 3e-3,
    clip: float = 1.0, device: torch.device | str = "cpu", progress: bool = True,
) -> dict:
    """Adam on the framewise cross-entropy; the dev accuracy after every epoch."""
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
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
            n = (batch.frame_y != IGNORE_INDEX).sum().item()
            total, frames = total + loss.item() * n, frames + n
        history["epoch"].append(epoch)
        history["train_loss"].append(total / frames)
        history["dev_accuracy"].append(frame_accuracy(model, dev_loader, fold_table, device))
    return history
