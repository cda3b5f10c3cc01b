"""The GPU path: what the chapters run on a GPU gives what it gives on the CPU.

Every network family forward and backward, the two losses against torch's and torchaudio's own
CUDA kernels, training (with and without weight noise, stopped and resumed), scoring, both
decoders and Figure 3's sensitivities. Skipped where there is no CUDA device (CI has none); on a
GPU machine: ``pytest -m cuda tests``. cuDNN's and cuBLAS's TF32 shortcuts are switched off here,
so that a difference is a bug and not a rounding mode.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import train_job
from asrlib.ctc import ctc_loss
from asrlib.evaluate import log_probs_of, score, score_transducer
from asrlib.models import build_model
from asrlib.sensitivity import emission_sensitivity, input_sensitivity
from asrlib.transducer import rnnt_loss
from asrlib.transducer_decode import beam_search, greedy

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

NAMES = ["CTC-2l-8h", "CTC-2l-8h-nopeep", "CTC-1l-8h-uni", "CTC-2l-8h-gru", "CTC-1l-8h-tanh",
         "Trans-2l-8h", "Trans-1l-8h-nopeep"]
CLOSE = {"atol": 1e-5, "rtol": 1e-4}


def assert_scaled_close(actual, expected, msg=None):
    """Close to 1e-4 of the tensor's own scale: a sensitivity is about 1e-4 in size, where a fixed
    tolerance of 1e-5 would let a wrong network through (dropping the output gate's peephole on
    the GPU moves Figure 3's numbers by about 1e-7)."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * scale, msg=msg)


@pytest.fixture(autouse=True)
def exact_arithmetic():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _batch(seed=0, B=3, T=17, F_=5, U=4, K=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F_, generator=g)
    x_lens = torch.tensor([T, T - 5, T - 9])
    y = torch.randint(1, K + 1, (B, U), generator=g)
    y_lens = torch.tensor([U, U - 1, U - 2])
    return x, x_lens, y, y_lens


def _pair(name, seed=0, num_classes=7, input_size=5):
    torch.manual_seed(seed)
    cpu = build_model(name, input_size=input_size, num_classes=num_classes)
    gpu = build_model(name, input_size=input_size, num_classes=num_classes)
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.cuda()


def _cuda(*tensors):
    return [t.cuda() for t in tensors]


@pytest.mark.parametrize("name", NAMES)
def test_every_network_gives_the_cpus_outputs_and_gradients(name):
    cpu, gpu = _pair(name)
    x, x_lens, y, y_lens = _batch()
    args = (x, x_lens, y, y_lens) if name.startswith("Trans") else (x, x_lens)
    out_cpu, out_gpu = cpu(*args), gpu(*_cuda(*args))
    assert out_gpu.is_cuda
    mask = (torch.arange(x.shape[1])[None] < x_lens[:, None]).float()  # padding's outputs are arbitrary
    mask = mask[..., None, None] if name.startswith("Trans") else mask[..., None]
    torch.testing.assert_close(out_gpu.cpu() * mask, out_cpu * mask, **CLOSE)
    weights = torch.randn(out_cpu.shape, generator=torch.Generator().manual_seed(1)) * mask
    (out_cpu * weights).sum().backward()
    (out_gpu * weights.cuda()).sum().backward()
    for (k, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        assert_scaled_close(q.grad.cpu(), p.grad, msg=lambda m: f"{name} {k}: {m}")


def test_ctc_loss_on_cuda_is_torchs_cuda_ctc_loss_with_the_gradient():
    torch.manual_seed(2)
    T, B, V, U = 30, 4, 8, 6
    logits = torch.randn(T, B, V, device="cuda", dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, V, (B, U), device="cuda")
    in_lens, tg_lens = torch.tensor([30, 25, 20, 12], device="cuda"), torch.tensor([6, 5, 3, 6], device="cuda")
    ours = ctc_loss(logits.log_softmax(-1), targets, in_lens, tg_lens, reduction="none")
    theirs = F.ctc_loss(logits.log_softmax(-1), targets, in_lens, tg_lens, reduction="none")
    torch.testing.assert_close(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(g_ours, g_theirs)


def test_rnnt_loss_on_cuda_is_torchaudios_cuda_loss_with_the_gradient():
    functional = pytest.importorskip("torchaudio.functional")
    if not hasattr(functional, "rnnt_loss"):
        pytest.skip("this torchaudio has no rnnt_loss")
    torch.manual_seed(3)
    logits = torch.randn(3, 20, 6, 9, device="cuda", requires_grad=True)
    targets = torch.randint(1, 9, (3, 5), device="cuda", dtype=torch.int32)
    T_lens = torch.tensor([20, 17, 9], device="cuda", dtype=torch.int32)
    U_lens = torch.tensor([5, 3, 4], device="cuda", dtype=torch.int32)
    ours = rnnt_loss(logits, targets, T_lens, U_lens, reduction="none")
    theirs = functional.rnnt_loss(logits, targets, T_lens, U_lens, blank=0, reduction="none")
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), logits)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["ctc", "transducer"])
def test_training_on_cuda_follows_the_cpus_run(kind):
    cpu, _ = train_job.run(kind=kind, weight_noise=0.0, checkpoint_every=None)
    gpu, history = train_job.run(kind=kind, weight_noise=0.0, checkpoint_every=None, device="cuda")
    assert len(history["train_loss"]) == 4
    start = train_job.model(kind=kind).state_dict()
    for k, v in cpu.state_dict().items():
        assert not torch.allclose(v, start[k]), f"{k} never moved"
        torch.testing.assert_close(gpu.state_dict()[k].cpu(), v, atol=1e-4, rtol=1e-3)


def test_a_stopped_cuda_run_resumes_to_the_same_weights_and_on_the_cpu(tmp_path):
    """Weight noise is drawn on the GPU; a run stopped after its first checkpoint and resumed
    gives the uninterrupted run's weights exactly, and the checkpoint resumes on a CPU too."""
    reference, ref_history = train_job.run(device="cuda")
    path = tmp_path / "run.pt"
    assert train_job.run(path, device="cuda", stop_after=2)[1] is None
    resumed, history = train_job.run(path, device="cuda")
    assert history["step_loss"] == ref_history["step_loss"]
    for k, v in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    path2 = tmp_path / "run2.pt"
    train_job.run(path2, device="cuda", stop_after=2)
    on_cpu, history = train_job.run(path2, device="cpu")
    assert len(history["train_loss"]) == 4 and all(p.device.type == "cpu" for p in on_cpu.parameters())


def test_scoring_and_decoding_on_cuda_give_the_cpus_phones():
    data, phones = train_job.TinySet(6, seed=4), train_job.PHONES
    cpu, gpu = _pair("CTC-1l-8h-nopeep", num_classes=phones.num_classes, input_size=train_job.FEATURES)
    on_cpu, on_gpu = log_probs_of(cpu, data, "cpu"), log_probs_of(gpu, data, "cuda")
    for a, b in zip(on_cpu.log_probs, on_gpu.log_probs):
        torch.testing.assert_close(b, a, **CLOSE)
    assert score(on_gpu, phones).hypotheses == score(on_cpu, phones).hypotheses
    cpu, gpu = _pair("Trans-1l-8h", num_classes=phones.num_classes, input_size=train_job.FEATURES)
    for method in ("greedy", "beam"):
        kwargs = {"beam": 4} if method == "beam" else {}
        a = score_transducer(cpu, data, phones, method, "cpu", **kwargs)
        b = score_transducer(gpu, data, phones, method, "cuda", **kwargs)
        assert (b.errors, b.hypotheses) == (a.errors, a.hypotheses), method
    x = data[0].x
    assert [h for h, _ in beam_search(gpu, x.cuda(), beam=4, nbest=4)] == [h for h, _ in beam_search(cpu, x, beam=4, nbest=4)]
    assert greedy(gpu, x[None].cuda())[0][0] == greedy(cpu, x[None])[0][0]


@pytest.mark.parametrize("name", ["CTC-2l-8h", "Trans-1l-8h"])
def test_figure_3s_sensitivities_on_cuda_are_the_cpus(name):
    cpu, gpu = _pair(name)
    x, _, y, _ = _batch(seed=5)
    if name.startswith("CTC"):
        assert_scaled_close(input_sensitivity(gpu, x[0].cuda(), 8, 2).cpu(), input_sensitivity(cpu, x[0], 8, 2))
    g_cpu, f_cpu = emission_sensitivity(cpu, x[0], y[0])
    g_gpu, f_gpu = emission_sensitivity(gpu, x[0].cuda(), y[0].cuda())
    assert torch.equal(f_gpu.cpu(), f_cpu)
    assert_scaled_close(g_gpu.cpu(), g_cpu)
