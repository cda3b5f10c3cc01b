"""Checkpoints: atomic, weights_only, and refused under other settings or for another model; the kept weights
read back from a checkpoint or a weights file alike."""

from pathlib import Path

import pytest
import torch

import train_job
from asrlib.checkpoint import load_checkpoint, load_weights, save_checkpoint
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


def test_the_kept_weights_read_alike_from_a_checkpoint_and_from_a_weights_file(tmp_path):
    path = tmp_path / "run.pt"
    net, _ = train_job.run(path, epochs=3)        # restore_best: the network ends with the best epoch's weights
    kept = load_weights(path)
    for k, v in net.state_dict().items():
        assert torch.equal(kept[k], v)
    torch.save(net.state_dict(), tmp_path / "model.pt")   # what asrlib.run writes beside its checkpoints
    for k, v in load_weights(tmp_path / "model.pt").items():
        assert torch.equal(v, kept[k])
    saved = load_checkpoint(path)
    last, best = {k: v + 1 for k, v in saved["model"].items()}, saved["model"]   # two different sets of weights
    save_checkpoint(tmp_path / "both.pt", {**saved, "model": last, "best_model": best})
    assert all(torch.equal(load_weights(tmp_path / "both.pt")[k], v) for k, v in best.items())   # the best, not the last
    save_checkpoint(tmp_path / "no-best.pt", {**saved, "model": last, "best_model": None})       # no best yet: the last
    assert all(torch.equal(load_weights(tmp_path / "no-best.pt")[k], v) for k, v in last.items())
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="junk.pt is not a readable weights file"):
        load_weights(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "history.pt", {"dev_per": [0.5, 0.4]})
    with pytest.raises(ValueError, match="neither an asrlib training checkpoint nor a state dict"):
        load_weights(tmp_path / "history.pt")
