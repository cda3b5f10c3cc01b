"""What every benchmark prints with its figures: where and when they were measured."""

from __future__ import annotations

import os
import platform
import subprocess
import time

import torch


def sync(device: torch.device) -> None:
    """Wait for the GPU, so that a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def provenance(device: torch.device) -> str:
    """Device, torch version, threads, commit and date, for the header of a benchmark's output."""
    commit = os.environ.get("ASRLIB_COMMIT")  # for a copy of the tree whose .git is missing or stale
    commit = commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return (f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
            f"commit {commit}, {time.strftime('%Y-%m-%d')}")
