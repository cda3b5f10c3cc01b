"""A Sphinx extension for the book's pages: each script once, and widgets that load beside MathJax 3.

* Jupyter Book 1.x registers sphinx-thebe's and sphinx-togglebutton's inline configuration twice
  (once with the file name ``None``, once with ``''``), so every page declared ``const
  THEBE_JS_URL`` twice and the browser reported a SyntaxError on each page. The repeats are
  dropped from the page's script list; the first copy stays in place.
* The Jupyter widget manager (``@jupyter-widgets/html-manager`` 1.x) typesets widget labels with
  MathJax 2's ``MathJax.Hub.Queue``; Sphinx loads MathJax 3, which has no ``Hub``, and every page
  with a widget threw "Cannot read properties of undefined (reading 'Queue')". A small shim,
  loaded before MathJax, gives whatever object ``window.MathJax`` becomes a ``Hub.Queue`` that
  asks MathJax 3 to typeset the page.
"""

HUB_SHIM = """(function () {
  var current = window.MathJax;
  var hub = {Queue: function () { var m = window.MathJax; if (m && m.typesetPromise) { m.typesetPromise(); } }};
  function withHub(value) { if (value && typeof value === "object" && !value.Hub) { value.Hub = hub; } return value; }
  Object.defineProperty(window, "MathJax", {configurable: true, get: function () { return current; },
                                            set: function (value) { current = withHub(value); }});
  withHub(current);
})();"""


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
    app.add_js_file(None, body=HUB_SHIM, priority=100)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
