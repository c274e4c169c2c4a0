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
import weakref
from functools import lru_cache

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def explore(draw, **controls):
    """An explorer of ``draw(**values)`` over ``controls`` (see the module's docstring)."""
    if not callable(draw):
        raise TypeError(f"explore needs a function that returns a matplotlib figure, got {type(draw).__name__}")
    if not controls:
        raise ValueError("explore needs at least one control, e.g. explore(draw, lr=(0.01, 0.1, 1.0))")
    parameters = inspect.signature(draw).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [name for name in controls if name not in parameters and not takes_any]
    if unknown:
        raise TypeError(f"{getattr(draw, '__name__', 'draw')} has no parameter {', '.join(unknown)} "
                        f"for the control{'s' * (len(unknown) > 1)} of that name")
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    widgets = {name: _control(name, spec, defaults.get(name, _FIRST)) for name, spec in controls.items()}
    view = _explorer_class()(draw, widgets)
    _made.append(weakref.ref(view))
    return view


_made: list = []


def explorers() -> list:
    """The explorers this kernel built and still holds, oldest first (for checks like ``exercise``)."""
    return [view for view in (ref() for ref in _made) if view is not None]


def _values_of(control) -> list:
    if hasattr(control, "_options_values"):  # Dropdown, SelectionSlider, RadioButtons
        return list(control._options_values)
    if hasattr(control, "min") and hasattr(control, "step"):
        count = int(round((control.max - control.min) / control.step)) + 1
        return [control.min + i * control.step for i in range(count)]
    return [control.value]


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


def _png(draw, values, layout=None) -> tuple[bytes, list]:
    """The PNG of ``draw(**values)`` and its axes' positions. Given the ``layout`` (positions) of an
    earlier view with as many axes, it is reused instead of running the layout engine again: the
    engine is half of a redraw's time, and the picture keeps still while a control moves."""
    import matplotlib.pyplot as plt

    fig = draw(**values)
    fig = fig if fig is not None else plt.gcf()
    if not hasattr(fig, "savefig"):
        raise TypeError(f"the draw function returned {type(fig).__name__}, not a matplotlib figure")
    buffer = io.BytesIO()
    try:
        if layout and len(layout) == len(fig.axes):
            fig.set_layout_engine(None)  # "none" keeps a placeholder engine: savefig would lay out twice
            for ax, position in zip(fig.axes, layout):
                ax.set_position(position)
        fig.savefig(buffer, format="png", dpi=80, pil_kwargs={"compress_level": 1})
        positions = [ax.get_position() for ax in fig.axes]
    finally:
        plt.close(fig)  # nothing left for the inline backend to show a second time
    return buffer.getvalue(), positions


@lru_cache(maxsize=1)
def _explorer_class():
    import ipywidgets as w

    class Explorer(w.VBox):
        """The controls above an ``Output`` with the current figure; ``redraws`` and ``seconds`` count."""

        def __init__(self, draw, controls):
            self.draw, self.controls = draw, controls
            self.output = w.Output()
            self.redraws, self.seconds, self.png, self.positions = 0, 0.0, b"", None
            super().__init__(children=[*controls.values(), self.output])
            self.redraw()  # the first view: errors in draw surface here, in the cell that built it
            for control in controls.values():
                control.observe(self._changed, names="value")

        @property
        def values(self) -> dict:
            return {name: control.value for name, control in self.controls.items()}

        def redraw(self):
            began = time.perf_counter()
            self.png, positions = _png(self.draw, self.values, self.positions)
            self.positions = self.positions or positions
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

        def exercise(self, *, moves: int = 3) -> list[dict]:
            """Move every control to up to ``moves`` other values, then back; per move: the control, the
            value, the redraw's wall-clock and CPU seconds and whether the picture changed."""
            report = []
            for name, control in self.controls.items():
                start, values = control.value, _values_of(control)
                others = [v for v in values if v != start]
                picks = others[:: max(1, -(-len(others) // moves))][:moves] if others else []
                for value in [*picks, start] if picks else []:
                    before, cpu = self.png, time.thread_time()
                    control.value = value  # redraws through the observer, as a click does
                    report.append({"control": name, "value": value, "seconds": round(self.seconds, 4),
                                   "cpu_seconds": round(time.thread_time() - cpu, 4),
                                   "changed": self.png != before})
            return report

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


# --- self-check quizzes ------------------------------------------------------------------------

class _Question:
    kind = ""

    def __init__(self, question: str, *, answer, explain: str = ""):
        if not isinstance(question, str) or not question.strip():
            raise ValueError("a question needs its text")
        self.question, self.answer, self.explain = question, answer, explain

    def is_right(self, given) -> bool:
        raise NotImplementedError

    def static(self) -> list[str]:
        return [self.question]


class _Choice(_Question):
    kind = "choice"

    def __init__(self, question, options, *, answer, explain=""):
        super().__init__(question, answer=answer, explain=explain)
        self.options = [str(o) for o in options]
        if len(self.options) < 2:
            raise ValueError(f"a multiple-choice question needs two options or more: {question!r}")
        if str(answer) not in self.options:
            raise ValueError(f"the answer {answer!r} is not one of the options of {question!r}")
        self.answer = str(answer)

    def is_right(self, given) -> bool:
        return given is not None and str(given) == self.answer

    def static(self):
        return [self.question, *(f"  ( ) {o}" for o in self.options)]


class _Number(_Question):
    kind = "number"

    def __init__(self, question, *, answer, tolerance=0.0, explain=""):
        super().__init__(question, answer=float(answer), explain=explain)
        if tolerance < 0:
            raise ValueError("the tolerance is a distance: it cannot be negative")
        self.tolerance = float(tolerance)

    def is_right(self, given) -> bool:
        try:
            return abs(float(given) - self.answer) <= self.tolerance + 1e-12 * max(1.0, abs(self.answer))
        except (TypeError, ValueError):
            return False

    def static(self):
        return [self.question, "  answer: ____"]


def choice(question: str, options, *, answer, explain: str = ""):
    """A multiple-choice question for :func:`quiz`; ``answer`` is one of ``options``.

    >>> choice("2 + 2?", ["3", "4"], answer="4").is_right("4")
    True
    """
    return _Choice(question, options, answer=answer, explain=explain)


def number(question: str, *, answer, tolerance: float = 0.0, explain: str = ""):
    """A numeric question for :func:`quiz`: right within ``tolerance`` (absolute) of ``answer``.

    >>> number("Parameters of nn.Linear(4, 2)?", answer=10).is_right(10.0)
    True
    """
    return _Number(question, answer=answer, tolerance=tolerance, explain=explain)


def quiz(*questions, title: str = "Self-check"):
    """A self-check quiz, not graded: each question answered in place, with feedback at once.

    Without a kernel (a stored notebook, nbval) it shows the questions, never the answers.

    >>> q = quiz(choice("2 + 2?", ["3", "4"], answer="4", explain="Count them."), number("3 * 3?", answer=9))
    >>> print(q)
    Self-check (2 questions): run the notebook to answer them.
    1. 2 + 2?
      ( ) 3
      ( ) 4
    2. 3 * 3?
      answer: ____
    >>> q.answer(0, "3")
    'Not quite. Try again, or press "Show answer".'
    >>> q.answer(0, "4")
    'Correct. Count them.'
    """
    if not questions:
        raise ValueError("a quiz needs at least one question, e.g. quiz(choice('2 + 2?', ['3', '4'], answer='4'))")
    bad = [q for q in questions if not isinstance(q, _Question)]
    if bad:
        raise TypeError(f"quiz takes questions made with choice(...) or number(...), not {type(bad[0]).__name__}")
    return _quiz_class()(list(questions), title)


def _feedback(question, given) -> str:
    if question.kind == "number":
        try:
            float(given)
        except (TypeError, ValueError):
            return f"{given!r} is not a number: type one, e.g. 0.5 or 1e-3."
    if question.is_right(given):
        return f"Correct. {question.explain}".strip()
    return 'Not quite. Try again, or press "Show answer".'


@lru_cache(maxsize=1)
def _quiz_class():
    import html

    import ipywidgets as w

    class Quiz(w.VBox):
        """One box per question: its control, Check and Show answer, and a feedback line."""

        def __init__(self, questions, title):
            self.questions, self.title = questions, title
            self.inputs, self.feedback = [], []
            boxes = [w.HTML(f"<b>{html.escape(title)}</b>")]
            for i, q in enumerate(questions):
                if q.kind == "choice":
                    control = w.RadioButtons(options=q.options, value=None, layout=w.Layout(width="auto"))
                else:
                    control = w.Text(placeholder="a number", layout=w.Layout(width="12em"))
                check, show = w.Button(description="Check"), w.Button(description="Show answer")
                line = w.HTML("")
                check.on_click(lambda _, i=i: self.answer(i, self.inputs[i].value))
                show.on_click(lambda _, i=i: self.reveal(i))
                self.inputs.append(control)
                self.feedback.append(line)
                boxes.append(w.VBox([w.HTML(f"{i + 1}. {html.escape(q.question)}"), control,
                                     w.HBox([check, show]), line]))
            super().__init__(children=boxes)

        def answer(self, index: int, given) -> str:
            """Check ``given`` for question ``index`` (what the Check button does); the feedback text."""
            text = _feedback(self.questions[index], given)
            self.feedback[index].value = html.escape(text)
            return text

        def reveal(self, index: int) -> str:
            q = self.questions[index]
            shown = q.answer if q.kind == "choice" else f"{q.answer:g}"
            text = f"Answer: {shown}. {q.explain}".strip()
            self.feedback[index].value = html.escape(text)
            return text

        def describe(self) -> str:
            lines = [f"{self.title} ({len(self.questions)} question{'s' * (len(self.questions) != 1)}): "
                     "run the notebook to answer them."]
            for i, q in enumerate(self.questions):
                first, *rest = q.static()
                lines += [f"{i + 1}. {first}", *rest]
            return "\n".join(lines)

        def __repr__(self):
            return self.describe()

        def _repr_mimebundle_(self, **kwargs):
            from lepton_kit.utils import progress_enabled

            bundle = {"text/plain": self.describe()}
            if progress_enabled():
                live = super()._repr_mimebundle_(**kwargs) or {}
                if WIDGET_VIEW in live:
                    bundle[WIDGET_VIEW] = live[WIDGET_VIEW]
            return bundle

    return Quiz
