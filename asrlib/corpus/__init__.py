"""The corpora the book trains on, behind one switch: :func:`load_corpus`.

========================  ====================================================================
:mod:`~.store`            the on-disk format every corpus shares: :class:`Corpus`,
                          :class:`Utterance`, the manifest, parallel builds
:mod:`~.synthetic`        the default corpus: 64 synthetic speakers shaped like TIMIT
:mod:`~.synth`            espeak-ng driven for audio with the exact time of every phone
:mod:`~.neural`,          the optional second voice family: a neural voice trained on a person,
:mod:`~.neural_phonemes`  with the exact time of every phone (``pip install asrlib[neural]``)
:mod:`~.kokoro`           the optional third: Kokoro-82M's five voices, four of them women's
:mod:`~.flite`            the optional fourth: Flite's two voices made from people (the flite program)
:mod:`~.sentences`        the seeded sentence generator
:mod:`~.timit`            TIMIT, for readers who hold it
========================  ====================================================================

Each of the others imports :mod:`~.store`, never one another (``synthetic`` uses ``synth``,
``sentences``, ``neural``, ``kokoro`` and ``flite``, its own parts; ``neural`` and ``kokoro`` use
``neural_phonemes``, and espeak-ng through ``synth``).
"""

from __future__ import annotations

from pathlib import Path

from asrlib import runtime
from asrlib.corpus.store import SPLITS, Corpus, CorpusError, Utterance
from asrlib.corpus.synthetic import ACCENTS, SIZES, Speaker, build_corpus, speak, speakers, utterance_specs

__all__ = [
    "ACCENTS", "SIZES", "SPLITS", "Corpus", "CorpusError", "Speaker", "Utterance", "build_corpus", "load_corpus",
    "speak", "speakers", "utterance_specs",
]


def load_corpus(
    name: str | None = None, size: str | int = "ci", root: str | Path | None = None, timit: str | Path | None = None, **kwargs
) -> Corpus:
    """The corpus every chapter uses, chosen by one setting.

    ``name`` is ``"synthetic"`` (the default) or ``"timit"``; when omitted it is read from
    ``$ASRLIB_CORPUS``, and setting ``$ASRLIB_TIMIT`` to a TIMIT folder selects TIMIT on its own.
    """
    timit = timit or runtime.setting(runtime.TIMIT_ENV)
    name = name or runtime.setting(runtime.CORPUS_ENV) or ("timit" if timit else "synthetic")
    if name == "synthetic":
        return build_corpus(size, root=root, **kwargs)
    if name == "timit":
        from asrlib.corpus.timit import build_timit  # only for readers who hold TIMIT

        if timit is None:
            raise CorpusError(f"the TIMIT corpus was asked for, but no folder was given: set ${runtime.TIMIT_ENV} or pass timit=")
        return build_timit(timit, root=root, **kwargs)
    raise ValueError(f"unknown corpus {name!r}; expected 'synthetic' or 'timit'")
