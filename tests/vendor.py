"""Put the JavaScript the HTML book loads beside it, so that it works offline.

Sphinx loads MathJax, and myst-nb loads RequireJS and the Jupyter widget manager, from CDNs by
default: on a machine without internet (a train, these build machines) the math is left as raw
TeX and widgets as text. ``make`` runs this script, which takes the three packages from the npm
registry with ``npm pack`` (the published tarball alone, no dependency tree) and unpacks what
the pages load into ``_build/vendor``; ``_config.yml`` names that folder as a static path
(copied into ``_build/html/_static``) and points ``mathjax_path`` and ``nb_ipywidgets_js`` at
the copies.

Usage::

    python tests/vendor.py [DEST]        # default _build/vendor; does nothing when DEST is complete
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "_build" / "vendor"
# npm package (licence) -> {path in the tarball: path under DEST}. MathJax (Apache-2.0) ships its
# licence file, which travels with it; the widget manager (BSD-3-Clause) and RequireJS (MIT)
# state theirs in package.json and in their bundles' headers.
PACKAGES = {
    "mathjax@3.2.2": {"package/es5": "mathjax", "package/LICENSE": "mathjax/LICENSE"},
    "@jupyter-widgets/html-manager@1.0.15": {"package/dist": "widgets"},
    "requirejs@2.3.7": {"package/require.js": "require.js"},
}
# Not loaded by the pages: MathJax's speech engine, its other combined builds (the pages load
# tex-mml-chtml.js, which fetches extensions from input/ and fonts from output/chtml/), its SVG
# output; the widget manager's non-AMD builds; source maps.
SKIP = ("package/es5/sre/", "package/es5/output/svg", ".map", "package/dist/embed.js", "package/dist/libembed-amd.js")
KEEP_TOP = {"package/es5": ("tex-mml-chtml.js",)}  # top-level files kept where a folder is taken whole


def _wanted(name: str) -> bool:
    if any(s in name for s in SKIP):
        return False
    for folder, files in KEEP_TOP.items():
        rest = name[len(folder) + 1:] if name.startswith(folder + "/") else None
        if rest is not None and "/" not in rest and rest not in files:
            return False
    return True
STAMP = ".complete"


def vendor(dest: Path = DEST) -> None:
    if (dest / STAMP).is_file() and (dest / STAMP).read_text() == repr(sorted(PACKAGES)):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the offline HTML book needs npm (Node.js's package manager) to fetch MathJax and the "
                         "widget manager: install it (Debian: apt-get install npm) and run make again")
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, layout in PACKAGES.items():
            out = subprocess.run([npm, "pack", "--silent", spec], cwd=tmp, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"npm pack {spec} failed: {out.stderr.strip()}")
            with tarfile.open(Path(tmp) / out.stdout.strip().splitlines()[-1]) as tar:
                for member in tar.getmembers():
                    if not member.isfile() or not _wanted(member.name):
                        continue
                    for source, target in layout.items():
                        if member.name == source or member.name.startswith(source + "/"):
                            path = dest / target / member.name[len(source):].lstrip("/")
                            path.parent.mkdir(parents=True, exist_ok=True)
                            path.write_bytes(tar.extractfile(member).read())
    missing = [p for p in ("mathjax/tex-mml-chtml.js", "widgets/embed-amd.js", "require.js") if not (dest / p).is_file()]
    if missing:
        raise SystemExit(f"the npm packages did not hold {missing}")
    (dest / STAMP).write_text(repr(sorted(PACKAGES)))


if __name__ == "__main__":
    vendor(Path(sys.argv[1]) if len(sys.argv) > 1 else DEST)
    print(f"offline JavaScript in {DEST.relative_to(ROOT)}")
