"""The book's structure: notebooks stored clean, the table of contents complete, the
configuration strict, the repository URL in one place, requirements installable in Colab."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

import nbtools

ROOT = nbtools.ROOT
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = nbtools.notebooks(BOOK)


def toc_files():
    files = [TOC["root"]]
    for part in TOC["parts"]:
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_the_setup_cell(path):
    assert nbtools.problems(path) == []


# A LaTeX command typed into a Python string without r"" loses its backslash and first letter
# to an escape: \a \b \v \f \r become control characters, \t a TAB. Written out line by line
# (str.splitlines breaks at \v, \f and \r), the notebook then holds the rest of the command at
# the start of a line: \frac -> "rac{", \right -> "ight)", \rVert -> "Vert", \nabla -> "abla".
MANGLED_CHARACTER = re.compile(r"[\x07\x08\x0b\x0c\r]|\t[a-z]")
MANGLED_LINE_START = re.compile(
    r"^(?:rac\{|orall\b|ight(?![a-z])|ightarrow|Vert(?![a-zA-Z])|angle(?=[\\}$)])|ho(?=[_^}$\\])"
    r"|ec\{|arepsilon|arphi|abla(?![a-z])|onumber|olimits|ewline)",
    re.M,
)


def mangled_latex_escapes(path):
    """Markdown cells of one notebook that hold a LaTeX escape eaten by Python: one message per
    find, naming the notebook, the cell and the text around it."""
    found = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "markdown":
            continue
        for pattern in (MANGLED_CHARACTER, MANGLED_LINE_START):
            for m in pattern.finditer(cell.source):
                snippet = cell.source[max(0, m.start() - 30) : m.end() + 30]
                found.append(f"{Path(path).name}: markdown cell {i}: {snippet!r}")
    return found


def teaching_problems(path):
    """What a chapter lacks of the book's rule: a Summary, then Exercises whose worked solutions
    are hidden (a dropdown in the markdown, or a code cell tagged hide-cell), in that order, at the end."""
    cells = nbformat.read(path, as_version=4).cells
    headings = [(i, line) for i, c in enumerate(cells) if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    names = [line for _, line in headings]
    found = []
    if "## Summary" not in names or "## Exercises" not in names:
        return [f"{Path(path).name}: no '## Summary' or no '## Exercises' section"]
    if names[-2:] != ["## Summary", "## Exercises"]:
        found.append(f"{Path(path).name}: Summary and Exercises must be the last two sections, found {names[-2:]}")
    start = dict((line, i) for i, line in headings)["## Exercises"]
    exercises = cells[start:]
    # each exercise runs from its "**k." to the next one; its solution is a dropdown or a hidden code cell
    solved = []
    for c in exercises:
        if c.cell_type == "markdown":
            for part in re.split(r"^(?=\*\*\d+\.)", c.source, flags=re.M):
                if re.match(r"\*\*\d+\.", part):
                    solved.append(False)
                if solved and ":::{dropdown}" in part:
                    solved[-1] = True
        elif solved and "hide-cell" in c.metadata.get("tags", []):
            solved[-1] = True
    if len(solved) < 4:
        found.append(f"{Path(path).name}: {len(solved)} numbered exercises ('**1. Title.**'), expected at least 4")
    if not all(solved):
        found.append(f"{Path(path).name}: exercises {[k + 1 for k, ok in enumerate(solved) if not ok]} have no solution "
                     "behind a toggle (a dropdown, or a code cell tagged hide-cell)")
    for c in exercises:
        if c.cell_type == "code" and "hide-cell" not in c.metadata.get("tags", []):
            found.append(f"{Path(path).name}: a code cell in the Exercises is not hidden: {c.source[:40]!r}")
    return found


CHAPTERS = [p for p in NOTEBOOKS if p.name.startswith(("ch", "appendix"))]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_ends_with_summary_and_exercises_with_hidden_solutions(path):
    assert teaching_problems(path) == []


def test_teaching_check_fails_on_a_chapter_without_solutions(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 1. A chapter"),
        nbformat.v4.new_markdown_cell("## Summary\n\n- shown"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n" + "\n\n".join(f"**{k}. Title.** Do it." for k in range(1, 5))),
        nbformat.v4.new_code_cell("print('a visible solution')"),
    ])
    path = tmp_path / "ch99_broken.ipynb"
    nbformat.write(nb, path)
    problems = teaching_problems(path)
    assert any("no solution behind a toggle" in p for p in problems)
    assert any("not hidden" in p for p in problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_has_no_mangled_latex_escapes(path):
    found = mangled_latex_escapes(path)
    assert found == [], "LaTeX escapes eaten (write the notebook's strings as r\"...\"):\n" + "\n".join(found)


def test_setup_cell_installs_only_in_colab():
    python = TransformerManager().transform_cell(nbtools.setup_cell_source())
    assert 'if "google.colab" in sys.modules:' in python
    # the %pip magic is indented under the test, so it runs in Colab alone
    assert re.search(r"^    get_ipython\(\)\.run_line_magic\('pip', .*git\+https://", python, re.M), python
    compile(python, "setup-cell", "exec")


def test_toc_parts_follow_the_paper():
    captions = [part["caption"] for part in TOC["parts"]]
    assert captions == ["Foundations", "Recurrent networks", "Sequence training: CTC", "Transducer", "Experiments",
                        "Epilogue", "Appendix"]


def test_every_toc_entry_exists_and_every_page_is_in_the_toc():
    listed = set(toc_files())
    for name in listed:
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), f"{name} is in _toc.yml but missing"
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in BOOK.rglob("*") if p.suffix in (".md", ".ipynb")}
    pages = {p for p in pages if ".ipynb_checkpoints" not in p}
    assert pages - listed == set(), "pages missing from _toc.yml"


def test_config_executes_strictly_and_offers_launch_buttons():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "force"
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["execute"]["timeout"] > 0
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert {"amsmath", "dollarmath"} <= set(CONFIG["parse"]["myst_enable_extensions"])
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).exists()


def test_repository_url_is_kept_in_one_place():
    """Any GitHub URL of the project elsewhere must equal the one in _config.yml."""
    url = nbtools.repository_url()
    owner_repo = re.escape("/".join(url.split("/")[-2:]))
    assert url.startswith("https://github.com/")
    places = [ROOT / "README.md", ROOT / "pyproject.toml", *BOOK.glob("*.md"), ROOT / ".binder" / "postBuild"]
    for place in places:
        if not place.exists():
            continue
        for found in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", place.read_text()):
            found = found.removesuffix(".git")
            if re.search(owner_repo, found) or "asrlib" in found:
                assert found == url, f"{place.name} names {found}, _config.yml names {url}"


def _requirements(path):
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_requirements_are_ranges_except_torch():
    reqs = _requirements(ROOT / "requirements.txt")
    assert "torch==2.13.0" in reqs
    pinned = [r for r in reqs if "==" in r and r != "torch==2.13.0"]
    assert pinned == [], f"exact pins break Colab installs: {pinned}"
    jb = next(r for r in reqs if r.startswith("jupyter-book"))
    assert "<2" in jb, "Jupyter Book 2 is a different tool; pin <2"


def test_package_dependencies_leave_colab_alone():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "==" in d]
    assert any(d.startswith("torch>=") for d in project["dependencies"])
