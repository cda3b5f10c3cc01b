"""Phone error rate against a dynamic-programming edit distance written here."""

import random

import pytest

from asrlib.metrics import ErrorCounts, edit_errors, phone_errors
from asrlib.phones import PhoneSet


def _levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_counts_sum_to_the_edit_distance_on_random_sequences():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 9))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 9))]
        counts = edit_errors(a, b)
        assert counts.errors == _levenshtein(a, b)
        assert len(a) - counts.deletions + counts.insertions == len(b)
        assert counts.reference_length == len(a)


def test_operation_kinds_on_a_known_case():
    assert edit_errors("abc", "axcd") == ErrorCounts(substitutions=1, deletions=0, insertions=1, reference_length=3)
    assert edit_errors("abc", "c") == ErrorCounts(0, 2, 0, 3)
    total = edit_errors("abc", "axcd") + edit_errors("abc", "c")
    assert total.rate == pytest.approx(4 / 6) and "66.7%" in str(total)


def test_phone_errors_fold_to_39_classes():
    timit = PhoneSet("timit")
    ref = timit.encode(["h#", "ao", "q", "zh", "h#"])
    hyp = timit.encode(["pau", "aa", "sh"])  # h# and pau -> sil, ao -> aa, zh -> sh; q is dropped
    assert phone_errors([ref], [hyp], timit) == ErrorCounts(0, 1, 0, 4)  # the final sil is missing
    with pytest.raises(ValueError):
        phone_errors([ref], [], timit)
