"""Interactive figures that also read as static ones.

A chapter's explorer shows its controls (ipywidgets sliders, dropdowns) above a figure. The
figure is an ordinary output of the cell, displayed with a display handle, and every change of
a control *updates that output in place*. So the executed HTML book shows the figure for the
initial settings as a plain image (no JavaScript, no widget state needed), while a running
notebook, locally, in Colab or on Binder, redraws it as the reader moves the controls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure


class Explorer:
    """Controls plus the outputs of ``draw(**values)``, redrawn when a control changes.

    Parameters
    ----------
    draw : callable
        Called with one keyword argument per control (its current value); returns one
        displayable object (a matplotlib Figure, an ``IPython.display.Audio``, ...) or a tuple
        of them, always the same number.
    controls : mapping of str to ipywidgets.ValueWidget
        The controls, by the name of the argument they set.
    redraw_on : sequence of str, optional
        The controls whose changes redraw (default: all). A control left out can still steer
        the others, e.g. a speaker menu that fills an utterance menu.
    """

    def __init__(self, draw: Callable, controls: Mapping[str, ipywidgets.ValueWidget], redraw_on: Sequence[str] | None = None):
        unknown = set(redraw_on or ()) - set(controls)
        if unknown:
            raise ValueError(f"redraw_on names controls that do not exist: {sorted(unknown)}")
        self.draw = draw
        self.controls = dict(controls)
        self.handles: list = []
        self.draws = 0
        for name in redraw_on if redraw_on is not None else self.controls:
            self.controls[name].observe(self._on_change, names="value")

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _outputs(self) -> tuple:
        result = self.draw(**self.values())
        self.draws += 1
        return result if isinstance(result, tuple) else (result,)

    def show(self) -> Explorer:
        """Display the controls and the first drawing."""
        display(ipywidgets.HBox(list(self.controls.values()), layout=ipywidgets.Layout(flex_flow="row wrap")))
        for item in self._outputs():
            self.handles.append(display(item, display_id=True))
            _close(item)
        return self

    def _on_change(self, _change=None) -> None:
        outputs = self._outputs()
        if len(outputs) != len(self.handles):
            raise RuntimeError(f"draw returned {len(outputs)} outputs, first {len(self.handles)}")
        for handle, item in zip(self.handles, outputs):
            if handle is not None:
                handle.update(item)
            _close(item)


def _close(item) -> None:
    if isinstance(item, Figure):
        plt.close(item)  # displayed once through its handle, not again by the inline backend


def explore(draw: Callable, redraw_on: Sequence[str] | None = None, **controls: ipywidgets.ValueWidget) -> Explorer:
    """Show an :class:`Explorer`: ``explore(draw, speaker=dropdown, view=buttons)``."""
    return Explorer(draw, controls, redraw_on).show()
