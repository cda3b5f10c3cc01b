"""The committed results against their documentation: every result carries its provenance, and every
experiment command that made one is written out in results/README.md, so that a number can be remade."""

import json
import shlex
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results"
PROVENANCE = {"command", "commit", "device", "torch", "date"}


def _records():
    for path in sorted(RESULTS.rglob("*.json")):
        if path.name in ("history.json", "epochs.json"):  # a run's curves, beside the record that has the provenance
            continue
        record = json.loads(path.read_text())
        for name, entry in (record["rows"].items() if "rows" in record else [("", record)]):
            yield path.relative_to(RESULTS), name, entry


def _documented() -> set[tuple[str, ...]]:
    """The README's commands, each as its arguments, without the default ``--scale book``."""
    text = (RESULTS / "README.md").read_text().replace("\\\n", " ")
    return {_arguments(line) for line in text.splitlines() if line.startswith("python -m asrlib.")}


def _arguments(command: str) -> tuple[str, ...]:
    words = shlex.split(command)
    for i in range(len(words) - 1):
        if words[i: i + 2] == ["--scale", "book"]:
            return tuple(words[:i] + words[i + 2:])
    return tuple(words)


def test_every_committed_result_has_its_provenance():
    seen = 0
    for path, name, entry in _records():
        missing = PROVENANCE - set(entry.get("provenance", {}))
        assert not missing, f"results/{path} {name!r} lacks {sorted(missing)} in its provenance"
        seen += 1
    assert seen > 50


def test_every_experiment_that_made_a_result_is_documented():
    documented, seen = _documented(), 0
    for path, name, entry in _records():
        command = entry["provenance"]["command"]
        if command.startswith("python -m asrlib.experiments"):  # asrlib.run's are the sweep's own (its command is)
            assert _arguments(command) in documented, f"results/README.md does not give the command of results/{path} " \
                                                      f"{name!r}: {command}"
            seen += 1
    assert seen > 50


@pytest.mark.parametrize("command, same", [
    ("python -m asrlib.experiments fusion --scale book --row 'a b'", 'python -m asrlib.experiments fusion --row "a b"'),
    ("python -m asrlib.experiments fusion --scale smoke --row x", "python -m asrlib.experiments fusion --row x"),
])
def test_commands_compare_as_arguments_with_the_default_scale_left_out(command, same):
    assert (_arguments(command) == _arguments(same)) == ("smoke" not in command)
