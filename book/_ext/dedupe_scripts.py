"""A Sphinx extension for the book: each script once per page.

Jupyter Book 1.x registers sphinx-thebe's and sphinx-togglebutton's inline configuration twice
(once with the file name ``None``, once with ``''``), so every page declared ``const
THEBE_JS_URL`` twice and the browser reported a SyntaxError on each page. This drops the
repeats from the page's script list; the first copy stays in place.
"""


def _key(script):
    filename = getattr(script, "filename", script) or ""
    return str(filename), tuple(sorted(getattr(script, "attributes", {}).items()))


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        if _key(script) not in seen:
            seen.add(_key(script))
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
