"""The trainer: one loop for every experiment from chapter 5 on, resumable and multi-GPU.

:func:`train` runs ``model`` on an *objective* (how a batch becomes a loss, and how the dev
split is scored: :mod:`asrlib.objectives`) under a :class:`TrainConfig`:

* **optimiser**: SGD with momentum (the paper's learning rate 1e-4, momentum 0.9) or Adam; a
  constant or cosine-decayed learning rate; gradient-norm clipping.
* **Gaussian weight noise** (section 3.4): before a sequence's forward pass every weight gets
  ``N(0, sigma^2)`` noise (sigma = 0.075 in the paper), the gradient is taken at the noisy
  weights, and the update is applied to the clean ones. The paper trains one sequence at a
  time, so it draws once per sequence. ``noise_per="sequence"`` keeps exactly that inside a
  batch: each utterance runs alone with its own draw, and the batch's gradient is the sum of
  theirs (the same gradient the paper's sequence-by-sequence updates would follow, at the
  cost of batch parallelism). ``noise_per="batch"`` shares one draw across the batch: as fast
  as training without noise, but 16 sequences then see the same perturbation, which explores
  B times fewer noisy networks per epoch.
* **early stopping** on the dev split: after every epoch the objective scores the dev split;
  training stops after ``patience`` epochs without a better score, and the model ends with the
  best epoch's weights (``restore_best=False``: the last epoch's).
* **weight averaging**: ``average=k`` ends with the mean of the weights at the end of the last
  ``k`` epochs instead (checkpoint averaging, as ASR toolkits such as ESPnet and icefall end
  their recipes; the same mean as :class:`torch.optim.swa_utils.AveragedModel`'s). A mean over
  the end of a noisy trajectory often generalises better than any one point of it.
* **checkpoints**: with ``checkpoint=path``, the whole state (weights, optimiser, schedule,
  history, best weights, position in the epoch) is written at the end of every epoch and every
  ``checkpoint_every`` steps, atomically (a temporary file, then ``os.replace``: a run killed
  while saving leaves the previous checkpoint intact). Calling :func:`train` again with the
  same path resumes where the file stops, and reaches the same weights as a run never
  interrupted: batch order depends only on (seed, epoch) and each step's noise only on (seed,
  step, rank). Checkpoints load with ``torch.load(weights_only=True)``.
* **multi-GPU**: launched by ``torchrun --nproc_per_node N script.py``, the same code joins
  the process group (NCCL on CUDA, gloo on CPU), wraps the model in DistributedDataParallel and
  gives each process its share of every epoch's batches. Losses are normalised by the count
  over *all* processes, so N processes with batch B take the same steps as one process with
  batch N*B. Every process scores the whole dev split (identical results, so every process
  makes the same early-stopping decision); only rank 0 writes checkpoints and shows progress.

* **robustness** (chapter 11): ``normalise="utterance"`` normalises every utterance by its own
  mean and variance instead of the training split's; ``augment`` (an
  :class:`asrlib.augment.Augment`, kept as a dict) perturbs every training utterance afresh each
  epoch, deterministically (:class:`asrlib.data.AugmentedDataset`).

The losses are sums over *units* (phones for CTC, frames for framewise training) divided by
the number of units in the batch (``reduction="mean"``), or not divided (``"sum"``, the paper's
SGD on each sequence's total ``-ln Pr(z|x)``, for which learning rate 1e-4 is meant).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from asrlib.checkpoint import CHECKPOINT_FORMAT, average_weights, cpu_copy, resume_state, save_checkpoint
from asrlib.augment import Augment
from asrlib.data import NORMALISE, AugmentedDataset, Batch, LengthBucketSampler, collate, loader
from asrlib.objectives import Objective
from asrlib.runtime import get_device, progress_bar

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
NOISE_PER = ("sequence", "batch")
REDUCTIONS = ("mean", "sum")


@dataclass
class TrainConfig:
    """How to train. The defaults are the paper's optimiser (SGD, 1e-4, momentum 0.9) without
    noise; see the module docstring for each setting's meaning."""

    epochs: int = 20
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float = 1e-4
    momentum: float = 0.9
    schedule: str = "constant"
    reduction: str = "mean"
    clip: float | None = None
    weight_noise: float = 0.0
    noise_per: str = "sequence"
    patience: int | None = None
    restore_best: bool = True
    seed: int = 0
    checkpoint_every: int | None = None
    eval_batch_size: int = 32
    progress: bool = True
    normalise: str = "train"
    augment: dict | None = None
    average: int | None = None

    def __post_init__(self):
        if isinstance(self.augment, Augment):  # kept as a plain dict: checkpoints hold plain types
            self.augment = self.augment.to_dict()
        if self.augment is not None:
            self.augment = Augment.from_dict(self.augment).to_dict()  # validated, every field named
        if self.normalise not in NORMALISE:
            raise ValueError(f"unknown normalise {self.normalise!r}; expected one of {NORMALISE}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("noise_per", NOISE_PER),
                              ("reduction", REDUCTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_noise < 0:
            raise ValueError(f"lr must be positive and weight_noise >= 0, got {self.lr}, {self.weight_noise}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"clip must be positive or None, got {self.clip}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 or None, got {self.patience}")
        if self.average is not None and self.average < 1:
            raise ValueError(f"average must be at least 1 or None, got {self.average}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 or None, got {self.checkpoint_every}")


# ---------------------------------------------------------------------------------------------
# the loop


def _distributed(device) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun the process group is created by the first call
    and kept for the process's life (a two-stage run trains twice in one group); it is destroyed
    at exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        return 0, 1, get_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(dist.destroy_process_group)
    if torch.cuda.is_available() and device is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), get_device(device)


def _noise_generator(seed: int, step: int, rank: int, piece: int, device: torch.device) -> torch.Generator:
    entropy = np.random.SeedSequence([seed, step, rank, piece]).generate_state(1)[0]
    return torch.Generator(device).manual_seed(int(entropy))


def _schedule(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        return lambda step: 1.0
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def _new_history() -> dict:
    return {"epoch": [], "train_loss": [], "lr": [], "seconds": [], "step_loss": [], "best_epoch": None,
            "stopped_early": False}


def train(
    model: nn.Module, objective: Objective, train_set, dev_set, config: TrainConfig | None = None,
    device: str | torch.device | None = None, checkpoint: str | os.PathLike | None = None, on_epoch=None,
) -> dict:
    """Train ``model`` in place and return its history.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x, x_lens)`` by the objective.
    objective : Objective
    train_set, dev_set : SpeechDataset
        Datasets of :class:`asrlib.data.Item` with a ``num_frames`` array (for batching by
        length); ``dev_set=None`` trains without scoring or early stopping.
    config : TrainConfig
    device : str or torch.device, optional
        Default: :func:`asrlib.runtime.get_device` (under torchrun on CUDA, ``cuda:LOCAL_RANK``).
    checkpoint : path, optional
        Where to save the state; if the file exists, training resumes from it.
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, model)`` (epoch counted from 1) after each epoch is scored and
        before it is checkpointed, e.g. to score the epoch on other data; a resumed run does not
        call it again for the epochs before the resume.

    Returns
    -------
    dict
        Lists per epoch: ``epoch``, ``train_loss`` (mean per unit), ``lr``, ``seconds``
        (cumulative training time) and ``dev_<score>`` for every score of the objective; per
        step: ``step_loss``; and ``best_epoch``, ``stopped_early``.
    """
    config = config or TrainConfig()
    rank, world, device = _distributed(device)
    show = config.progress and rank == 0
    for dataset in (train_set, dev_set):
        if dataset is not None:
            objective.check(dataset)
    train_set, dev_set = robust_data(train_set, dev_set, config)  # after the check: it reads every item
    model.to(device)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    else:
        opt = torch.optim.Adam(params, lr=config.lr)
    sampler = LengthBucketSampler(train_set.num_frames, config.batch_size, seed=config.seed, num_replicas=world, rank=rank)
    steps_per_epoch = len(sampler.epoch_batches(0))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config, steps_per_epoch))
    dev_data = loader(dev_set, config.eval_batch_size, shuffle=False) if dev_set is not None else None

    state = {"epoch": 0, "step": 0, "seconds": 0.0, "bad_epochs": 0, "best_score": None,
             "best_model": None, "recent": [], "history": _new_history()}
    if checkpoint is not None and Path(checkpoint).exists():
        state = resume_state(checkpoint, config, model, opt, schedule, device)
    history = state["history"]

    def save():
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(config), "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": schedule.state_dict(),
                **state,
            })

    epochs = progress_bar(range(state["epoch"], config.epochs), desc="epochs", initial=state["epoch"], total=config.epochs,
                  disable=not show, leave=False)
    for epoch in epochs:
        if history["stopped_early"]:
            break
        done = state["step"] - epoch * steps_per_epoch  # batches of this epoch before a resume
        batches = sampler.epoch_batches(epoch)[done:]
        if hasattr(train_set, "set_epoch"):  # augmentation: item i of epoch e depends on (seed, e, i)
            train_set.set_epoch(epoch)
        data = DataLoader(train_set, batch_sampler=batches, collate_fn=collate, pin_memory=device.type == "cuda")
        start = time.perf_counter()
        model.train()
        for batch in progress_bar(data, desc=f"epoch {epoch + 1}", disable=not show, leave=False):
            opt.zero_grad(set_to_none=True)
            loss = _gradient(net, params, objective, batch.to(device), config, state["step"], rank, world)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss is {loss} at epoch {epoch + 1}, step {state['step'] + 1}; the model "
                    f"keeps the weights before this step" + (f", as does {checkpoint}" if checkpoint else ""))
            if config.clip is not None:
                nn.utils.clip_grad_norm_(params, config.clip)
            opt.step()
            schedule.step()
            history["step_loss"].append(loss)
            state["step"] += 1
            if config.checkpoint_every and state["step"] % config.checkpoint_every == 0:
                state["seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                save()
        state["seconds"] += time.perf_counter() - start
        _end_epoch(model, objective, dev_data, device, config, state, epoch, steps_per_epoch,
                   lr=opt.param_groups[0]["lr"])
        if config.average:  # the weights at the end of the last `average` epochs
            state["recent"] = [*state["recent"], cpu_copy(model)][-config.average:]
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
        epochs.set_postfix({k: f"{v[-1]:.3g}" for k, v in history.items() if k.startswith("dev_")})
        save()
    if config.average and state["recent"]:
        model.load_state_dict(average_weights(state["recent"]))
    elif config.restore_best and state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    return history


def robust_data(train_set, dev_set, config: TrainConfig):
    """The datasets as ``config`` asks: both normalised per utterance (``normalise="utterance"``),
    and the training split augmented on the fly (``augment``, :class:`asrlib.data.AugmentedDataset`).
    With the defaults, the datasets themselves."""
    if config.normalise != "train":
        train_set = train_set.normalised(config.normalise)
        dev_set = dev_set.normalised(config.normalise) if dev_set is not None else None
    if config.augment is not None and not Augment.from_dict(config.augment).is_identity:
        train_set = AugmentedDataset(train_set, Augment.from_dict(config.augment), seed=config.seed)
    return train_set, dev_set


def _gradient(net, params, objective, batch: Batch, config: TrainConfig, step: int, rank: int, world: int) -> float:
    """Accumulate the batch's gradient (under weight noise if configured) into ``.grad``;
    return this process's loss per unit."""
    count = objective.count(batch)
    # DDP averages the processes' gradients; dividing each process's loss by the number of
    # units over all processes / world (or, for a sum, by 1 / world) makes that average the
    # gradient of the mean (or sum) over the whole distributed batch
    if config.reduction == "sum":
        norm = 1.0 / world
    elif world == 1:
        norm = float(count)
    else:
        units = torch.tensor(float(count), device=params[0].device)
        dist.all_reduce(units)
        norm = units.item() / world
    noisy = config.weight_noise > 0
    pieces = [batch.select(i) for i in range(len(batch.x))] if noisy and config.noise_per == "sequence" else [batch]
    clean = [p.detach().clone() for p in params] if noisy else None
    total = 0.0
    for k, piece in enumerate(pieces):
        if noisy:
            gen = _noise_generator(config.seed, step, rank, k, params[0].device)
            with torch.no_grad():
                for p in params:
                    p.add_(torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype), alpha=config.weight_noise)
        last = k == len(pieces) - 1
        sync = net.no_sync() if world > 1 and not last else contextlib.nullcontext()
        with sync:
            loss = objective.loss(net, piece)
            (loss / norm).backward()
        total += loss.item()
        if noisy:
            with torch.no_grad():
                for p, c in zip(params, clean):
                    p.copy_(c)
    return total / max(count, 1)


def _end_epoch(model, objective, dev_data, device, config, state, epoch, steps_per_epoch, lr: float) -> None:
    history = state["history"]
    done = history["step_loss"][-steps_per_epoch:] if steps_per_epoch else []
    history["epoch"].append(epoch + 1)
    history["train_loss"].append(float(np.mean(done)) if done else float("nan"))
    history["lr"].append(lr)
    history["seconds"].append(state["seconds"])
    state["epoch"] = epoch + 1
    if dev_data is None:
        return
    model.eval()
    with torch.no_grad():
        scores = objective.evaluate(model, dev_data, device)
    model.train()
    for key, value in scores.items():
        history.setdefault(f"dev_{key}", []).append(value)
    score = scores[objective.monitor]
    if objective.better(score, state["best_score"]):
        state["best_score"], state["bad_epochs"] = score, 0
        state["best_model"] = cpu_copy(model)
        history["best_epoch"] = epoch + 1
    else:
        state["bad_epochs"] += 1
        if config.patience is not None and state["bad_epochs"] >= config.patience:
            history["stopped_early"] = True
