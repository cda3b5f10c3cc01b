"""Chapter 11's network decoded with a phone language model: shallow fusion, tuned on human dev clips.

::

    python -m asrlib.experiments fusion --row "<a robustness row with kept weights>"

:func:`fusion` fits phone n-gram LMs (:class:`asrlib.ngram.PhoneNgram`) to a robustness row's
training transcriptions, decodes the synthetic dev split and the human clips with each LM order, weight and
insertion bonus of a grid (:func:`asrlib.ctc_decode.beam_search` with ``lm=``), keeps the
setting with the lowest PER on the human development clips of :mod:`asrlib.realspeech` (and, to
compare, the one best on the synthetic dev split), and scores the synthetic test split and the
human test clips with it once. It writes ``results/fusion-<scale>.json``.

``--text english`` fits the LMs to English instead (:func:`asrlib.ngram.english_phone_sentences`,
over the 39 scoring classes: :class:`asrlib.ngram.ScoringClassLM`), with orders up to 4 and a finer
grid of bonuses, and writes ``results/fusion-english-<scale>.json``. Its grid is scored on the human
clips only (the synthetic splits are decoded with the chosen setting alone), and run for several rows,
the file chooses the network too: the row with the lowest fused PER on the development clips.

``--text lexicon`` decodes with a model that knows words (:class:`asrlib.ngram.LexiconLM`: the same
English words, each prefix split into them every possible way), mixed with the English 3-gram of
classes (the order with the lower perplexity on the development clips' phones) in the shares of
:data:`LEXICON_MIXES`, over the English grid of weights and bonuses; it writes
``results/fusion-lexicon-<scale>.json``, whose network is chosen the same way. Between the two
files, the choice with the lower fused PER on the development clips is the pipeline's (a tie goes
to the English n-gram, the simpler), a rule fixed before any row was decoded with the lexicon.

``--text lexicon-pauses`` is the same model of words reading a pause the network hears as a word
boundary (``LexiconLM(pauses=True)``), over the same grid, for the same rows; it writes
``results/fusion-lexicon-pauses-<scale>.json`` and joins the rule as a third file (a tie goes to the
files above it). The rule was extended before the rows were decoded with it; a draft had been tried on
the chosen row's development clips alone (53.0% against the lexicon's 53.5%), never on its test clips.
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
# the grid for a model of English (asrlib.ngram.english_phone_sentences), fixed before any row was decoded with it
ENGLISH_ORDERS, ENGLISH_WEIGHTS, ENGLISH_BONUSES = (2, 3, 4), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 0.5, 1.0, 2.0)
# the lexicon model's grid (its share of the mixture; the English weights and bonuses), fixed before any row was decoded
LEXICON_MIXES, LEXICON_BACKOFF = (0.7, 0.9), 3
TEXTS = ("transcriptions", "english", "lexicon", "lexicon-pauses")


def model_of_english(text: str, value, sentences, phones):
    """The model of English that ``fusion --text text`` decodes with at the grid value ``value``
    (the ``order`` of the n-gram, ``text="english"``; the words' share ``mix`` for ``"lexicon"`` and
    ``"lexicon-pauses"``, the words mixed with the trigram of the same ``sentences``), over the 39
    scoring classes of ``phones``: the pipeline's, rebuilt from its committed entry."""
    from asrlib.ngram import LexiconLM, ScoringClassLM

    if text not in TEXTS[1:]:
        raise ValueError(f"unknown model of English {text!r}; expected one of {TEXTS[1:]}")
    if text == "english":
        return ScoringClassLM.fit(sentences, value, phones)
    backoff = ScoringClassLM.fit(sentences, LEXICON_BACKOFF, phones).lm
    return ScoringClassLM(LexiconLM.english(backoff, value, pauses=text == "lexicon-pauses"), phones)


def fusion(row: str, scale: str = "book", out: Path = RESULTS, device: str | None = None, argv=None,
           orders=None, weights=None, bonuses=None, progress: bool = True, text: str = "transcriptions") -> dict:
    """Decode a kept CTC row's network with a phone n-gram LM of its training transcriptions
    (``text="transcriptions"``), of English (``text="english"``) or of English words (``text="lexicon"``,
    or ``"lexicon-pauses"`` where a pause is a word boundary; the grid's first field is then ``mix``, the
    words' share, where the others' is ``order``).

    Every LM order, weight and insertion bonus of the grid decodes the human development clips
    (``realspeech.clips(split="dev")``) and the human test clips, and, for the transcriptions' LM,
    the synthetic dev split. The setting is chosen on the human development clips (the lowest PER;
    a tie goes to the smaller weight, then bonus, then order) and, for the transcriptions' LM, for
    comparison on the synthetic dev split; each choice's PER on the test clips is what it scores.
    The test clips' PER over the whole grid is recorded too, to show how far each choice is from
    the best for them, never to choose. Writes ``results/fusion-<scale>.json`` or
    ``results/fusion-<text>-<scale>.json`` (one entry per row)."""
    from asrlib import realspeech
    from asrlib.corpus import load_corpus
    from asrlib.data import SpeechDataset
    from asrlib.evaluate import log_probs_of, score
    from asrlib.ngram import PhoneNgram, english_phone_sentences
    from asrlib.run import provenance
    from asrlib.runtime import progress_bar

    if text not in TEXTS:
        raise ValueError(f"unknown text {text!r} for the language model; expected one of {TEXTS}")
    english, lexicon = text != "transcriptions", text.startswith("lexicon")
    orders = orders or (LEXICON_MIXES if lexicon else ENGLISH_ORDERS if english else FUSION_ORDERS)
    setting_keys = ("mix", *SETTING[1:]) if lexicon else SETTING
    weights = weights or (ENGLISH_WEIGHTS if english else FUSION_WEIGHTS)
    bonuses = bonuses or (ENGLISH_BONUSES if english else FUSION_BONUSES)
    path = out / f"robustness-{scale}.json"
    record = json.loads(path.read_text())
    if row not in record["rows"]:
        raise KeyError(f"{path} has no row {row!r}")
    corpus = load_corpus(size=CORPUS_SIZE)
    phones, beam, spec = corpus.phones, record["recipe"]["beam"], robustness.ROBUSTNESS[row]
    model = load_robust_model(path, record, row, phones.num_classes).to(device or "cpu")
    dev = log_probs_of(model, SpeechDataset(corpus, "dev").normalised(spec.normalise), device or "cpu")
    test = log_probs_of(model, SpeechDataset(corpus, "test").normalised(spec.normalise), device or "cpu")
    people = {split: realspeech.clips(split=split) for split in ("dev", "test")}
    heard = {split: realspeech.log_probs(model, clips, corpus.normaliser, per_utterance=spec.normalise == "utterance")
             for split, clips in people.items()}

    def on_people(split, **kwargs):
        from asrlib.ctc_decode import beam_search

        return realspeech.scored(people[split], [phones.decode(beam_search(lp, beam, **kwargs)[0][0])
                                                 for lp in heard[split]], phones).errors

    if english:
        sentences = english_phone_sentences()
        lms = {value: model_of_english(text, value, sentences, phones) for value in orders}
        classes = {"synthetic dev": [[c for c in phones.fold(phones.decode(y)) if c != "sil"] for y in dev.references],
                   "human dev": [clip.reference for clip in people["dev"]]}  # silence already left out
        perplexity = {where: {str(n): lm.perplexity(seqs) for n, lm in lms.items()} for where, seqs in classes.items()}
        fitted_to = {"english_sentences": len(sentences), "english_phones": sum(map(len, sentences))}
    else:
        train_set = SpeechDataset(load_corpus(size=spec.size, voices=spec.voices), "train")
        transcriptions = [item.y.tolist() for item in train_set]
        lms = {n: PhoneNgram.fit(transcriptions, n, phones.num_classes) for n in orders}
        perplexity = {str(n): lm.perplexity(dev.references) for n, lm in lms.items()}
        fitted_to = {"train_transcriptions": len(transcriptions)}

    def decoding(setting):
        n, w, b = (setting[k] for k in setting_keys)
        return {"lm": lms[n], "lm_weight": w, "insertion_bonus": b} if w or b else {}

    def synthetic_per(split, setting):
        return score(split, phones, "beam", beam=beam, **decoding(setting)).errors.rate

    grid, test_errors = [], {}  # the test clips' errors of each setting, for the chosen ones' record
    for n, w, b in progress_bar([(n, w, b) for n in orders for w in weights for b in bonuses], desc="fusion grid",
                                disable=not progress):
        setting = dict(zip(setting_keys, (n, w, b)))
        kwargs = decoding(setting)
        test_errors[n, w, b] = on_people("test", **kwargs)
        grid.append({**setting, **({} if english else {"dev_per": synthetic_per(dev, setting)}),
                     "human_dev_per": on_people("dev", **kwargs).rate, "real_per": test_errors[n, w, b].rate})

    def chosen_on(key):
        best = min(grid, key=lambda g: (round(g[key], 12), g["lm_weight"], g["insertion_bonus"], g[setting_keys[0]]))
        real = test_errors[tuple(best[k] for k in setting_keys)]
        dev_per = best["dev_per"] if "dev_per" in best else synthetic_per(dev, best)
        return {**{k: best[k] for k in setting_keys}, "dev_per": dev_per, "human_dev_per": best["human_dev_per"],
                "synthetic_test_per": synthetic_per(test, best),
                "real_per": real.rate, "real_errors": dataclasses.asdict(real)}

    plain = next(g for g in grid if not decoding(g))
    entry = {
        **chosen_on("human_dev_per"),
        **({} if english else {"chosen_on_synthetic_dev": chosen_on("dev_per")}),
        "without_lm": {"dev_per": plain["dev_per"] if "dev_per" in plain else synthetic_per(dev, plain),
                       "human_dev_per": plain["human_dev_per"],
                       "synthetic_test_per": record["rows"][row]["synthetic_test_per"],
                       "real_per": record["rows"][row]["real_per"]},
        "lm_dev_perplexity": perplexity, **fitted_to, "grid": grid,
        "provenance": {**provenance(next(model.parameters()).device, []),
                       "command": shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["fusion", "--row", row])])},
    }
    results = out / f"fusion-{text + '-' if english else ''}{scale}.json"
    saved = json.loads(results.read_text()) if results.exists() else {"scale": scale, "rows": {}}
    saved["rows"][row] = entry
    if english:  # the network too is chosen on the development clips, among the rows fused so far
        saved["chosen"] = min(saved["rows"], key=lambda r: (saved["rows"][r]["human_dev_per"], r))
    save_json(results, saved)
    return entry


def chosen_pipeline(scale: str = "book", out: Path = RESULTS) -> tuple[str, str, dict] | None:
    """The pipeline the development clips choose among the English files (``text`` ``"english"``,
    ``"lexicon"`` and ``"lexicon-pauses"``): each file's chosen row, and of those the lowest fused PER on
    the development clips, a tie to the simpler model (in that order). Returns ``(text, row, entry)``, or
    ``None`` where no file exists."""
    chosen = []
    for rank, text in enumerate(TEXTS[1:]):
        path = out / f"fusion-{text}-{scale}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            entry = saved["rows"][saved["chosen"]]
            chosen.append((entry["human_dev_per"], rank, text, saved["chosen"], entry))
    if not chosen:
        return None
    _, _, text, row, entry = min(chosen, key=lambda c: c[:2])
    return text, row, entry
