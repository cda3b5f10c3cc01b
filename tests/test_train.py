"""The trainer: resume after a kill, DDP equals one process, weight noise, early stopping,
checkpoints and clear errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train_job
from asrlib.data import Item, collate
from asrlib.checkpoint import average_weights, load_checkpoint, save_checkpoint
from asrlib.objectives import CTCObjective, Objective
from asrlib.train import TrainConfig, train

JOB = Path(__file__).with_name("train_job.py")
ROOT = JOB.parent.parent


def _env():
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["ctc", "transducer"])
def test_killed_run_resumes_to_the_same_weights(tmp_path, kind):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed run is a one-thread subprocess: same arithmetic
    try:
        reference, ref_history = train_job.run(None, kind=kind)
        path = tmp_path / "run.pt"
        job = subprocess.Popen([sys.executable, str(JOB), str(path), "0.05", f"--{kind}"], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            if path.exists() and load_checkpoint(path)["step"] >= 5:
                break
            time.sleep(0.05)
        assert job.poll() is None, f"the job ended before it could be killed: {job.stdout.read().decode()}"
        job.send_signal(signal.SIGKILL)
        job.wait()
        interrupted = load_checkpoint(path)
        assert 5 <= interrupted["step"] < 16, "killed part-way through the 16 steps"
        resumed, history = train_job.run(path, kind=kind)
    finally:
        torch.set_num_threads(threads)
    assert _same_weights(reference.state_dict(), resumed.state_dict())
    assert history["step_loss"] == ref_history["step_loss"]
    assert history["dev_loss"] == ref_history["dev_loss"]
    # the finished checkpoint resumes to a no-op that returns the same result
    again, history2 = train_job.run(path, kind=kind)
    assert _same_weights(again.state_dict(), resumed.state_dict()) and history2 == history


def test_two_processes_under_torchrun_equal_one_process_with_the_double_batch(tmp_path):
    path = str(tmp_path / "ddp.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(JOB), path, "0", "--ddp"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ddp = torch.load(path + ".final", weights_only=True)
    single, history = train_job.run(None, epochs=3, batch_size=16, weight_noise=0.0, checkpoint_every=None)
    assert len(history["step_loss"]) == len(ddp["history"]["step_loss"]) == 3  # one full batch per step
    start = train_job.model().state_dict()
    for k, v in single.state_dict().items():
        assert not torch.allclose(v, start[k]), f"{k} never moved"
        torch.testing.assert_close(ddp["model"][k], v, atol=1e-5, rtol=1e-4)


def test_per_sequence_noise_of_zero_gives_the_batch_gradient():
    """Splitting the batch into sequences and summing their gradients is the batch gradient."""
    data = train_job.TinySet(16)
    a, _ = train_job.run(None, data=data, epochs=1, weight_noise=0.0, optimizer="sgd", momentum=0.0)
    b, _ = train_job.run(None, data=data, epochs=1, weight_noise=1e-30, noise_per="sequence", optimizer="sgd",
                         momentum=0.0)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, atol=1e-6, rtol=1e-5)


class _Recorder(CTCObjective):
    """Records the weights every forward pass sees."""

    def __init__(self):
        super().__init__(train_job.PHONES, monitor="loss")
        self.seen = []

    def loss(self, model, batch):
        self.seen.append([p.detach().clone() for p in model.parameters()])
        return super().loss(model, batch)


@pytest.mark.parametrize("per, passes", [("sequence", 4), ("batch", 1)])
def test_weight_noise_is_drawn_per_sequence_or_batch_and_removed_before_the_update(per, passes):
    data = train_job.TinySet(4)
    net = train_job.model()
    clean = [p.detach().clone() for p in net.parameters()]
    objective = _Recorder()
    sigma, lr = 0.075, 0.5
    config = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=lr, momentum=0.0, weight_noise=sigma,
                         noise_per=per, progress=False)
    train(net, objective, data, None, config, device="cpu")
    assert len(objective.seen) == passes
    noises = [torch.cat([(s - c).flatten() for s, c in zip(seen, clean)]) for seen in objective.seen]
    for noise in noises:
        assert abs(noise.std().item() - sigma) < 0.01 and abs(noise.mean().item()) < 0.01
    for i in range(len(noises)):
        for j in range(i):
            assert not torch.allclose(noises[i], noises[j]), "every sequence gets its own draw"
    # the update applies the noisy gradient to the clean weights
    for p, c in zip(net.parameters(), clean):
        torch.testing.assert_close(p.detach(), c - lr * p.grad)


class _Scripted(Objective):
    """A fake objective whose dev scores follow a script."""

    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def loss(self, model, batch):
        return model(batch.x, batch.x_lens).pow(2).sum()

    def count(self, batch):
        return int(batch.x_lens.sum())

    def evaluate(self, model, data, device):
        self.calls += 1
        return {"loss": self.scores[self.calls - 1]}


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    data = train_job.TinySet(8)
    snapshots = []

    class Snap(_Scripted):
        def evaluate(self, model, data, device):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            return super().evaluate(model, data, device)

    net = train_job.model()
    history = train(net, Snap([5.0, 3.0, 4.0, 3.5, 1.0, 0.5]), data, data,
                    TrainConfig(epochs=6, batch_size=4, lr=0.01, patience=2, progress=False), device="cpu")
    assert history["epoch"] == [1, 2, 3, 4] and history["stopped_early"] and history["best_epoch"] == 2
    assert history["dev_loss"] == [5.0, 3.0, 4.0, 3.5]
    assert _same_weights(net.state_dict(), snapshots[1])
    assert not _same_weights(snapshots[3], snapshots[1])


def test_average_weights_is_torchs_running_mean_of_the_states():
    states = [train_job.model(seed).state_dict() for seed in range(3)]
    reference = torch.optim.swa_utils.AveragedModel(train_job.model())  # the independent reference
    for state in states:
        net = train_job.model()
        net.load_state_dict(state)
        reference.update_parameters(net)
    ours = average_weights(states)
    for name, value in reference.module.state_dict().items():
        torch.testing.assert_close(ours[name], value)
    assert not _same_weights(ours, states[-1])
    with pytest.raises(ValueError, match="hold different tensors"):
        average_weights([states[0], {**states[1], "extra": torch.zeros(1)}])


def test_average_ends_with_the_mean_of_the_last_epochs_and_on_epoch_sees_each_epoch():
    snapshots, seen = [], []

    def on_epoch(epoch, model):
        seen.append(epoch)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    net, history = train_job.run(None, epochs=4, average=2, on_epoch=on_epoch)
    assert seen == [1, 2, 3, 4] and history["epoch"] == [1, 2, 3, 4]
    mean = {k: (snapshots[2][k] + snapshots[3][k]) / 2 for k in snapshots[3]}
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, mean[name])
    assert not _same_weights(net.state_dict(), snapshots[3])
    last, _ = train_job.run(None, epochs=4, average=1)  # the mean of one epoch is the last epoch
    assert _same_weights(last.state_dict(), snapshots[3])


def test_an_averaging_run_resumes_to_the_same_mean(tmp_path):
    reference, _ = train_job.run(None, epochs=4, average=3)
    path = tmp_path / "run.pt"
    train_job.run(path, epochs=4, average=3, stop_after=2)  # interrupted after two epochs
    assert load_checkpoint(path)["epoch"] == 2 and len(load_checkpoint(path)["recent"]) == 2
    seen = []
    resumed, _ = train_job.run(path, epochs=4, average=3, on_epoch=lambda epoch, model: seen.append(epoch))
    assert seen == [3, 4], "a resumed run calls on_epoch only for the epochs it runs"
    assert _same_weights(reference.state_dict(), resumed.state_dict())


def test_impossible_ctc_targets_and_foreign_labels_are_named_before_training():
    data = train_job.TinySet(4)
    data.items[2] = Item(torch.randn(3, 8), torch.tensor([1, 1, 2]), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'tiny2': its 3 phones need at least 4 frames .* but it has 3"):
        train(train_job.model(), CTCObjective(train_job.PHONES), data, None, TrainConfig(progress=False))
    data.items[2] = Item(torch.randn(9, 8), torch.tensor([1, 62]), torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'tiny2': label 62 is not a phone"):
        train(train_job.model(), CTCObjective(train_job.PHONES), data, None, TrainConfig(progress=False))


def test_a_diverging_run_stops_with_a_clear_error():
    class Exploding(_Scripted):
        def loss(self, model, batch):
            return super().loss(model, batch) * float("inf")

    with pytest.raises(FloatingPointError, match="training loss is inf at epoch 1, step 1"):
        train(train_job.model(), Exploding([0.0]), train_job.TinySet(4), None,
              TrainConfig(batch_size=4, progress=False), device="cpu")


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
    ({"noise_per": "frame"}, "unknown noise_per 'frame'"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"clip": 0.0}, "clip must be positive"),
    ({"weight_noise": -1.0}, "weight_noise >= 0"),
    ({"average": 0}, "average must be at least 1"),
])
def test_config_errors_name_the_setting(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_ctc_objective_impls_agree_and_batch_select_drops_padding():
    data = train_job.TinySet(4)
    batch = collate([data[k] for k in range(4)])
    net = train_job.model()
    ours = CTCObjective(train_job.PHONES, impl="asrlib").loss(net, batch)
    torch.testing.assert_close(ours, CTCObjective(train_job.PHONES).loss(net, batch))
    alone = sum(CTCObjective(train_job.PHONES).loss(net, batch.select(k)) for k in range(4))
    torch.testing.assert_close(alone, ours)
    assert batch.select(1).x.shape == (1, len(data[1].x), 8)


def test_run_command_trains_scores_and_resumes(tmp_path, ci_corpus):
    import json

    from asrlib import run

    argv = ["CTC-1l-8h-nopeep", "--out", str(tmp_path), "--corpus", "synthetic", "--size", "ci", "--epochs", "1",
            "--beam", "4", "--lr", "3e-3", "--device", "cpu"]
    results = run.main(argv)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test_per_greedy"] == results["test_per_greedy"] and 0 < saved["test_per_beam"] <= 1.5
    assert saved["provenance"]["command"].endswith(" ".join(argv)) and saved["stages"]["train"]["epochs"] == 1
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["train"]["step_loss"]) == 30  # 480 utterances in batches of 16
    again = run.main(argv)  # resumes from the finished checkpoint: no more training, same result
    assert again["test_per_beam"] == results["test_per_beam"]


def test_paper_recipe_is_sgd_per_sequence_then_weight_noise():
    from asrlib import run

    (s1, c1, m1), (s2, c2, m2) = run.stages(run.parser().parse_args(["CTC-3l-250h", "--out", "x", "--paper"]))
    assert (c1.optimizer, c1.lr, c1.momentum, c1.batch_size, c1.reduction, c1.weight_noise) == ("sgd", 1e-4, 0.9, 1, "sum", 0)
    assert (c2.weight_noise, c2.noise_per, m1, m2) == (0.075, "sequence", "loss", "per")
