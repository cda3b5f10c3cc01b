"""Training checkpoints: written atomically, read without running code, resumed only when it is safe.

A checkpoint is one ``torch.save`` of a dict: the weights, the optimiser and schedule state, the
history, the best weights so far and the position in the epoch (:func:`asrlib.train.train`
writes it). :func:`save_checkpoint` writes it to a temporary file beside the target, flushed to
disk, then renamed over it: a run killed while saving leaves the previous checkpoint intact.
:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``, so a checkpoint from
elsewhere cannot run code; :func:`load_weights` reads the weights a run kept from its checkpoint
or from its ``model.pt``. :func:`check_resumable` refuses to continue a run under different
settings, naming each one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

CHECKPOINT_FORMAT = 1
# Settings that may change between a run and its resumption; any other difference is an error.
RESUMABLE_CHANGES = ("epochs", "patience", "restore_best", "progress", "checkpoint_every")


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(state, f))


def save_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def _read(path: str | os.PathLike, map_location, what: str):
    """``torch.load`` with ``weights_only=True`` (no code runs); a truncated or foreign file is a
    ValueError that names it and says what it should have been."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path} is not a readable {what} ({type(e).__name__}: {e})") from e


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Read a checkpoint written by :func:`train`, with ``weights_only=True`` (no code runs)."""
    state = _read(path, map_location, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an asrlib training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def load_weights(path: str | os.PathLike, map_location=None) -> dict:
    """The weights a finished run keeps, from either of the files a run writes: a training
    checkpoint (its best weights, else its last) or a weights file (``model.pt``, a state dict).
    Read with ``weights_only=True``; anything else is an error that names the file."""
    state = _read(path, map_location, "weights file")
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        return state["best_model"] or state["model"]
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise ValueError(f"{path} holds neither an asrlib training checkpoint nor a state dict of weights")


def check_resumable(path, saved: dict, ours: dict) -> None:
    """Raise a ValueError naming every setting of ``ours`` (a config as a dict) that differs from
    the ``saved`` one in a way a resumed run cannot honour. A cosine schedule depends on the
    number of epochs, so for it ``epochs`` may not change either."""
    changed = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v and k not in RESUMABLE_CHANGES}
    if ours.get("schedule") == "cosine" and saved.get("epochs") != ours.get("epochs"):
        changed["epochs"] = (saved.get("epochs"), ours.get("epochs"))
    if changed:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"{path} was written with different settings ({listed}); use a new checkpoint path "
                         f"or the same settings to resume")


def cpu_copy(model) -> dict:
    """A copy of ``model``'s state dict on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def average_weights(states: list[dict]) -> dict:
    """The element-wise mean of the state dicts ``states`` (on the first one's devices); tensors
    that are not floating point, such as counters, are taken from the last state."""
    if not states:
        raise ValueError("average_weights needs at least one state dict")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise ValueError(f"the state dicts to average hold different tensors: {sorted(keys ^ set(state))}")
    return {k: torch.stack([s[k].to(v.device) for s in states]).mean(0) if v.is_floating_point() else states[-1][k]
            for k, v in states[0].items()}


def resume_state(path, config, model, opt, schedule, device) -> dict:
    """Load the checkpoint at ``path`` into ``model``, ``opt`` and ``schedule`` (refusing other
    settings than ``config``'s) and return the trainer's state from it."""
    saved = load_checkpoint(path, map_location=device)
    check_resumable(path, saved["config"], dataclasses.asdict(config))
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as e:
        raise ValueError(f"{path} holds weights for a different model: {e}") from e
    opt.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["scheduler"])
    return {"recent": saved.get("recent", []),
            **{k: saved[k] for k in ("epoch", "step", "seconds", "bad_epochs", "best_score", "best_model", "history")}}
