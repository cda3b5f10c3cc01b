"""pytest plugin for the notebook checks (``make nbval`` loads it with ``-p tests.nbval_plugin``).

nbval 0.11 waits at most 5 seconds for each message a cell sends after the kernel has replied
that the cell finished, and that 5 is a constant (nbval issues #136 and #231). On a busy 2-core CI
machine a training cell with progress bars once went past it ("Timeout of 5 seconds exceeded
waiting for output") although the cell had run correctly. Here it is raised; a cell that really
hangs is still stopped by ``--nbval-cell-timeout``.
"""

OUTPUT_TIMEOUT = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = OUTPUT_TIMEOUT
