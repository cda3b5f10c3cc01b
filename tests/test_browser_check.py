"""The browser check catches what a reader would see: a broken formula, a missing image, a dead link."""

import shutil
from pathlib import Path

import pytest

from tests.browser_check import ROOT, browser_problems, static_problems

MATHJAX = ROOT / "_build" / "vendor" / "mathjax"
CHROMIUM = shutil.which("chromium")

PAGE = """<html><head>
<script>window.MathJax = {{"options": {{"processHtmlClass": "math"}}}}</script>
<script defer src="_static/mathjax/tex-mml-chtml.js"></script></head>
<body><div class="math notranslate nohighlight">\\[{formula}\\]</div>
<p id="here">text</p><a href="#here">fine</a> {extra}</body></html>"""


@pytest.mark.skipif(CHROMIUM is None or not MATHJAX.is_dir(), reason="needs Chromium and the offline MathJax (make book)")
@pytest.mark.parametrize("formula, broken", [(r"\min\left(1, \frac{c}{\lVert g \rVert}\right)", False),
                                             (r"\min\left(1, \frac{c}{\lVert g \rVert}ight)", True)])
def test_a_broken_formula_fails_the_check_and_a_good_one_passes(tmp_path, formula, broken):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "mathjax").symlink_to(MATHJAX)
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(formula=formula, extra=""))
    found = browser_problems(page, CHROMIUM)
    assert any("MathJax error" in f for f in found) == broken, found
    assert not [f for f in found if "MathJax error" not in f], found


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
def test_a_javascript_error_fails_the_check(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><script>const a = 1;</script><script>const a = 2;</script></body></html>")
    assert any("already been declared" in f for f in browser_problems(page, CHROMIUM))


def test_missing_images_and_dead_links_are_named(tmp_path):
    (tmp_path / "other.html").write_text('<p id="there">x</p>')
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(formula="x", extra='<img src="nothing.png"><img src="data:image/png;base64,AA==">'
                                '<a href="other.html#there">ok</a><a href="other.html#gone">anchor</a>'
                                '<a href="missing.html">page</a><a href="https://example.org/x">out</a>'))
    found = static_problems(page, tmp_path, {})
    assert sorted(found) == ["broken anchor: other.html#gone", "broken link: missing.html", "image not found: nothing.png"]
