"""A tiny CTC (or transducer) training run for the trainer's tests, importable and runnable.

``python tests/train_job.py CHECKPOINT [SLEEP] [--transducer]`` trains and saves the final weights
beside the checkpoint; under ``torchrun`` the same script trains with DistributedDataParallel.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from torch.utils.data import Dataset

from asrlib.data import Item
from asrlib.models import build_model
from asrlib.phones import PhoneSet
from asrlib.objectives import CTCObjective, TransducerObjective
from asrlib.train import TrainConfig, train

FEATURES = 8
PHONES = PhoneSet("timit")


class TinySet(Dataset):
    """``n`` random utterances of 12-30 frames with 2-5 labels from 1..6."""

    def __init__(self, n: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.items, self.ids = [], [f"tiny{k}" for k in range(n)]
        for _ in range(n):
            T = int(torch.randint(12, 31, (1,), generator=g))
            U = int(torch.randint(2, 6, (1,), generator=g))
            y = torch.randint(1, 7, (U,), generator=g)
            self.items.append(Item(torch.randn(T, FEATURES, generator=g), y, torch.zeros(T, dtype=torch.long)))
        self.num_frames = torch.tensor([len(it.x) for it in self.items]).numpy()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        return self.items[k]


class Slow:
    """An objective that sleeps before every loss, so that a test can kill the run part-way."""

    def __init__(self, objective, sleep: float):
        self.objective, self.sleep = objective, sleep

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def loss(self, model, batch):
        time.sleep(self.sleep)
        return self.objective.loss(model, batch)


def slow(kind: str, sleep: float) -> Slow:
    objective = CTCObjective if kind == "ctc" else TransducerObjective
    return Slow(objective(PHONES, monitor="loss"), sleep)


def model(seed: int = 0, kind: str = "ctc"):
    torch.manual_seed(seed)
    name = "CTC-1l-6h-nopeep" if kind == "ctc" else "Trans-1l-6h-nopeep"
    return build_model(name, input_size=FEATURES, num_classes=PHONES.num_classes, init="paper")


class Stop(Exception):
    pass


def run(checkpoint=None, sleep: float = 0.0, data=None, kind: str = "ctc", on_epoch=None, stop_after=None,
        device: str = "cpu", **settings):
    """Train the tiny model; ``stop_after=k`` interrupts the run after epoch k's checkpoint."""
    settings = {"epochs": 4, "batch_size": 4, "lr": 0.01, "checkpoint_every": 2, "progress": False,
                "weight_noise": 0.05, **settings}
    train_set = data if data is not None else TinySet(16)
    net = model(kind=kind)
    objective = slow(kind, sleep)

    def hook(epoch, model):
        if on_epoch is not None:
            on_epoch(epoch, model)
        if stop_after is not None and epoch > stop_after:
            raise Stop(epoch)

    try:
        history = train(net, objective, train_set, TinySet(4, seed=1), TrainConfig(**settings), device=device,
                        checkpoint=checkpoint, on_epoch=hook)
    except Stop:
        return net, None
    return net, history


if __name__ == "__main__":
    torch.set_num_threads(1)
    kind = "transducer" if "--transducer" in sys.argv else "ctc"
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path, sleep = args[0], float(args[1]) if len(args) > 1 else 0.0
    if "--ddp" in sys.argv:  # one full batch per step: two processes of 8 against one process of 16
        net, history = run(None, epochs=3, batch_size=8, weight_noise=0.0, checkpoint_every=None)
    else:
        net, history = run(path, sleep, kind=kind)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"model": net.state_dict(), "history": history}, path + ".final")
