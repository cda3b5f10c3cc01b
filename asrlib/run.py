"""Full-size CTC and transducer experiments from the command line, resumable, on one device or many.

The paper's recipe for a CTC network of Table 1 (sections 3.4 and 4)::

    python -m asrlib.run CTC-3l-250h --corpus timit --timit /data/timit --paper --out runs/ctc3l

``--paper`` trains in two stages: SGD (learning rate 1e-4 per sequence, momentum 0.9, one
sequence per update) without noise, early-stopped on the dev log-probability; then, from the
best of that, with Gaussian weight noise (sigma 0.075, one draw per sequence), early-stopped on
the dev phone error rate. Without ``--paper``, one stage with the given settings (the book's
CPU chapters use Adam with a cosine schedule). On several GPUs::

    torchrun --nproc_per_node 4 -m asrlib.run CTC-3l-250h --corpus timit --paper --out runs/ctc3l

Transducers (section 3.2) train the same way: ``Trans-3l-250h`` from random weights (with the
blank's output bias set to its share of an alignment, :meth:`asrlib.transducer.Transducer.init_blank_prior_`),
and ``PreTrans-3l-250h`` as the paper did: first a CTC network of the same shape (the same
stages, or the weights an earlier CTC run kept, given with ``--ctc-from run/model.pt`` or its
checkpoint ``run/stage2.pt``) and a
next-phone language model on the training transcriptions (:mod:`asrlib.pretrain`), whose
weights become the transducer's transcription and prediction networks; then the transducer's
stages.

Killed at any point, the same command resumes from the checkpoints in ``--out``. At the end
the best network is scored on the test split with best-path (greedy) and beam-search decoding,
and ``results.json`` records the phone error rates with their provenance (command, commit,
device, date); ``history.json`` holds the learning curves and ``model.pt`` the final weights (a
state dict: ``torch.load(path, weights_only=True)``). The checkpoints (``*.pt`` but ``model.pt``)
are what resuming needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from asrlib.corpus import load_corpus
from asrlib.data import SpeechDataset
from asrlib.evaluate import log_probs_of, score
from asrlib.models import build_model, count_parameters
from asrlib.checkpoint import atomic_write, load_weights, save_json
from asrlib.evaluate import score_transducer
from asrlib.models import parse_name
from asrlib.objectives import CTCObjective, TransducerObjective
from asrlib.pretrain import PhoneLM, pretrained_transducer, train_phone_lm
from asrlib.train import TrainConfig, train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m asrlib.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a network name, e.g. CTC-3l-250h (see asrlib.models.GRAMMAR)")
    p.add_argument("--out", required=True, type=Path, help="folder for checkpoints and results")
    p.add_argument("--corpus", default=None, choices=["synthetic", "timit"], help="default: $ASRLIB_CORPUS or synthetic")
    p.add_argument("--size", default="full", help="synthetic corpus size: ci or full (default full)")
    p.add_argument("--timit", default=None, help="TIMIT folder (or set $ASRLIB_TIMIT)")
    p.add_argument("--paper", action="store_true", help="the paper's two-stage recipe (overrides the optimiser settings)")
    p.add_argument("--epochs", type=int, default=200, help="most epochs per stage")
    p.add_argument("--patience", type=int, default=10, help="early stopping: epochs without improvement")
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--clip", type=float, default=None)
    p.add_argument("--noise", type=float, default=0.0, help="weight noise sigma")
    p.add_argument("--noise-per", default="sequence", choices=["sequence", "batch"])
    p.add_argument("--init", default="paper", choices=["paper", "torch"])
    p.add_argument("--beam", type=int, default=100, help="beam width for the final test decoding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between mid-epoch checkpoints")
    p.add_argument("--ctc-from", type=Path, default=None,
                   help="PreTrans: the weights (model.pt) or a checkpoint of a CTC run of the same shape "
                        "(else one is trained first)")
    return p


def stages(args) -> list[tuple[str, TrainConfig, str]]:
    """(name, config, monitored dev score) of each training stage."""
    common = dict(epochs=args.epochs, patience=args.patience, seed=args.seed, checkpoint_every=args.checkpoint_every)
    if args.paper:
        paper = dict(optimizer="sgd", lr=1e-4, momentum=0.9, reduction="sum", batch_size=1, **common)
        return [("stage1", TrainConfig(**paper), "loss"),
                ("stage2", TrainConfig(weight_noise=0.075, noise_per="sequence", **paper), "per")]
    config = TrainConfig(optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, batch_size=args.batch_size,
                         clip=args.clip, weight_noise=args.noise, noise_per=args.noise_per, **common)
    return [("train", config, "per")]


def provenance(device: torch.device, argv: list[str]) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"command": shlex.join(["python", "-m", "asrlib.run", *argv]), "commit": commit,
            "device": f"{device.type}: {name}", "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "torch": torch.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def frames_per_phone(dataset) -> float:
    info = {u["id"]: u for u in dataset.corpus.utterances}
    return sum(info[i]["num_frames"] for i in dataset.ids) / sum(info[i]["num_phones"] for i in dataset.ids)


def pretrain(args, spec, phones, train_set, dev_set, plan) -> tuple[nn.Module, PhoneLM, dict]:
    """The CTC network and the phone LM that a ``PreTrans`` network starts from, and their records."""
    name = dataclasses.replace(spec, family="CTC").name
    ctc = build_model(name, num_classes=phones.num_classes, init=args.init)
    record = {"ctc": name}
    if args.ctc_from is not None:
        try:
            ctc.load_state_dict(load_weights(args.ctc_from, map_location="cpu"))
        except RuntimeError as e:
            raise SystemExit(f"{args.ctc_from} does not hold a {name} network: {e}") from e
        record["ctc_from"] = str(args.ctc_from)
    else:
        for stage, config, monitor in plan:
            h = train(ctc, CTCObjective(phones, monitor=monitor), train_set, dev_set, config, device=args.device,
                      checkpoint=args.out / f"ctc-{stage}.pt")
            record[f"ctc_{stage}_dev_per"] = min(h["dev_per"]) if h.get("dev_per") else None
    lm_config = dataclasses.replace(plan[0][1], weight_noise=0.0)
    lm, record["lm_dev_perplexity"] = train_phone_lm(spec, phones.num_classes - 1, train_set, dev_set, lm_config,
                                                     args.out / "lm.pt", args.device)
    return ctc, lm, record


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    spec = parse_name(args.model)
    corpus = load_corpus(args.corpus, size=args.size, timit=args.timit)
    phones = corpus.phones
    torch.manual_seed(args.seed)
    model = build_model(args.model, num_classes=phones.num_classes, init=args.init)
    train_set, dev_set, test_set = (SpeechDataset(corpus, s, preload=args.size == "ci") for s in ("train", "dev", "test"))
    args.out.mkdir(parents=True, exist_ok=True)
    histories, plan, extra = {}, stages(args), {}
    if spec.family != "CTC":
        model.init_blank_prior_(frames_per_phone(train_set))
    if spec.family == "PreTrans":
        ctc, lm, extra["pretraining"] = pretrain(args, spec, phones, train_set, dev_set, plan)
        pretrained_transducer(model, ctc, lm)
    objective = CTCObjective if spec.family == "CTC" else TransducerObjective
    for name, config, monitor in plan:
        histories[name] = train(model, objective(phones, monitor=monitor), train_set, dev_set, config,
                                device=args.device, checkpoint=args.out / f"{name}.pt")
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        return {}
    device = next(model.parameters()).device
    results = {"model": args.model, "weights": count_parameters(model), "corpus": repr(corpus), **extra,
               "stages": {n: {"config": dataclasses.asdict(c), "epochs": len(histories[n]["epoch"]),
                              "best_epoch": histories[n]["best_epoch"]} for n, c, _ in plan},
               "epochs": sum(len(h["epoch"]) for h in histories.values()),
               "seconds": sum(h["seconds"][-1] for h in histories.values() if h["seconds"]),
               "dev_per": min(histories[plan[-1][0]]["dev_per"])}
    outputs = log_probs_of(model, test_set, device) if spec.family == "CTC" else None
    for method, kwargs in (("greedy", {}), ("beam", {"beam": args.beam})):
        if outputs is not None:
            s = score(outputs, phones, method, progress=True, **kwargs)
        else:
            s = score_transducer(model, test_set, phones, method, device=device, progress=True, **kwargs)
        results[f"test_per_{method}"] = s.errors.rate
        results[f"test_errors_{method}"] = dataclasses.asdict(s.errors)
    results["provenance"] = provenance(device, argv)
    weights = {k: v.cpu() for k, v in model.state_dict().items()}
    atomic_write(args.out / "model.pt", lambda f: torch.save(weights, f))  # weights only
    save_json(args.out / "history.json", histories)
    save_json(args.out / "results.json", results)  # last: its presence means the run is complete
    print(json.dumps({k: v for k, v in results.items() if k.startswith("test_per")}, indent=1))
    return results


if __name__ == "__main__":
    main()
