"""Explorers: a figure redrawn from controls (ipywidgets), that still reads well without a kernel.

``explore(draw, **controls)`` builds one control per keyword (a list or tuple: a dropdown, or a
slider when it holds numbers; a ``range``: an integer slider; a dict: a dropdown of labels; or any
ipywidgets control) and an ``Output`` holding the PNG that ``draw(**values)`` makes. Defaults come
from ``draw``'s own defaults (else the first option). ``draw`` only draws: compute the results
before (the explorer redraws on every change, it must not train).

Displayed in JupyterLab it is live. Its saved output also holds the PNG of the first view and a
one-line description, so a notebook read without a kernel (GitHub, a text diff, nbval) shows a
figure and a sentence; headless runs of the course (``LEPTON_PROGRESS=0``: ``lepton run``,
``make lessons``, nbval) store that static view only.

>>> import matplotlib.pyplot as plt
>>> def draw(power=2, colour="k"):
...     fig, ax = plt.subplots()
...     ax.plot([x ** power for x in range(10)], colour)
...     return fig
>>> view = explore(draw, power=(1, 2, 3), colour=["k", "r"])
>>> view
explorer of draw over power, colour (showing power=2, colour='k'): run the notebook to change them
>>> view.controls["power"].value = 3
>>> view.redraws, view.values
(2, {'power': 3, 'colour': 'k'})
"""
from __future__ import annotations

import base64
import inspect
import io
import numbers
import time
from functools import lru_cache

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def explore(draw, **controls):
    """An explorer of ``draw(**values)`` over ``controls`` (see the module's docstring)."""
    if not callable(draw):
        raise TypeError(f"explore needs a function that returns a matplotlib figure, got {type(draw).__name__}")
    if not controls:
        raise ValueError("explore needs at least one control, e.g. explore(draw, lr=(0.01, 0.1, 1.0))")
    defaults = {name: p.default for name, p in inspect.signature(draw).parameters.items()
                if p.default is not inspect.Parameter.empty}
    widgets = {name: _control(name, spec, defaults.get(name, _FIRST)) for name, spec in controls.items()}
    return _explorer_class()(draw, widgets)


_FIRST = object()


def _control(name, spec, default):
    import ipywidgets as w

    if isinstance(spec, w.ValueWidget):
        spec.description = spec.description or name
        return spec
    if isinstance(spec, range):
        if len(spec) == 0 or spec.step < 0:
            raise ValueError(f"control {name}: {spec} is empty or decreasing")
        value = spec[0] if default is _FIRST else default
        if value not in spec:
            raise ValueError(f"control {name}: the default {value!r} is not in {spec}")
        return w.IntSlider(value=value, min=spec[0], max=spec[-1], step=spec.step, description=name,
                           continuous_update=False)
    if isinstance(spec, dict):
        options = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        options = [(_label(v), v) for v in spec]
    else:
        raise TypeError(f"control {name}: give a list or tuple of values, a range, a dict of label: value "
                        f"or an ipywidgets control, not {type(spec).__name__}")
    if not options:
        raise ValueError(f"control {name} has no options")
    values = [v for _, v in options]
    value = values[0] if default is _FIRST else default
    if not any(value is v or value == v for v in values):
        raise ValueError(f"control {name}: the default {value!r} of the draw function is not one of its options")
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)
    kind = w.SelectionSlider if numeric and len(values) > 1 else w.Dropdown
    extra = {"continuous_update": False} if kind is w.SelectionSlider else {}
    return kind(options=options, value=value, description=name, **extra)


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _png(draw, values) -> bytes:
    import matplotlib.pyplot as plt

    fig = draw(**values)
    fig = fig if fig is not None else plt.gcf()
    if not hasattr(fig, "savefig"):
        raise TypeError(f"the draw function returned {type(fig).__name__}, not a matplotlib figure")
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=80)
    finally:
        plt.close(fig)  # nothing left for the inline backend to show a second time
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _explorer_class():
    import ipywidgets as w

    class Explorer(w.VBox):
        """The controls above an ``Output`` with the current figure; ``redraws`` and ``seconds`` count."""

        def __init__(self, draw, controls):
            self.draw, self.controls = draw, controls
            self.output = w.Output()
            self.redraws, self.seconds, self.png = 0, 0.0, b""
            super().__init__(children=[*controls.values(), self.output])
            self.redraw()  # the first view: errors in draw surface here, in the cell that built it
            for control in controls.values():
                control.observe(self._changed, names="value")

        @property
        def values(self) -> dict:
            return {name: control.value for name, control in self.controls.items()}

        def redraw(self):
            began = time.perf_counter()
            self.png = _png(self.draw, self.values)
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": base64.b64encode(self.png).decode("ascii"),
                                             "text/plain": self.describe()}},)
            self.redraws += 1
            self.seconds = time.perf_counter() - began

        def _changed(self, change):
            try:
                self.redraw()
            except Exception as err:  # shown where the figure was, instead of lost in a log
                self.output.outputs = ({"output_type": "stream", "name": "stderr",
                                        "text": f"could not draw {self.values}: {type(err).__name__}: {err}\n"},)

        def describe(self) -> str:
            name = getattr(self.draw, "__name__", "a figure")
            shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
            return (f"explorer of {name} over {', '.join(self.controls)} (showing {shown}): "
                    "run the notebook to change them")

        def __repr__(self):
            return self.describe()

        def _repr_mimebundle_(self, **kwargs):
            from lepton_kit.utils import progress_enabled

            bundle = {"text/plain": self.describe(), "image/png": base64.b64encode(self.png).decode("ascii")}
            if progress_enabled():  # not a headless run of the course: JupyterLab shows the live controls
                live = super()._repr_mimebundle_(**kwargs) or {}
                if WIDGET_VIEW in live:
                    bundle[WIDGET_VIEW] = live[WIDGET_VIEW]
            return bundle

    return Explorer
