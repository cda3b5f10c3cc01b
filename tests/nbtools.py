"""Keep the book's notebooks in the shape the build and the tests expect.

Every notebook is stored without outputs and starts with one short set-up cell that installs
asrlib from the repository in Google Colab and does nothing elsewhere. The repository URL is
read from ``_config.yml``, the one place that names it.

Usage::

    python tests/nbtools.py fix book      # strip outputs, write the set-up cell (make notebooks)
    python tests/nbtools.py check book    # report what `fix` would change; exit 1 if anything
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETUP_TAG = "colab-setup"
HTML_TAG = "remove-cell"  # the HTML book starts with the chapter's title; notebooks keep the cell


def repository_url(config_path: Path = ROOT / "_config.yml") -> str:
    """The repository URL from ``_config.yml`` (without a trailing slash or ``.git``)."""
    config = yaml.safe_load(config_path.read_text())
    url = config["repository"]["url"].rstrip("/")
    return url.removesuffix(".git")


def setup_cell_source(url: str | None = None, branch: str | None = None) -> str:
    """The source of the first cell of every notebook."""
    if url is None or branch is None:
        config = yaml.safe_load((ROOT / "_config.yml").read_text())
        url = url or repository_url()
        branch = branch or config["repository"].get("branch", "main")
    return (
        "# Set-up: in Google Colab, install asrlib (the book's library) from its repository;\n"
        "# Colab's own torch and other packages are kept. Anywhere else this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "asrlib @ git+{url}@{branch}"'
    )


def notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def problems(path: Path) -> list[str]:
    """What is wrong with one stored notebook (empty when it is in shape)."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            found.append(f"{path.name}: cell {i} is stored with outputs or an execution count")
        if cell.cell_type == "code" and "sys.path" in cell.source:
            found.append(f"{path.name}: cell {i} manipulates sys.path (install the package instead)")
    if not nb.cells or nb.cells[0].cell_type != "code" or nb.cells[0].source != setup_cell_source():
        found.append(f"{path.name}: the first cell is not the canonical set-up cell (run `make notebooks`)")
    elif nb.cells[0].metadata.get("tags") != [SETUP_TAG, HTML_TAG]:
        found.append(f"{path.name}: the set-up cell must carry the tags {[SETUP_TAG, HTML_TAG]} (run `make notebooks`)")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        found.append(f"{path.name}: kernelspec is {kernel!r}, expected 'python3'")
    return found


def fix(path: Path) -> bool:
    """Strip outputs, write the set-up cell and the kernelspec; True if the file changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    setup = nbformat.v4.new_code_cell(setup_cell_source(), metadata={"tags": [SETUP_TAG, HTML_TAG]})
    if nb.cells and SETUP_TAG in nb.cells[0].get("metadata", {}).get("tags", []):
        setup.id = nb.cells[0].get("id", setup.id)
        nb.cells[0] = setup
    else:
        nb.cells.insert(0, setup)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
        return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("fix", "check"):
        print(__doc__)
        return 2
    command, folder = argv
    paths = notebooks(Path(folder))
    if command == "fix":
        for path in paths:
            if fix(path):
                print(f"fixed {path}")
        return 0
    found = [msg for path in paths for msg in problems(path)]
    print("\n".join(found) or f"{len(paths)} notebooks in shape")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
