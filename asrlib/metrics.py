"""Phone error rate: edit distance between decoded and reference phone sequences, after
folding both onto the 39 scoring classes (Lee & Hon 1989), as the paper scores TIMIT.

The alignment comes from RapidFuzz's Levenshtein ``editops`` (a well-kept C++ edit distance
that works on any sequences of hashables); this module only counts its operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from asrlib.phones import PhoneSet


@dataclass(frozen=True)
class ErrorCounts:
    """Substitutions, deletions and insertions against ``reference_length`` reference labels;
    counts add up over utterances with ``+``."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference label (the PER when the labels are phones)."""
        return self.errors / self.reference_length if self.reference_length else float(self.errors > 0)

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, int, int, int]:
        return self.substitutions, self.deletions, self.insertions, self.reference_length

    def __str__(self) -> str:
        return (f"{100 * self.rate:.1f}% ({self.substitutions} sub, {self.deletions} del, {self.insertions} ins "
                f"/ {self.reference_length})")


def edit_errors(reference: Sequence, hypothesis: Sequence) -> ErrorCounts:
    """The substitutions, deletions and insertions of one minimal edit from reference to
    hypothesis (their sum is the Levenshtein distance)."""
    counts = {"replace": 0, "delete": 0, "insert": 0}
    for op in Levenshtein.editops(list(reference), list(hypothesis)):
        counts[op.tag] += 1
    return ErrorCounts(counts["replace"], counts["delete"], counts["insert"], len(reference))


def phone_errors(
    references: Iterable[Sequence[int]], hypotheses: Iterable[Sequence[int]], phones: PhoneSet,
) -> ErrorCounts:
    """Total errors over utterances of phone indices (1..K; blanks ignored), both folded to
    the 39 classes, deleted labels (TIMIT's q) dropped. ``.rate`` is the phone error rate."""
    total = ErrorCounts()
    for ref, hyp in zip(references, hypotheses, strict=True):
        total = total + edit_errors(phones.fold_indices(ref), phones.fold_indices(hyp))
    return total
