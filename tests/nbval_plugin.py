"""pytest plugin for the notebook checks (``make nbval`` loads it with ``-p tests.nbval_plugin``).

Three jobs:

* **A longer wait for a cell's last messages.** nbval 0.11 waits at most 5 seconds for each
  message a cell sends after the kernel has replied that the cell finished, and that 5 is a
  constant (nbval issues #136 and #231). On a busy 2-core CI machine a training cell with
  progress bars once went past it ("Timeout of 5 seconds exceeded waiting for output") although
  the cell had run correctly. Here it is raised; a cell that really hangs is still stopped by
  ``--nbval-cell-timeout``.
* **Each notebook executed once per test run.** Every message a cell's execution sends is
  recorded and replayed through nbclient's own output handling (the code Jupyter Book executes
  with: streams, rich displays, ``clear_output``, display updates, widget state), and the
  executed notebook is written to ``_build/executed/<path>`` when all its cells passed. Cells
  run with ``store_history=True``, as in Jupyter (nbval's ``False`` makes IPython ignore a
  closing semicolon, and ``ax.legend(...);`` would print its return value into the book). The
  strict book build (``tests/executed_book.py``) renders those notebooks instead of running
  them all a second time.
* **The time of every chapter**, printed as a table at the end of the run, slowest named, and
  kept in ``_build/executed/timings.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete

OUTPUT_TIMEOUT = 60
EXECUTED = Path("_build") / "executed"


class Recording:
    """The messages of every executed cell of one notebook."""

    def __init__(self, path: Path, nb):
        self.path, self.nb = path, nb
        self.cells: dict[int, tuple[str | None, list, float]] = {}  # index in nb.cells -> (msg id, messages, seconds)
        self.failed = False

    def executed(self):
        """The notebook with the outputs nbclient would have stored, or None if a cell is missing."""
        nb = nbformat.from_dict(json.loads(json.dumps(self.nb)))  # a deep copy
        client = NotebookClient(nb, record_timing=False)
        client.reset_execution_trackers()
        # nbclient's stand-in for an Output widget echoes its outputs to the kernel; a replay has
        # no kernel, and the state it keeps for the notebook is the same without the echo
        client.kc = SimpleNamespace(session=SimpleNamespace(msg=lambda *args, **kwargs: {}),
                                    shell_channel=SimpleNamespace(send=lambda msg: None))
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if index not in self.cells:
                return None
            msg_id, messages, _ = self.cells[index]
            cell.outputs, cell.execution_count = [], None
            client.clear_before_next_output = False  # as nbclient's execute_cell sets it for each cell
            for msg in messages:
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                try:
                    client.process_message(msg, cell, index)
                except CellExecutionComplete:
                    break
        client.set_widgets_metadata()
        return nb

    @property
    def seconds(self) -> float:
        return sum(s for _, _, s in self.cells.values())


_recordings: dict[str, Recording] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = OUTPUT_TIMEOUT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not hasattr(item, "output_timeout"):
        yield
        return
    notebook = item.parent
    key = str(notebook.fspath)
    recording = _recordings.setdefault(key, Recording(Path(key), notebook.nb))
    index = next(i for i, c in enumerate(notebook.nb.cells) if c is item.cell)
    messages, ids = [], []
    kernel = notebook.kernel
    get_message = notebook.get_kernel_message

    def recording_get(*args, **kwargs):
        msg = get_message(*args, **kwargs)
        messages.append(msg)
        return msg

    def recording_execute(source, allow_stdin=None):
        # as Jupyter runs a cell: with store_history=True (nbval passes False), without which
        # IPython cannot see a cell's closing semicolon and displays the value it should hide
        ids.append(kernel.kc.execute(source, store_history=True, allow_stdin=bool(allow_stdin), stop_on_error=False))
        return ids[-1]

    notebook.get_kernel_message, kernel.execute_cell_input = recording_get, recording_execute
    start = time.perf_counter()
    try:
        outcome = yield
    finally:
        del notebook.get_kernel_message, kernel.execute_cell_input  # back to the methods
    recording.cells[index] = (ids[0] if ids else None, messages, time.perf_counter() - start)
    if outcome.excinfo is not None:
        recording.failed = True


def pytest_sessionfinish(session):
    root = Path(session.config.rootpath)
    for recording in _recordings.values():
        target = root / EXECUTED / recording.path.resolve().relative_to(root)
        nb = None if recording.failed else recording.executed()
        if nb is None:
            target.unlink(missing_ok=True)  # never leave a stale copy for the book build
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    if _recordings:
        timings = {str(r.path.resolve().relative_to(root)): round(r.seconds, 1) for r in _recordings.values()}
        (root / EXECUTED).mkdir(parents=True, exist_ok=True)
        (root / EXECUTED / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")


def pytest_terminal_summary(terminalreporter):
    if not _recordings:
        return
    rows = sorted(((r.seconds, r.path.name, r.failed) for r in _recordings.values()), reverse=True)
    terminalreporter.section("time per notebook (every cell's execution)")
    for seconds, name, failed in rows:
        terminalreporter.write_line(f"{seconds:8.1f} s  {name}{'  (FAILED)' if failed else ''}")
    terminalreporter.write_line(f"{sum(s for s, _, _ in rows):8.1f} s  in all; the slowest: {rows[0][1]}")
