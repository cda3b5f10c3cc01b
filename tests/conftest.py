import pytest

from asrlib.corpus import build_corpus, synthetic


@pytest.fixture(scope="session")
def ci_corpus(tmp_path_factory):
    """The CI-size synthetic corpus, built once per test session in a private folder."""
    return build_corpus("ci", root=tmp_path_factory.mktemp("data"), workers=2, progress=False)


@pytest.fixture
def added_utterances():
    """``added(voices, more)``: the utterances that the corpus ``voices + "+" + more`` adds to the corpus of
    ``voices`` (both at the CI size), once it is checked that the smaller corpus opens the larger one unchanged."""
    def added(voices: str, more: str) -> list:
        before = synthetic.utterance_specs(2, voices)
        after = synthetic.utterance_specs(2, f"{voices}+{more}")
        assert after[:len(before)] == before
        return after[len(before):]
    return added
