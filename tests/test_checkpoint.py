"""Checkpoints: atomic, weights_only, and refused under other settings or for another model."""

from pathlib import Path

import pytest
import torch

import train_job
from asrlib.checkpoint import load_checkpoint, save_checkpoint
from asrlib.train import TrainConfig, train


def test_checkpoints_refuse_other_settings_other_models_and_foreign_files(tmp_path):
    path = tmp_path / "run.pt"
    train_job.run(path, epochs=1)
    with pytest.raises(ValueError, match=r"different settings \(lr: 0.01 -> 0.02\)"):
        train_job.run(path, lr=0.02)
    net = train_job.build_model("CTC-1l-7h-nopeep", input_size=8, num_classes=62)
    with pytest.raises(ValueError, match="different model"):
        train(net, train_job.slow("ctc", 0), train_job.TinySet(16), None,
              TrainConfig(epochs=1, batch_size=4, lr=0.01, checkpoint_every=2, progress=False, weight_noise=0.05),
              device="cpu", checkpoint=path)
    # more epochs than were saved: training continues from the file
    _, history = train_job.run(path, epochs=2)
    assert history["epoch"] == [1, 2]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "code.pt", {"format": 1, "thing": Path("x")})  # a pickled object: refused
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "code.pt")
    save_checkpoint(tmp_path / "other.pt", {"weights": torch.zeros(2)})
    with pytest.raises(ValueError, match="not an asrlib training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
