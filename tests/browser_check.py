"""Open every page of the built HTML book in headless Chromium, as a reader would, and fail on what they would see.

For each page of ``_build/html`` (the chapters, the part pages and the front page):

* **JavaScript errors**: any uncaught error or resource that fails to load, from Chromium's
  console log;
* **math**: a formula MathJax could not typeset (its error boxes, ``mjx-merror``), or a page
  with math where MathJax did not run at all (offline without a local MathJax, the math stays
  raw TeX);
* **images** that do not exist, and **internal links** to a page or an anchor that does not
  exist (read from the HTML);

and a screenshot of the top of each page goes to ``_build/screenshots/`` for review. Chromium
is Debian's ``chromium`` (``make`` installs it where ``apt-get`` can); where there is none, the
check says so and passes, so that a machine without it can still run ``make test``.

Usage::

    python tests/browser_check.py [HTML_DIR]          # default _build/html
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
SKIP_PAGES = ("genindex.html", "search.html")
WORKERS = 4
CONSOLE = re.compile(r'INFO:CONSOLE[^\]]*\] "(.*)", source: (\S*)')
PROBLEMS = ("Uncaught", "Failed to load resource", "SyntaxError", "TypeError", "ReferenceError")
MATH_ERROR = re.compile(r'<mjx-merror[^>]*data-mjx-error="([^"]*)"|<mjx-merror[^>]*>')


class _Links(html.parser.HTMLParser):
    """hrefs, image sources and element ids of one page."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.images, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(errors="replace"))
    return p


def static_problems(page: Path, root: Path, cache: dict) -> list[str]:
    """Missing images and broken internal links of ``page`` (a file under ``root``)."""
    found = []
    links = cache.setdefault(page, _parse(page))
    for src in links.images:
        if src.startswith(("data:", "http:", "https:")):
            continue
        if not (page.parent / unquote(urlsplit(src).path)).resolve().is_file():
            found.append(f"image not found: {src}")
    for href in links.hrefs:
        parts = urlsplit(href)
        if parts.scheme or href.startswith(("mailto:", "javascript:")):
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if parts.path and not target.exists():
            found.append(f"broken link: {href}")
        elif parts.fragment and target.suffix == ".html" and target.is_file():
            if parts.fragment not in cache.setdefault(target, _parse(target)).ids:
                found.append(f"broken anchor: {href}")
    return found


def browser_problems(page: Path, chromium: str, screenshot: Path | None = None, budget_ms: int = 20000) -> list[str]:
    """What a reader's browser reports on ``page``: console errors and MathJax failures."""
    page = Path(page).resolve()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             f"--virtual-time-budget={budget_ms}"]
    run = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = []
    for message, source in CONSOLE.findall(run.stderr):
        if any(p in message for p in PROBLEMS):
            found.append(f"browser console: {message} ({Path(urlsplit(source).path).name})")
    dom = run.stdout
    for match in MATH_ERROR.finditer(dom):
        found.append(f"MathJax error: {match.group(1) or 'a formula could not be typeset'}")
    source_html = page.read_text(errors="replace")
    if ('class="math' in source_html or "\\(" in source_html) and "<mjx-container" not in dom and "mathjax" in source_html.lower():
        found.append("MathJax did not typeset this page (is it loaded?)")
    if not dom.strip():
        found.append(f"Chromium returned no page (exit {run.returncode}): {run.stderr.strip()[-300:]}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=120)
    return found


def pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if p.name not in SKIP_PAGES and not {"_static", "_sources", "_images"} & set(p.relative_to(html_dir).parts))


def main(html_dir: Path) -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not html_dir.is_dir():
        print(f"no HTML book in {html_dir}: build it first (make book)")
        return 1
    shots = html_dir.parent / "screenshots"
    cache, failures = {}, {}

    def check(page: Path) -> list[str]:
        name = str(page.relative_to(html_dir))
        shot = shots / name.replace("/", "__").replace(".html", ".png")
        return browser_problems(page, chromium, shot) if chromium else []

    every = pages(html_dir)
    with ThreadPoolExecutor(WORKERS) as pool:  # Chromium mostly waits: a few pages at once
        seen = dict(zip(every, pool.map(check, every)))
    for page, found in seen.items():
        name = str(page.relative_to(html_dir))
        found = static_problems(page, html_dir, cache) + found
        if found:
            failures[name] = found
        print(f"{'FAIL' if found else 'ok  '}  {name}")
    if not chromium:
        print("no Chromium here: only links and images were checked (Debian: apt-get install chromium)")
    for name, found in failures.items():
        print(f"\n{name}:")
        for problem in dict.fromkeys(found):
            print(f"    {problem}")
    print(f"\n{len(every)} pages, {len(failures)} with problems; screenshots in {shots}" if chromium else "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html"))
