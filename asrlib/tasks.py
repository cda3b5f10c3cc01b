"""Small diagnostic tasks on speech frames, for the chapters on why recurrent cells differ.

:func:`recall_task`: a sequence opens with a few frames of one of a handful of phones (the
*cue*), followed by ``lag`` frames of ordinary speech cut from other utterances; the network
reads it all and must say, at the last frame, which phone opened it. Solving it means carrying
one decision across ``lag`` frames of distraction, the situation of a recogniser that must
connect sounds far apart, and the textbook failure of the plain tanh RNN.
"""

from __future__ import annotations

import numpy as np
import torch

from asrlib.cells import LSTMCell, make_cell
from asrlib.corpus import Corpus
from asrlib.features import HOP_LENGTH, NUM_FEATURES
from asrlib.layers import Recurrent

CUE_CLASSES = ("iy", "aa", "uw", "s")   # vowels at the corners of the vowel space, and a fricative


def _segments(corpus: Corpus, split: str, classes: tuple[str, ...], min_frames: int, limit: int):
    """Feature blocks of every phone of ``classes`` at least ``min_frames`` long, and all the
    utterances' features (for distractors)."""
    cues = {c: [] for c in classes}
    utterances = []
    for utt_id in corpus.ids(split)[:limit]:
        u = corpus.load(utt_id)
        utterances.append(u.features)
        for s, e, p in zip(u.starts // HOP_LENGTH, u.ends // HOP_LENGTH, u.phones):
            c = corpus.phones.to39[p]
            if c in cues and e - s >= min_frames:
                mid = (s + e) // 2
                cues[c].append(u.features[mid - min_frames // 2 : mid - min_frames // 2 + min_frames])
    missing = [c for c, v in cues.items() if not v]
    if missing:
        raise ValueError(f"no segments of {missing} with at least {min_frames} frames in the {split} split")
    return cues, utterances


def recall_task(
    corpus: Corpus, lag: int, n: int, split: str = "train", seed: int = 0, cue_frames: int = 5,
    classes: tuple[str, ...] = CUE_CLASSES, max_utterances: int = 200,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of ``cue_frames + lag`` frames and their labels.

    Returns
    -------
    x : Tensor, shape (n, cue_frames + lag, 123)
    y : LongTensor, shape (n,)
        Index into ``classes`` of the phone that opens each sequence.
    """
    if lag < 0 or n < 1:
        raise ValueError(f"lag must be >= 0 and n >= 1, got lag={lag}, n={n}")
    rng = np.random.default_rng(seed)
    cues, utterances = _segments(corpus, split, classes, cue_frames, max_utterances)
    long_enough = [f for f in utterances if len(f) > lag]
    if lag and not long_enough:
        raise ValueError(f"no utterance of the {split} split is longer than lag={lag} frames")
    x = np.empty((n, cue_frames + lag, corpus.normaliser.mean.shape[0]), np.float32)
    y = rng.integers(0, len(classes), size=n)
    for k in range(n):
        pool = cues[classes[y[k]]]
        x[k, :cue_frames] = pool[rng.integers(len(pool))]
        if lag:
            feats = long_enough[rng.integers(len(long_enough))]
            start = rng.integers(0, len(feats) - lag + 1)
            x[k, cue_frames:] = feats[start : start + lag]
    return torch.from_numpy(x), torch.from_numpy(y).long()


class RecallModel(torch.nn.Module):
    """One recurrent layer read at its last frame by a linear classifier."""

    def __init__(self, kind: str, hidden: int = 32, gate_bias: float = 0.0, num_classes: int = len(CUE_CLASSES), **cell_kwargs):
        super().__init__()
        cell = make_cell(kind, NUM_FEATURES, hidden, **cell_kwargs)
        if kind in ("lstm", "gru") and gate_bias:
            # the gate that keeps the memory: LSTM's forget gate (block 1 of i, f, g, o) and
            # GRU's update gate z (block 1 of r, z, n); a positive bias starts them near 1
            with torch.no_grad():
                cell.bias_hh[hidden : 2 * hidden] += gate_bias
        self.rnn = Recurrent(cell)
        self.head = torch.nn.Linear(hidden, num_classes)
        self.kind = "peephole lstm" if isinstance(cell, LSTMCell) and cell.peephole else kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x, return_final=False)[0][:, -1])


def train_recall(
    model: RecallModel, data: tuple, test: tuple, steps: int = 1000, batch: int = 32, lr: float = 3e-3,
    clip: float | None = 1.0, optimizer: str = "adam", eval_every: int = 100, seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict:
    """Train with Adam (or SGD with momentum 0.9) and gradient-norm clipping (``clip=None``:
    none). Returns the final test accuracy and the learning curve: per evaluation, the mean
    training loss, the test accuracy and the largest gradient norm (before clipping) since the
    last evaluation; ``gradient_norms`` has every step's."""
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam' or 'sgd'")
    torch.manual_seed(seed)
    model.to(device)
    x, y = (t.to(device) for t in data)
    x_test, y_test = (t.to(device) for t in test)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    curve = {"step": [], "loss": [], "accuracy": [], "max_gradient_norm": []}
    losses, norms = [], []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch,), device=device)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else float("inf")).item())
        opt.step()
        losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            curve["step"].append(step)
            curve["loss"].append(float(np.mean(losses[-eval_every:])))
            curve["accuracy"].append(acc)
            curve["max_gradient_norm"].append(max(norms[-eval_every:]))
    return {"accuracy": curve["accuracy"][-1], "curve": curve, "gradient_norms": norms, "losses": losses}
