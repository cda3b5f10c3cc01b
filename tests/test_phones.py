"""Phone sets and the 61 -> 39 folding."""

import pytest

from asrlib.phones import ESPEAK_ALIASES, ESPEAK_TO_39, SCORING39, TIMIT61, TIMIT_TO_39, PhoneSet, UnknownPhoneError, normalise_espeak


def test_timit_has_61_labels_folding_onto_39_classes():
    assert len(TIMIT61) == len(set(TIMIT61)) == 61
    assert len(SCORING39) == 39
    assert set(TIMIT_TO_39.values()) - {None} == set(SCORING39)
    # Lee & Hon's merges, spelled out independently of the table
    expected = {"ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
                "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw", "q": None}
    for closure in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi"):
        expected[closure] = "sil"
    for p in TIMIT61:
        assert TIMIT_TO_39[p] == expected.get(p, p), p


def test_espeak_set_folds_onto_every_scoring_class():
    assert set(ESPEAK_TO_39.values()) - {None} == set(SCORING39)


def test_encode_decode_fold_round_trip():
    timit = PhoneSet("timit")
    assert timit.num_classes == 62 and len(timit) == 61
    ids = timit.encode(["h#", "sh", "ix", "q", "hh", "h#"])
    assert 0 not in ids and timit.decode([0, *ids, 0]) == ["h#", "sh", "ix", "q", "hh", "h#"]
    assert timit.fold_indices(ids) == ["sil", "sh", "ih", "hh", "sil"]


def test_unknown_symbols_are_errors_that_name_them():
    with pytest.raises(UnknownPhoneError, match=r"X9.*in utt-7"):
        normalise_espeak("'X9", where="utt-7")
    with pytest.raises(UnknownPhoneError, match="'zz' for the timit phone set in file.phn"):
        PhoneSet("timit").encode(["aa", "zz"], where="file.phn")
    with pytest.raises(ValueError, match="unknown phone set 'ipa'"):
        PhoneSet("ipa")
    with pytest.raises(ValueError, match="out of range"):
        PhoneSet("timit").decode([62])


def test_espeak_normalisation_strips_stress_and_unifies_pauses():
    assert normalise_espeak("'aI") == "aI" and normalise_espeak(",oU") == "oU"
    assert normalise_espeak("_:") == normalise_espeak("_") == normalise_espeak("_|") == "pau"


def test_espeak_aliases_are_spelled_as_labels_of_the_set_which_they_leave_unchanged():
    assert not set(ESPEAK_ALIASES) & set(ESPEAK_TO_39)  # an alias is never a label: the set keeps its size
    assert PhoneSet("espeak").symbols == tuple(ESPEAK_TO_39)
    for symbol, label in ESPEAK_ALIASES.items():
        assert label in ESPEAK_TO_39 and normalise_espeak(f"'{symbol}") == label, symbol
    assert ESPEAK_TO_39[normalise_espeak("?")] is None  # a glottal stop is deleted in scoring, like TIMIT's q
