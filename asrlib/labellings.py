"""The labels' own accent: every labelling of English in the synthetic corpus against the human clips' references.

::

    python -m asrlib.experiments labels

:func:`labels` writes ``results/labels.json`` (chapter 11).
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import torch

from asrlib.checkpoint import save_json
from asrlib.corpus.synthetic import ACCENTS
from asrlib.robustness import RESULTS

# one speaker per labelling of English in the synthetic corpus: espeak-ng's rules for each accent; the
# neural voice and Kokoro's (espeak-ng's American phonemes); Flite (CMU's lexicon, cmulex); Festival
# and MBROLA (Festival's CMU lexicon)
LABELLERS = {**{f"espeak {accent}": ("espeak", accent) for accent in ACCENTS},
             "neural voice": ("neural", None), "Kokoro": ("kokoro", None), "Flite": ("flite", None),
             "Festival": ("festival", None), "MBROLA": ("mbrola", None)}


def labels(out: Path = RESULTS, argv=None, progress: bool = True) -> dict:
    """Each labelling of :data:`LABELLERS` against the human clips' references, on both sets of
    clips (:func:`asrlib.realspeech.labels_against_references`): the floor that a voice's way of
    writing English down sets for a network trained on it alone, whatever it hears. A family whose
    synthesiser is not installed is recorded as such. Writes ``results/labels.json``."""
    from asrlib import realspeech
    from asrlib.corpus import synthetic
    from asrlib.run import provenance
    from asrlib.runtime import progress_bar

    first = {"espeak": lambda accent: next(s for s in synthetic.speakers() if s.voice.accent == accent),
             "neural": lambda _: synthetic.neural_speakers()[0], "kokoro": lambda _: synthetic.kokoro_speakers()[0],
             "flite": lambda _: synthetic.flite_speakers()[0], "festival": lambda _: synthetic.festival_speakers()[0],
             "mbrola": lambda _: synthetic.festival_speakers("mb", synthetic.MBROLA_VOICES)[0]}
    people = {split: realspeech.clips(split=split) for split in ("dev", "test")}
    record = {}
    for name, (family, accent) in progress_bar(LABELLERS.items(), desc="labellings", disable=not progress):
        speaker = first[family](accent)
        try:
            scores = {split: realspeech.labels_against_references(speaker, clips) for split, clips in people.items()}
        except (ImportError, OSError, RuntimeError) as err:  # a synthesiser this machine lacks
            record[name] = {"speaker": speaker.id, "unavailable": f"{type(err).__name__}: {err}"}
            continue
        record[name] = {"speaker": speaker.id, **{split: {
            "per": score.errors.rate, "errors": dataclasses.asdict(score.errors),
            "labels": {row["id"]: row["hypothesis"] for row in score.rows}} for split, score in scores.items()}}
    saved = {"labellers": record,
             "provenance": {**provenance(torch.device("cpu"), []),
                            "command": shlex.join(["python", "-m", "asrlib.experiments", *(argv or ["labels"])])}}
    save_json(out / "labels.json", saved)
    return saved
