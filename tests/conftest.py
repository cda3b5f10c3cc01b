import pytest

from asrlib.corpus import build_corpus


@pytest.fixture(scope="session")
def ci_corpus(tmp_path_factory):
    """The CI-size synthetic corpus, built once per test session in a private folder."""
    return build_corpus("ci", root=tmp_path_factory.mktemp("data"), workers=2, progress=False)
