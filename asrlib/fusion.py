"""Chapter 11's network decoded with a phone language model: shallow fusion, tuned on human dev clips.

::

    python -m asrlib.experiments fusion --row "<a robustness row with kept weights>"

:func:`fusion` fits phone n-gram LMs (:class:`asrlib.ngram.PhoneNgram`) to a robustness row's
training transcriptions, decodes the synthetic dev split and the human clips with each LM order, weight and
insertion bonus of a grid (:func:`asrlib.ctc_decode.beam_search` with ``lm=``), keeps the
setting with the lowest PER on the human development clips of :mod:`asrlib.realspeech` (and, to
compare, the one best on the synthetic dev split), and scores the synthetic test split and the
human test clips with it once. It writes ``results/fusion-<scale>.json``.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from asrlib.checkpoint import save_json
from asrlib import robustness
from asrlib.robustness import CORPUS_SIZE, RESULTS, load_robust_model

# shallow fusion with a phone n-gram LM (asrlib.ngram): the grid searched on the development sets
FUSION_ORDERS, FUSION_WEIGHTS, FUSION_BONUSES = (2, 3), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 1.0, 2.0)
SETTING = ("order", "lm_weight", "insertion_bonus")


def fusion(row: str, scale: str = "book", out: Path = RESULTS, device: str | None = None, argv=None,
           orders=FUSION_ORDERS, weights=FUSION_WEIGHTS, bonuses=FUSION_BONUSES, progress: bool = True) -> dict:
    """Decode a kept CTC row's network with a phone n-gram LM of its training transcriptions.

    Every LM order, weight and insertion bonus of the grid decodes the synthetic dev split, the
    human development clips (``realspeech.clips(split="dev")``) and the human test clips. The
    setting is chosen on the human development clips (the lowest PER; a tie goes to the smaller
    weight, then bonus, then order) and, for comparison, on the synthetic dev split; each choice's
    PER on the test clips is what it scores. The test clips' PER over the whole grid is recorded
    too, to show how far each choice is from the best for them, never to choose. Writes
    ``results/fusion-<scale>.json`` (one entry per row)."""
    from asrlib import realspeech
    from asrlib.corpus import load_corpus
    from asrlib.data import SpeechDataset
    from asrlib.evaluate import log_probs_of, score
    from asrlib.ngram import PhoneNgram
    from asrlib.run import provenance
    from asrlib.runtime import progress_bar

    path = out / f"robustness-{scale}.json"
    record = json.loads(path.read_text())
    if row not in record["rows"]:
        raise KeyError(f"{path} has no row {row!r}")
    corpus = load_corpus(size=CORPUS_SIZE)
    phones, beam, spec = corpus.phones, record["recipe"]["beam"], robustness.ROBUSTNESS[row]
    model = load_robust_model(path, record, row, phones.num_classes).to(device or "cpu")
    train_set = SpeechDataset(load_corpus(size=spec.size, voices=spec.voices), "train")
    transcriptions = [item.y.tolist() for item in train_set]
    dev = log_probs_of(model, SpeechDataset(corpus, "dev").normalised(spec.normalise), device or "cpu")
    test = log_probs_of(model, SpeechDataset(corpus, "test").normalised(spec.normalise), device or "cpu")
    people = {split: realspeech.clips(split=split) for split in ("dev", "test")}
    heard = {split: realspeech.log_probs(model, clips, corpus.normaliser, per_utterance=spec.normalise == "utterance")
             for split, clips in people.items()}

    def on_people(split, **kwargs):
        from asrlib.ctc_decode import beam_search

        return realspeech.scored(people[split], [phones.decode(beam_search(lp, beam, **kwargs)[0][0])
                                                 for lp in heard[split]], phones).errors

    lms = {n: PhoneNgram.fit(transcriptions, n, phones.num_classes) for n in orders}

    def decoding(setting):
        n, w, b = (setting[k] for k in SETTING)
        return {"lm": lms[n], "lm_weight": w, "insertion_bonus": b} if w or b else {}

    grid, test_errors = [], {}  # the test clips' errors of each setting, for the chosen ones' record
    for n, w, b in progress_bar([(n, w, b) for n in orders for w in weights for b in bonuses], desc="fusion grid",
                                disable=not progress):
        kwargs = decoding(dict(zip(SETTING, (n, w, b))))
        test_errors[n, w, b] = on_people("test", **kwargs)
        grid.append({"order": n, "lm_weight": w, "insertion_bonus": b,
                     "dev_per": score(dev, phones, "beam", beam=beam, **kwargs).errors.rate,
                     "human_dev_per": on_people("dev", **kwargs).rate, "real_per": test_errors[n, w, b].rate})

    def chosen_on(key):
        best = min(grid, key=lambda g: (round(g[key], 12), g["lm_weight"], g["insertion_bonus"], g["order"]))
        real = test_errors[tuple(best[k] for k in SETTING)]
        return {**{k: best[k] for k in SETTING}, "dev_per": best["dev_per"], "human_dev_per": best["human_dev_per"],
                "synthetic_test_per": score(test, phones, "beam", beam=beam, **decoding(best)).errors.rate,
                "real_per": real.rate, "real_errors": dataclasses.asdict(real)}

    plain = next(g for g in grid if not decoding(g))
    entry = {
        **chosen_on("human_dev_per"),
        "chosen_on_synthetic_dev": chosen_on("dev_per"),
        "without_lm": {"dev_per": plain["dev_per"], "human_dev_per": plain["human_dev_per"],
                       "synthetic_test_per": record["rows"][row]["synthetic_test_per"],
                       "real_per": record["rows"][row]["real_per"]},
        "lm_dev_perplexity": {str(n): lm.perplexity(dev.references) for n, lm in lms.items()},
        "train_transcriptions": len(transcriptions), "grid": grid,
        "provenance": {**provenance(next(model.parameters()).device, []),
                       "command": shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["fusion", "--row", row])])},
    }
    results = out / f"fusion-{scale}.json"
    saved = json.loads(results.read_text()) if results.exists() else {"scale": scale, "rows": {}}
    saved["rows"][row] = entry
    save_json(results, saved)
    return entry
