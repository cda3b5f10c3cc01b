"""Chapter 11's ablation: chapter 6's recipe with each robustness piece, on synthetic and human speech.

::

    python -m asrlib.experiments robustness --scale book
    python -m asrlib.experiments robustness --scale book --only "speed ±10%"

:func:`robustness` trains chapter 6's network and recipe once per row of :data:`ROBUSTNESS` (no robustness, each
piece of :mod:`asrlib.augment` alone, combinations, the speakers of the voice families of
:mod:`asrlib.corpus.neural` and :mod:`asrlib.corpus.kokoro`, a deeper network, and weight noise), scores each on
the synthetic test split and on the human recordings of :mod:`asrlib.realspeech`, and writes
``results/robustness-<scale>.json``: per row the settings, the dev, synthetic test and human phone error rates,
each clip's hypothesis, the training time and the provenance. The file is rewritten atomically after every row;
run again, the command skips the rows it holds and resumes a killed row from its checkpoints. The weights of the
rows in :data:`KEEP_WEIGHTS` are kept as ``model.pt`` (:func:`load_robust_model`). A :class:`Row` with a
``start`` begins from that row's kept weights, as the paper's second training stage does, and trains on with the
recipe changed as it says (weight noise); its training time includes the first stage's.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import torch

from asrlib.checkpoint import load_weights, save_json
from asrlib.models import build_model, parse_name
from asrlib.robust_stages import EpochsOnPeople, pretrained_from
from asrlib.robustness_rows import (  # the ablation's table; the names the chapter and the other modules import from here
    CORPUS_SIZE, FESTIVAL_STAGE, FLITE_DICTIONARY, FLITE_FIRST, FLITE_FIRST_MBROLA, FLITE_FIRST_MBROLA_SEED,
    FLITE_FIRST_STAGE, FLITE_STAGE, KEEP_WEIGHTS, KOKORO_45, MBROLA_AVERAGED, MBROLA_STAGE, PEOPLE_STAGE, ROBUSTNESS,
    ROBUSTNESS_RECIPE, WEIGHT_NOISE_STAGE, Row,
)

RESULTS = Path("results")


def row_folder(name: str) -> str:
    """The folder of a robustness row: ``"speed ±10%"`` -> ``"speed-10"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def network_of(record: dict, name: str) -> str:
    """The network of row ``name`` of a results record: its own, its first stage's (a second stage
    keeps the network it starts from), or the recipe's."""
    row = record["rows"][name]
    if row.get("model"):
        return row["model"]
    return network_of(record, row["start"]) if row.get("start") else record["recipe"]["model"]


def load_robust_model(path: Path, record: dict, name: str, num_classes: int):
    """The kept weights of row ``name`` (one of :data:`KEEP_WEIGHTS`) of the robustness results
    file at ``path`` with content ``record``, in the recipe's network."""
    if name not in record["rows"]:
        raise KeyError(f"{path.name} has no row {name!r}; it has {sorted(record['rows'])}")
    weights = path.parent / f"robustness-{record['scale']}" / row_folder(name) / "model.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"no kept weights for row {name!r} ({weights}); only {KEEP_WEIGHTS} are kept")
    model = build_model(network_of(record, name), num_classes=num_classes, init="torch")
    model.load_state_dict(load_weights(weights, map_location="cpu"))
    return model.eval()


def robustness(scale: str = "book", out: Path = RESULTS, device: str | None = None, seed: int = 0, only=None,
               argv=None) -> dict:
    """Chapter 6's recipe with each robustness piece, scored on synthetic and human speech."""
    from asrlib import realspeech
    from asrlib.checkpoint import atomic_write
    from asrlib.corpus import load_corpus
    from asrlib.data import SpeechDataset
    from asrlib.evaluate import log_probs_of, score, score_transducer
    from asrlib.objectives import CTCObjective, TransducerObjective
    from asrlib.run import provenance
    from asrlib.train import TrainConfig, train
    from asrlib.transducer import Transducer

    unknown = sorted(set(only or ()) - set(ROBUSTNESS))
    if unknown:
        raise ValueError(f"unknown rows {unknown}; the rows are {list(ROBUSTNESS)}")
    corpus = load_corpus(size=CORPUS_SIZE)
    phones, recipe = corpus.phones, ROBUSTNESS_RECIPE[scale]
    dev_set, test_set = SpeechDataset(corpus, "dev"), SpeechDataset(corpus, "test")
    human, human_dev_clips = realspeech.clips(), realspeech.clips(split="dev")
    path = out / f"robustness-{scale}.json"

    def on_people(model, clips, normalise):  # a network's errors on human clips, as every row is scored
        return realspeech.score(model, phones, corpus.normaliser, clips, "beam", per_utterance=normalise == "utterance",
                                beam=recipe["beam"])

    record = json.loads(path.read_text()) if path.exists() else {"scale": scale, "recipe": recipe, "seed": seed,
                                                                 "corpus": repr(corpus), "rows": {}, "commands": []}
    command = shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["robustness", "--scale", scale])])
    record["commands"] = [*record["commands"], command] if command not in record["commands"] else record["commands"]
    for name, row in ROBUSTNESS.items():
        if (only and name not in only) or name in record["rows"]:
            continue
        # the training split's corpus: the voice families add training speakers, a larger size more espeak
        # sentences per speaker (the first ones are the CI corpus's); the dev and test splits stay the same
        train_set = SpeechDataset(load_corpus(size=row.size, voices=row.voices), "train", labels=row.labels)
        row_dev = dev_set if row.labels == "voice" else SpeechDataset(corpus, "dev", labels=row.labels)
        if recipe["train_utterances"]:
            train_set = train_set.head(recipe["train_utterances"])
        folder = out / f"robustness-{scale}" / row_folder(name)
        extra = {}
        config = TrainConfig(epochs=recipe["epochs"], optimizer=recipe["optimizer"], lr=recipe["lr"],
                             schedule=recipe["schedule"], clip=recipe["clip"], seed=seed, normalise=row.normalise,
                             augment=row.augment or None)
        if row.start is None:
            if row.model and parse_name(row.model).family == "PreTrans":
                raise ValueError(f"row {name!r}: a PreTrans network starts from a CTC row's weights; give it a start")
            torch.manual_seed(seed)
            model = build_model(row.model or recipe["model"], num_classes=phones.num_classes, init="torch")
        elif row.start not in record["rows"]:
            raise ValueError(f"row {name!r} starts from row {row.start!r}, which {path} does not hold yet: train it first")
        else:  # a second stage: the first stage's kept weights, the recipe changed as the row says
            model = load_robust_model(path, record, row.start, phones.num_classes)
            if row.model:  # a new network from the first stage's: the paper's pretrained transducer
                model, extra["lm_dev_perplexity"] = pretrained_from(row.model, model, train_set, row_dev, config,
                                                                    folder, device)
            config = dataclasses.replace(config, **row.changes)
        transducer = isinstance(model, Transducer)
        objective = TransducerObjective(phones, monitor="per") if transducer else CTCObjective(phones)
        each_epoch = EpochsOnPeople(folder / "epochs.json", lambda m: (on_people(m, human_dev_clips, row.normalise),
                                                                        on_people(m, human, row.normalise)))
        history = train(model, objective, train_set, row_dev, config, device=device, checkpoint=folder / "train.pt",
                        on_epoch=each_epoch)
        model.eval()
        test_inputs = test_set.normalised(row.normalise)
        if transducer:
            synthetic = score_transducer(model, test_inputs, phones, "beam", device=device, beam=recipe["beam"])
        else:
            synthetic = score(log_probs_of(model, test_inputs, device), phones, "beam", beam=recipe["beam"])
        if row.labels != "voice":  # scored as every row (the voices' labels), and against its own labels too
            relabelled = SpeechDataset(corpus, "test", labels=row.labels).normalised(row.normalise)
            extra["labels"] = row.labels
            extra["synthetic_test_per_own_labels"] = score(log_probs_of(model, relabelled, device), phones, "beam",
                                                           beam=recipe["beam"]).errors.rate
        real, human_dev = (on_people(model, clips, row.normalise) for clips in (human, human_dev_clips))
        if name in KEEP_WEIGHTS:
            weights = {k: v.cpu() for k, v in model.state_dict().items()}
            atomic_write(folder / "model.pt", lambda f: torch.save(weights, f))
        record["rows"][name] = {
            "normalise": row.normalise, "augment": config.augment, "voices": row.voices, "corpus_size": row.size,
            **({"model": row.model} if row.model else {}),
            **({"start": row.start, "second_stage": row.changes} if row.start else {}), **extra,
            "train_utterances": len(train_set),
            "epochs": len(history["epoch"]),
            # a second stage's time includes its first stage's: the cost of the recipe
            "seconds": history["seconds"][-1] + (record["rows"][row.start]["seconds"] if row.start else 0.0),
            "dev_per": min(history["dev_per"]),
            "synthetic_test_per": synthetic.errors.rate, "real_per": real.errors.rate,
            "human_dev_per": human_dev.errors.rate,
            # each epoch on the way: the synthetic dev split's PER and both sets of human clips'
            "each_epoch": [{**e, "dev_per": d} for e, d in zip(each_epoch.scores, history["dev_per"])],
            "real_errors": dataclasses.asdict(real.errors),
            "clips": [{"id": r["id"], "hypothesis": r["hypothesis"], "errors": dataclasses.asdict(r["errors"])}
                      for r in real.rows],
            "provenance": {**provenance(next(model.parameters()).device, []), "command": command},
        }
        record["rows"] = {n: record["rows"][n] for n in ROBUSTNESS if n in record["rows"]}  # the table's order
        save_json(path, record)
    # rows scored before the human development clips were shipped: scored on them now, where their weights are kept
    for name, row in record["rows"].items():
        if "human_dev_per" not in row and name in KEEP_WEIGHTS:
            model = load_robust_model(path, record, name, phones.num_classes)
            row["human_dev_per"] = on_people(model, human_dev_clips, row["normalise"]).errors.rate
            save_json(path, record)
    return record

