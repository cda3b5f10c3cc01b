"""Assemble the book from the notebooks ``make nbval`` executed, for a build that does not run them again.

``make nbval`` writes every notebook it executed without a failure to ``_build/executed/``
(``tests/nbval_plugin.py``). This script copies the book's sources into ``_build/src/``, with
those executed notebooks in place of the stored ones and ``execute_notebooks: "off"`` in the
configuration; ``jupyter-book build _build/src --path-output .`` then renders exactly what the
tests ran into ``_build/html``. A notebook that is not in ``_build/executed`` (nbval skipped it
or it failed) is an error here, named.

Usage::

    python tests/executed_book.py            # after make nbval
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_build" / "executed"
SOURCE = ROOT / "_build" / "src"
BOOK = "book"


def assemble(root: Path = ROOT, executed: Path = EXECUTED, source: Path = SOURCE) -> list[Path]:
    """Write ``source``; return the notebooks taken from ``executed``."""
    stored = sorted((root / BOOK).rglob("*.ipynb"))
    missing = [p.relative_to(root) for p in stored if not (executed / p.relative_to(root)).is_file()]
    if missing:
        raise SystemExit(f"not executed by `make nbval` (or failed there): {', '.join(map(str, missing))}; "
                         "run `make nbval` first")
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(root / BOOK, source / BOOK, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__"))
    for p in stored:
        target = source / p.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed / p.relative_to(root), target)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (source / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copyfile(root / "_toc.yml", source / "_toc.yml")
    for static in config.get("sphinx", {}).get("config", {}).get("html_static_path", []):  # e.g. _build/vendor
        if (root / static).is_dir():
            shutil.copytree(root / static, source / static)
    return stored


if __name__ == "__main__":
    taken = assemble()
    print(f"{len(taken)} executed notebooks assembled in {SOURCE.relative_to(ROOT)}")
    sys.exit(0)
