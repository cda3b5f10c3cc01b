"""asrlib.explore: controls redraw the figure in place."""

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from asrlib.explore import Explorer, explore  # noqa: E402


def test_changes_redraw_with_current_values_and_close_figures():
    calls = []

    def draw(a, b):
        calls.append((a, b))
        fig, ax = plt.subplots()
        ax.plot([a, b])
        return fig, f"a={a}"

    a, b = ipywidgets.IntSlider(value=1), ipywidgets.IntSlider(value=2)
    ex = explore(draw, a=a, b=b)
    assert calls == [(1, 2)] and len(ex.handles) == 2
    a.value = 5
    b.value = 7
    assert calls == [(1, 2), (5, 2), (5, 7)]
    assert plt.get_fignums() == []  # every figure closed after display


def test_redraw_on_limits_which_controls_redraw():
    calls = []
    a, b = ipywidgets.IntSlider(value=1), ipywidgets.IntSlider(value=2)
    explore(lambda a, b: calls.append((a, b)) or "x", redraw_on=["b"], a=a, b=b)
    a.value = 3
    assert calls == [(1, 2)]
    b.value = 4
    assert calls == [(1, 2), (3, 4)]


def test_bad_controls_and_changing_output_counts_are_errors():
    with pytest.raises(ValueError, match=r"do not exist: \['c'\]"):
        Explorer(lambda a: "x", {"a": ipywidgets.IntSlider()}, redraw_on=["c"])
    a = ipywidgets.IntSlider(value=1)
    explore(lambda a: ("x",) * a, a=a)
    with pytest.raises(RuntimeError, match="draw returned 2 outputs, first 1"):
        a.value = 2
