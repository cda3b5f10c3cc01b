"""The paper's experiments re-run: every network of Table 1, and weight noise, at a chosen scale.

::

    python -m asrlib.experiments table1 --scale book --seeds 0 1
    python -m asrlib.experiments table1 --scale medium --only CTC-3l-250h CTC-1l-622h
    python -m asrlib.experiments noise --scale book
    python -m asrlib.experiments robustness --scale book

``table1`` trains each network of :data:`asrlib.models.TABLE1` with :mod:`asrlib.run` (one
folder per seed and network under ``results/table1-<scale>/``) and gathers the rows into one
file, ``results/table1-<scale>.json``: per network and seed the weights, epochs, training
seconds, the best dev phone error rate, the test phone error rate with its substitutions,
deletions and insertions for best-path (greedy) and beam-search decoding, and the run's
provenance (command, commit, device, torch, date). The file is rewritten atomically after
every row; a killed sweep run again with the same command skips the rows it holds and resumes
the interrupted row from its checkpoints, so nothing is lost and the file comes out as an
uninterrupted sweep's would. ``PreTrans`` rows start from the weights that the ``CTC`` row of the
same shape and seed kept (its ``model.pt``, committed with its results), as in the paper.

The scales (:data:`SCALES`):

* ``book``: the CI-size synthetic corpus (480 training utterances); each network shrunk to
  1/16 of the paper's weights by its hidden size alone (:func:`scaled_name`: the depth, the
  cell and the directions stay, and networks of equal weights in the paper stay equal); the
  book's recipe (Adam 3e-3 with a cosine schedule, clipping at 1) for 40 epochs, twice the
  chapters' 20: at 20, the deeper and the unidirectional networks had barely left the
  all-blank plateau of CTC's first epochs when the learning rate ran out; beam width 100.
  About an hour per seed on 2 CPU cores.
* ``medium``: the full synthetic corpus and the paper's sizes, with the book's recipe for up
  to 60 epochs (patience 10). A few CPU hours per network; minutes on a GPU.
* ``paper``: the paper's sizes and recipe (``asrlib.run --paper``: SGD 1e-4, momentum 0.9,
  one sequence per update, then weight noise 0.075 per sequence), up to 200 epochs per stage.
  Use ``--corpus timit`` where a TIMIT copy is at hand.
* ``smoke``: two epochs of tiny networks, for the tests.

``noise`` is section 3.4's weight noise on a training set small enough to overfit: a network
is trained without noise, its best dev log-probability kept (the paper's first stage), then,
from that point, once more without noise and once with each noise level, one draw per
sequence as the paper does, each kept at its best dev phone error rate (:data:`NOISE`).
The learning curves go to ``results/noise-<scale>.json``.

``robustness`` is chapter 11's ablation, :mod:`asrlib.robustness`; ``fusion`` decodes one of its
networks with a phone language model, :mod:`asrlib.fusion`. ``labels`` (:func:`asrlib.labellings.labels`) scores each
voice family's own labels of the human clips' texts against their references, and writes
``results/labels.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from asrlib.checkpoint import load_checkpoint, load_weights, save_json
from asrlib.labellings import labels
from asrlib.models import TABLE1, build_model, count_parameters, parse_name
from asrlib.fusion import TEXTS, fusion
from asrlib.robustness import ROBUSTNESS, ROBUSTNESS_RECIPE, robustness

RESULTS = Path("results")
BOOK_RECIPE = ("--optimizer", "adam", "--lr", "3e-3", "--schedule", "cosine", "--clip", "1.0", "--init", "torch")


@dataclass(frozen=True)
class Scale:
    """How big a sweep is: the corpus, each network's share of the paper's weights, the recipe."""

    size: str                      # synthetic corpus size (asrlib.corpus): "ci" or "full"
    weight_fraction: float         # each network's weights / the paper's
    recipe: tuple[str, ...]        # arguments of ``python -m asrlib.run``
    beam: int = 100
    description: str = ""


SCALES = {
    "book": Scale("ci", 1 / 16, (*BOOK_RECIPE, "--epochs", "40", "--patience", "40"),
                  description="CI corpus, 1/16 of the paper's weights, Adam + cosine, 40 epochs"),
    "medium": Scale("full", 1.0, ("--optimizer", "adam", "--lr", "3e-3", "--clip", "1.0", "--init", "torch", "--epochs", "60",
                                  "--patience", "10"),  # a constant learning rate: early stopping decides the length
                    description="full synthetic corpus, the paper's sizes, Adam, up to 60 epochs"),
    "paper": Scale("full", 1.0, ("--paper", "--epochs", "200", "--patience", "10"),
                   description="the paper's sizes and two-stage recipe (SGD 1e-4, weight noise 0.075)"),
    "smoke": Scale("ci", 1 / 400, (*BOOK_RECIPE, "--epochs", "2", "--patience", "2"), beam=4,
                   description="tiny networks for two epochs: a test of the machinery, not of the paper"),
}


def scale_of(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; expected one of {sorted(SCALES)}")
    return SCALES[name]


def scaled_name(name: str, fraction: float) -> str:
    """The network of the same depth, cell and directions as ``name`` whose CTC version has the
    weights closest to ``fraction`` of the paper-size CTC version's (the hidden size alone
    changes; transducers keep the hidden size of their CTC network, so that ``PreTrans`` starts
    from the ``CTC`` row of its shape).

    >>> scaled_name("CTC-3l-250h", 1 / 16), scaled_name("PreTrans-3l-250h", 1 / 16)
    ('CTC-3l-55h', 'PreTrans-3l-55h')
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    spec = parse_name(name)
    if fraction == 1:
        return spec.name

    def weights(hidden: int) -> int:
        ctc = dataclasses.replace(spec, family="CTC", hidden=hidden).name
        return count_parameters(build_model(ctc, init="torch"))

    target, lo, hi = fraction * weights(spec.hidden), 1, spec.hidden
    while lo < hi:  # the smallest hidden size with at least the target's weights (they grow with it)
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if weights(mid) < target else (lo, mid)
    best = min({max(lo - 1, 1), lo}, key=lambda h: abs(weights(h) - target))
    return dataclasses.replace(spec, hidden=best).name


def _results_folders() -> tuple[Path, ...]:
    """Where committed results may be: the working folder's ``results/``, its parent's (a chapter
    runs in ``book/``) and that of the repository holding this package."""
    import asrlib

    return Path.cwd() / RESULTS, Path.cwd().parent / RESULTS, Path(asrlib.__file__).resolve().parents[1] / RESULTS


def committed(name: str) -> tuple[Path, dict] | None:
    """The committed results file ``results/<name>.json`` (e.g. ``"table1-book"``) and its
    content; None when there is none (an installed package)."""
    for folder in _results_folders():
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json", json.loads((folder / f"{name}.json").read_text())
    return None


def committed_folder(name: str) -> Path | None:
    """The committed results folder ``results/<name>`` (e.g. ``"book"``); None when there is none."""
    return next((folder / name for folder in _results_folders() if (folder / name).is_dir()), None)


def largest_table1() -> tuple[Path, dict] | None:
    """The committed Table 1 results file of the largest scale (paper, then medium, then book)."""
    return next(filter(None, (committed(f"table1-{scale}") for scale in ("paper", "medium", "book"))), None)


def by_network(record: dict, metric: str = "test_per_beam") -> dict[str, list[float]]:
    """``{Table 1 name: [metric of each seed]}`` from a Table 1 results file, in Table 1's order."""
    out = {row.name: [] for row in TABLE1}
    for key, row in sorted(record["rows"].items(), key=lambda kv: kv[1]["seed"]):
        out[key.split("/")[0]].append(row[metric])
    return {name: values for name, values in out.items() if values}


def load_network(path: Path, record: dict, name: str, seed: int = 0, num_classes: int = 62, init: str = "torch"):
    """The trained network of row ``name`` (a Table 1 name) and ``seed`` of the results file at
    ``path`` with content ``record``, read from the run's ``model.pt`` beside it."""
    key = f"{name}/seed{seed}"
    if key not in record["rows"]:
        raise KeyError(f"{path.name} has no row {key!r}; it has {sorted(record['rows'])}")
    ours = record["rows"][key]["model"]
    model = build_model(ours, num_classes=num_classes, init=init)
    weights = path.parent / f"table1-{record['scale']}" / f"seed{seed}" / ours / "model.pt"
    model.load_state_dict(load_weights(weights, map_location="cpu"))
    return model.eval()


def _run(argv: list[str]) -> dict:
    from asrlib.run import main  # imported late: asrlib.run imports the whole training stack
    return main(argv)


def table1_row(result: dict, history: dict, seed: int) -> dict:
    """One row of the results file from an :mod:`asrlib.run` run's ``results.json`` and ``history.json``."""
    row = {k: result[k] for k in ("model", "weights", "epochs", "seconds", "dev_per")}
    row["seed"] = seed
    for method in ("greedy", "beam"):
        row[f"test_per_{method}"] = result[f"test_per_{method}"]
        row[f"test_errors_{method}"] = result[f"test_errors_{method}"]
    row["dev_per_curve"] = history[list(history)[-1]]["dev_per"]
    row["provenance"] = result["provenance"]
    return row


def table1(scale: str, seeds=(0,), only=None, out: Path = RESULTS, device: str | None = None,
           corpus: str | None = None, argv: list[str] | None = None) -> dict:
    """Run (or resume) the Table 1 sweep; returns the results file's content."""
    s = scale_of(scale)
    names = [row.name for row in TABLE1]
    unknown = [n for n in (only or ()) if n not in names]
    if unknown:
        raise ValueError(f"not in Table 1: {unknown}; its networks are {names}")
    path = out / f"table1-{scale}.json"
    record = json.loads(path.read_text()) if path.exists() else {"scale": scale, "description": s.description, "rows": {}}
    command = shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["table1", "--scale", scale])])
    if command not in record.setdefault("commands", []):  # every command that added rows to the file, in order
        record["commands"].append(command)
    paper = {row.name: row for row in TABLE1}
    for seed in seeds:
        for name in names if not only else [n for n in names if n in only]:
            key = f"{name}/seed{seed}"
            if key in record["rows"]:
                continue
            ours = scaled_name(name, s.weight_fraction)
            folder = out / f"table1-{scale}" / f"seed{seed}" / ours
            run_argv = [ours, "--out", str(folder), "--size", s.size, *s.recipe, "--beam", str(s.beam), "--seed", str(seed)]
            run_argv += ["--device", device] if device else []
            run_argv += ["--corpus", corpus] if corpus else []
            if parse_name(name).family == "PreTrans":
                ctc = out / f"table1-{scale}" / f"seed{seed}" / dataclasses.replace(parse_name(ours), family="CTC").name
                kept = ctc / "model.pt"   # the weights the CTC row kept (committed with its results)
                if not kept.exists():
                    raise FileNotFoundError(f"{name} starts from {kept}: run the CTC row of its shape first")
                run_argv += ["--ctc-from", str(kept)]
            if not (folder / "results.json").exists():
                print(f"[{scale}] {key}: {shlex.join(run_argv)}", flush=True)
                _run(run_argv)
            result = json.loads((folder / "results.json").read_text())
            history = json.loads((folder / "history.json").read_text())
            record["rows"][key] = {"paper": dataclasses.asdict(paper[name]), **table1_row(result, history, seed)}
            save_json(path, record)
    return record


# ---------------------------------------------------------------------------------------------
# weight noise


# The book's experiment: chapter 6's network (torch's LSTM, fast) on 48 training sentences, batches
# of 4, long enough to overfit: 60 epochs without noise, then 30 from the best dev log-probability.
NOISE = {"book": dict(model="CTC-2l-64h-nopeep", train_utterances=48, batch_size=4, lr=3e-3, epochs=60, retrain_epochs=30,
                      sigmas=(0.025, 0.075)),
         "smoke": dict(model="CTC-1l-8h", train_utterances=8, batch_size=4, lr=3e-3, epochs=2, retrain_epochs=2, sigmas=(0.075,))}


def noise(scale: str, out: Path = RESULTS, device: str | None = None, seed: int = 0, argv=None) -> dict:
    """Section 3.4's two-stage recipe against no noise, on a training split small enough to overfit."""
    from asrlib.corpus import load_corpus
    from asrlib.data import SpeechDataset
    from asrlib.objectives import CTCObjective
    from asrlib.run import provenance
    from asrlib.train import TrainConfig, train

    if scale not in NOISE:
        raise ValueError(f"unknown scale {scale!r} for the noise experiment; expected one of {sorted(NOISE)}")
    plan = NOISE[scale]
    corpus = load_corpus(size=scale_of(scale).size)
    train_set = SpeechDataset(corpus, "train").head(plan["train_utterances"])
    dev_set = SpeechDataset(corpus, "dev")
    folder = out / f"noise-{scale}"
    common = dict(optimizer="adam", lr=plan["lr"], clip=1.0, batch_size=plan["batch_size"], seed=seed, checkpoint_every=None,
                  progress=True)
    torch.manual_seed(seed)
    model = build_model(plan["model"], num_classes=corpus.phones.num_classes, init="torch")
    first = TrainConfig(epochs=plan["epochs"], **common)
    # the paper's first stage stops at the best dev log-probability, the second at the best dev PER
    curves = {"no noise, first stage": train(model, CTCObjective(corpus.phones, monitor="loss"), train_set, dev_set, first,
                                             device=device, checkpoint=folder / "stage1.pt")}
    start = load_checkpoint(folder / "stage1.pt", map_location="cpu")["best_model"]
    for sigma in (0.0, *plan["sigmas"]):
        model.load_state_dict(start)
        config = TrainConfig(epochs=plan["retrain_epochs"], weight_noise=sigma, noise_per="sequence", **common)
        curves[f"sigma {sigma}"] = train(model, CTCObjective(corpus.phones), train_set, dev_set, config,
                                         device=device, checkpoint=folder / f"stage2-sigma{sigma}.pt")
    record = {"scale": scale, **plan, "weights": count_parameters(model), "corpus": repr(corpus),
              "curves": {k: {m: h[m] for m in ("epoch", "train_loss", "dev_loss", "dev_per", "best_epoch")}
                         for k, h in curves.items()},
              "provenance": {**provenance(next(model.parameters()).device, []),
                             "command": shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["noise", "--scale", scale])])}}
    save_json(out / f"noise-{scale}.json", record)
    return record


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m asrlib.experiments", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="experiment", required=True)
    t = sub.add_parser("table1", help="train and score the networks of Table 1")
    t.add_argument("--scale", default="book", choices=sorted(SCALES))
    t.add_argument("--seeds", type=int, nargs="+", default=[0])
    t.add_argument("--only", nargs="+", default=None, help="a subset of Table 1's names, e.g. CTC-3l-250h")
    t.add_argument("--corpus", default=None, choices=["synthetic", "timit"])
    n = sub.add_parser("noise", help="weight noise against none on a small training split")
    n.add_argument("--scale", default="book", choices=sorted(NOISE))
    n.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("robustness", help="chapter 6's recipe with each robustness piece, on synthetic and human speech")
    r.add_argument("--scale", default="book", choices=sorted(ROBUSTNESS_RECIPE))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--only", nargs="+", default=None, help=f"a subset of the rows: {list(ROBUSTNESS)}")
    f = sub.add_parser("fusion", help="decode a kept robustness row with a phone n-gram LM, chosen on the dev split")
    f.add_argument("--row", required=True, help="a row of the robustness results with kept weights")
    f.add_argument("--scale", default="book", choices=sorted(ROBUSTNESS_RECIPE))
    f.add_argument("--text", default="transcriptions", choices=TEXTS,
                   help="the LM's text: the row's training transcriptions, English (word frequencies and CMUdict) "
                        "as a class n-gram, or English words (a lexicon model; lexicon-pauses: a pause ends a word)")
    lb = sub.add_parser("labels", help="each voice family's own labels of the human clips' texts against their references")
    for q in (t, n, r, f, lb):
        q.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: results)")
        q.add_argument("--device", default=None)
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.experiment == "table1":
        return table1(args.scale, args.seeds, args.only, args.out, args.device, args.corpus, argv)
    if args.experiment == "robustness":
        return robustness(args.scale, args.out, args.device, args.seed, args.only, argv)
    if args.experiment == "fusion":
        return fusion(args.row, args.scale, args.out, args.device, argv, text=args.text)
    if args.experiment == "labels":
        return labels(args.out, argv)
    return noise(args.scale, args.out, args.device, args.seed, argv)


if __name__ == "__main__":
    main()
