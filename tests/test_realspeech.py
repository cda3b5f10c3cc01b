"""asrlib.realspeech: the shipped human clips, audio loading with clear errors, scoring."""

import json
import re

import numpy as np
import pytest
import soundfile
import torch
from torch import nn

from asrlib import features as F
from asrlib import realspeech
from asrlib.phones import ARPABET_TO_39, SCORING39, PhoneSet


@pytest.fixture(scope="module")
def shipped():
    return realspeech.clips()


@pytest.mark.parametrize("split", ["test", "dev"])
def test_every_shipped_clip_loads_with_its_licence_and_a_reference(split, shipped):
    rows = json.loads((realspeech.DATA / realspeech.SPLITS[split]).read_text())
    clips = shipped if split == "test" else realspeech.clips(split="dev")
    assert [c.id for c in clips] == [r["id"] for r in rows] and len(clips) >= 12
    for clip, row in zip(clips, rows):
        assert (realspeech.DATA / row["licence"]).is_file(), row["licence"]
        assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
        assert abs(clip.duration - row["seconds"]) < 0.01, clip.id  # resampled to 16 kHz, same length
        assert np.abs(clip.audio).max() <= 1.0 and clip.audio.std() > 1e-3
        assert len(clip.reference) >= 5 and "sil" not in clip.reference
        assert set(clip.reference) <= set(SCORING39)
        times = clip.times
        assert times.shape == (len(clip.phones), 2) and (times[:, 1] > times[:, 0]).all()
        assert times[-1, 1] <= clip.duration + 0.02


def test_the_dev_clips_are_other_recordings_than_the_test_clips(shipped):
    dev = realspeech.clips(split="dev")
    assert not {c.id for c in dev} & {c.id for c in shipped}
    assert not {c.text.lower() for c in dev} & {c.text.lower() for c in shipped}
    assert len({c.audio.tobytes() for c in dev + shipped}) == len(dev) + len(shipped)
    # and other people: every clip names its speaker, and no speaker is in both sets (the test clips' seven and the
    # development clips' four, as the sources tell them apart)
    assert all(c.speaker for c in dev + shipped)
    assert not {c.speaker for c in dev} & {c.speaker for c in shipped}
    assert (len({c.speaker for c in shipped}), len({c.speaker for c in dev})) == (7, 4)
    with pytest.raises(ValueError, match="unknown split"):
        realspeech.clips(split="train")


def test_the_48_khz_clip_is_resampled(shipped):
    bobby = next(c for c in shipped if c.id == "praatio_bobby")
    assert soundfile.info(str(realspeech.DATA / "praatio_bobby.wav")).samplerate == 48_000
    assert abs(len(bobby.audio) - round(soundfile.info(str(realspeech.DATA / "praatio_bobby.wav")).duration * 16_000)) <= 1


def test_arpabet_folds_onto_the_scoring_classes():
    assert set(ARPABET_TO_39.values()) <= set(SCORING39)
    assert realspeech.fold_arpabet(["SIL", "HH", "IY1", "T", "ER0", "N", "D", "AO1", "ZH", "SIL"]) == [
        "hh", "iy", "t", "er", "n", "d", "aa", "sh"]
    with pytest.raises(ValueError, match="unknown ARPAbet phone 'XX'"):
        realspeech.fold_arpabet(["XX"])


def test_pronounce_uses_the_dictionary_and_names_missing_words():
    assert realspeech.pronounce("Go forward, ten meters.") == "G OW F AO R W ER D T EH N M IY T ER Z".split()
    with pytest.raises(KeyError, match="qzxv"):
        realspeech.pronounce("go qzxv forward")


# --------------------------------------------------------------------------- audio errors


def write(path, audio, rate=16_000):
    soundfile.write(path, audio, rate, subtype="PCM_16")
    return path


def tone(seconds=0.5, rate=16_000, hz=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_load_audio_resamples_and_mixes_only_when_asked(tmp_path):
    at_8k = realspeech.load_audio(write(tmp_path / "a.wav", tone(rate=8_000), 8_000))
    assert len(at_8k) == 8_000 and at_8k.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(at_8k))
    assert abs(np.argmax(spectrum) * 16_000 / len(at_8k) - 440) < 3  # still a 440 Hz tone
    stereo = write(tmp_path / "s.wav", np.stack([tone(), tone()], axis=1))
    with pytest.raises(realspeech.AudioError, match="2 channels"):
        realspeech.load_audio(stereo)
    np.testing.assert_allclose(realspeech.load_audio(stereo, mix_to_mono=True), tone(), atol=1e-4)


@pytest.mark.parametrize("problem", ["missing", "corrupt", "empty", "silent"])
def test_load_audio_names_the_problem(tmp_path, problem):
    path = tmp_path / f"{problem}.wav"
    if problem == "corrupt":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio")
    elif problem == "empty":
        write(path, np.zeros(0, dtype=np.float32))
    elif problem == "silent":
        write(path, np.zeros(1600, dtype=np.float32))
    expected = {"missing": (FileNotFoundError, "no audio file"), "corrupt": (realspeech.AudioError, "not audio"),
                "empty": (realspeech.AudioError, "no samples"), "silent": (realspeech.AudioError, "silent")}[problem]
    with pytest.raises(expected[0], match=expected[1]):
        realspeech.load_audio(path)


# --------------------------------------------------------------------------- scoring


class EmitsReference(nn.Module):
    """A CTC 'network' whose outputs spell a given label sequence: each label on two frames,
    blanks in between, whatever the input (the stub of the issue: a clip scored against its own
    labels must give 0%)."""

    def __init__(self, labels, num_classes):
        super().__init__()
        self.labels, self.num_classes = labels, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, x_lens):
        T = x.shape[1]
        logits = torch.full((x.shape[0], T, self.num_classes), -20.0)
        logits[..., 0] = 0.0
        for k, label in enumerate(self.labels):
            t = 3 * k + 1
            assert t + 1 < T, "the clip is too short for the stub"
            logits[:, t : t + 2, 0] = -20.0
            logits[:, t : t + 2, label] = 0.0
        return logits + 0 * self.dummy


def stub_for(clip, phones):
    return EmitsReference(phones.encode(clip.reference), phones.num_classes)


def test_a_clip_scored_against_its_own_labels_gives_zero(shipped):
    timit = PhoneSet("timit")  # the 39 classes are TIMIT labels too, so a reference encodes directly
    normaliser = F.Normaliser(np.zeros(123, np.float32), np.ones(123, np.float32))
    for clip in shipped[:4]:
        for method in ("greedy", "beam"):
            result = realspeech.score(stub_for(clip, timit), timit, normaliser, [clip], method=method)
            assert result.errors.rate == 0.0, (clip.id, method, result.rows[0])
            assert result.rows[0]["hypothesis"] == clip.reference


def test_a_wrong_label_counts_as_one_substitution(shipped):
    timit = PhoneSet("timit")
    normaliser = F.Normaliser(np.zeros(123, np.float32), np.ones(123, np.float32))
    clip = shipped[0]
    wrong = list(clip.reference)
    wrong[3] = "zh" if wrong[3] != "sh" else "s"  # zh folds to sh
    model = EmitsReference(timit.encode(wrong), timit.num_classes)
    result = realspeech.score(model, timit, normaliser, [clip], method="greedy")
    expected = 0 if wrong[3] == "zh" and clip.reference[3] == "sh" else 1
    assert result.errors.substitutions == expected and result.errors.deletions == result.errors.insertions == 0
    assert result.errors.rate == pytest.approx(expected / len(clip.reference))


def test_clip_from_file_takes_its_reference_from_the_dictionary(tmp_path, shipped):
    goforward = next(c for c in shipped if c.id == "goforward")
    path = write(tmp_path / "mine.wav", goforward.audio)
    clip = realspeech.clip_from_file(path, "go forward ten meters")
    assert clip.reference == goforward.reference  # the alignment and the dictionary agree here
    np.testing.assert_allclose(clip.audio, goforward.audio, atol=1 / 32768)


def test_a_transducer_is_recognised_with_either_decoder(shipped):
    from asrlib.models import build_model

    espeak = PhoneSet("espeak")
    torch.manual_seed(0)
    model = build_model("Trans-1l-8h-nopeep", num_classes=espeak.num_classes, init="torch")
    normaliser = F.Normaliser(np.zeros(123, np.float32), np.ones(123, np.float32))
    clip = next(c for c in shipped if c.id == "cards_004")
    for method, kwargs in (("greedy", {}), ("beam", {"beam": 2})):
        heard = realspeech.recognise(model, clip.audio, espeak, normaliser, method, **kwargs)
        assert isinstance(heard, list) and all(p in espeak.symbols for p in heard)
    with pytest.raises(ValueError, match="unknown method 'prefix' for a transducer"):
        realspeech.recognise(model, clip.audio, espeak, normaliser, "prefix")


def test_inputs_warp_the_filterbank_only_when_asked(shipped):
    clip = next(c for c in shipped if c.id == "cards_004")
    normaliser = F.Normaliser(np.full(123, 0.5, np.float32), np.full(123, 2.0, np.float32))
    plain = realspeech.inputs(clip.audio, normaliser)
    np.testing.assert_array_equal(realspeech.inputs(clip.audio, normaliser, warp=1.0), plain)
    warped = realspeech.inputs(clip.audio, normaliser, warp=0.9)
    np.testing.assert_allclose(warped, normaliser(F.fbank123(clip.audio, warp=0.9)), rtol=1e-6, atol=1e-6)
    assert warped.shape == plain.shape and not torch.allclose(warped, plain)

    class Echo(nn.Module):  # its logits are its first five inputs: log_probs must hand it the warped ones
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x, x_lens):
            return x[..., :5] + 0 * self.dummy

    [heard] = realspeech.log_probs(Echo(), [clip], normaliser, warp=0.9)
    torch.testing.assert_close(heard, warped[:, :5].log_softmax(-1))


def test_a_voices_own_labels_score_nothing_against_themselves_and_each_change_counts():
    from asrlib.corpus import speak, speakers

    speaker, text = speakers()[0], "Korea's audience saw a button"
    own = [c for c in PhoneSet("espeak").fold(speak(text, speaker)["phones"]) if c != "sil"]
    assert own and set(own) <= {p.lower() for p in ARPABET_TO_39}  # no flap: every class is ARPAbet too

    def clip(classes):
        return realspeech.Clip("own", text, np.zeros(1600, np.float32), tuple(c.upper() for c in classes))

    assert realspeech.labels_against_references(speaker, [clip(own)]).errors.errors == 0
    changed = own[:2] + ["z" if own[2] != "z" else "s"] + own[3:5] + own[6:]  # one substituted, one left out
    errors = realspeech.labels_against_references(speaker, [clip(changed)]).errors
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 1)


def test_the_labellings_file_records_each_family_or_why_it_is_missing(tmp_path, monkeypatch):
    from asrlib import labellings
    from asrlib.corpus import flite, speakers

    monkeypatch.setattr(labellings, "LABELLERS", {"espeak en-us": ("espeak", "en-us"), "Flite": ("flite", None)})
    monkeypatch.setattr(flite.shutil, "which", lambda program: None)  # as on a machine without the program
    saved = labellings.labels(tmp_path, ["labels"], progress=False)
    assert saved == json.loads((tmp_path / "labels.json").read_text())
    assert "needs the flite program" in saved["labellers"]["Flite"]["unavailable"]
    espeak = saved["labellers"]["espeak en-us"]
    direct = realspeech.labels_against_references(speakers()[0], realspeech.clips(split="test"))
    assert espeak["speaker"] == speakers()[0].id and espeak["test"]["per"] == direct.errors.rate > 0
    assert espeak["test"]["labels"] == {row["id"]: row["hypothesis"] for row in direct.rows}
    assert saved["provenance"]["command"] == "python -m asrlib.experiments labels"


def test_the_dictionarys_labels_are_cmudicts_words_with_the_voices_pauses_between_them():
    phones = PhoneSet("espeak")
    voice = "h# D @2 k w I k pau b 0 t# @L pau r oU z h#".split()  # espeak's The quick bottle rose.
    # by hand from CMUdict: DH AH0 | K W IH1 K | B AA1 T AH0 L | R OW1 Z, the pauses after quick and bottle
    assert realspeech.dictionary_labels("The quick bottle rose.", voice, phones) == \
        "h# D @ k w I k pau b A: t @ l pau r oU z h#".split()
    early = "h# D @2 k w I pau k b 0 t# @L r oU z h#".split()  # a pause inside a word goes to its nearest end
    assert realspeech.dictionary_labels("The quick bottle rose.", early, phones) == \
        "h# D @ k w I k pau b A: t @ l r oU z h#".split()
    with pytest.raises(KeyError, match="zorblax"):
        realspeech.dictionary_labels("The zorblax rose.", voice, phones)


def test_the_dictionarys_labels_of_the_corpus_fold_to_pronounce_and_keep_every_pause_at_a_word_boundary(ci_corpus):
    from asrlib.corpus.store import read_utterance
    from asrlib.data import SpeechDataset

    phones = ci_corpus.phones
    dictionary = realspeech._dictionary()
    for utt_id in ci_corpus.ids("test")[:40]:
        record = read_utterance(ci_corpus.path(utt_id), features=False)
        voice = [str(p) for p in record["phones"]]
        new = realspeech.dictionary_labels(record["text"], voice, phones)
        said = [p for p in new if phones.to39[p] != "sil"]
        expected = realspeech.fold_arpabet(realspeech.pronounce(record["text"]))  # another path through CMUdict
        assert phones.fold(said) == expected, utt_id
        assert [p for p in new if phones.to39[p] == "sil"] == [p for p in voice if phones.to39[p] == "sil"]
        words = re.findall(r"[a-z]+(?:'[a-z]+)?", record["text"].lower())
        ends = set(np.cumsum([len(dictionary[w][0]) for w in words]).tolist()) | {0}
        k = 0
        for p in new:  # every silence sits where a word ends (or before the first)
            if phones.to39[p] == "sil":
                assert k in ends, (utt_id, new)
            else:
                k += 1
    voice_set, dictionary_set = SpeechDataset(ci_corpus, "test"), SpeechDataset(ci_corpus, "test", labels="dictionary")
    u = ci_corpus.load(voice_set.ids[0])
    assert dictionary_set[0].y.tolist() == phones.encode(realspeech.dictionary_labels(u.text, u.phones, phones))
    assert torch.equal(dictionary_set[0].x, voice_set[0].x) and voice_set[0].y.tolist() == u.targets.tolist()
    from asrlib.augment import Augment
    from asrlib.data import AugmentedDataset

    perturbed = AugmentedDataset(dictionary_set, Augment(speed=0.1))  # a training split perturbed keeps the labels
    assert torch.equal(perturbed[0].y, dictionary_set[0].y) and len(perturbed[0].frame_y) == len(perturbed[0].x)
    with pytest.raises(ValueError, match="unknown labels 'ipa'"):
        SpeechDataset(ci_corpus, "test", labels="ipa")
