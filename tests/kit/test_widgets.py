"""lepton_kit.widgets: explorers (a static figure without a frontend, live controls that redraw quickly) and
self-check quizzes (the questions without a frontend, never the answers; feedback at once in a live kernel)."""
from __future__ import annotations

import base64
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lepton_kit.widgets import WIDGET_VIEW, choice, explore, explorers, number, quiz  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
RESULTS = {(name, lr): np.cumsum(np.random.default_rng(i).normal(size=200)) * lr
           for i, (name, lr) in enumerate((n, lr) for n in ("sgd", "adam") for lr in (0.01, 0.1, 1.0))}


def draw_curve(optimizer="adam", lr=0.1, steps=100):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(RESULTS[optimizer, lr][:steps])
    ax.set_title(f"{optimizer}, lr={lr}")
    return fig


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")  # figures other tests left open would count as the explorer's
    yield
    plt.close("all")


def _explorer():
    return explore(draw_curve, optimizer=["sgd", "adam"], lr=(0.01, 0.1, 1.0), steps=range(10, 201, 10))


def test_a_headless_call_leaves_a_static_figure_and_a_sentence(monkeypatch):
    monkeypatch.setenv("LEPTON_PROGRESS", "0")  # what lepton run, make lessons and nbval set
    view = _explorer()
    bundle = view._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:8] == PNG
    assert WIDGET_VIEW not in bundle
    text = bundle["text/plain"]
    assert text.startswith("explorer of draw_curve over optimizer, lr, steps (showing optimizer='adam', lr=0.1, steps=100)")
    assert "interactive(" not in text and "children" not in text and len(text) < 160
    assert plt.get_fignums() == [], "the explorer must not leave figures for the inline backend to show again"


def test_in_a_live_kernel_it_is_standard_controls_and_an_output_with_the_image(monkeypatch):
    import ipywidgets as widgets

    monkeypatch.delenv("LEPTON_PROGRESS", raising=False)
    view = _explorer()
    bundle = view._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == view.model_id and "image/png" in bundle
    kinds = {name: type(c) for name, c in view.controls.items()}
    assert kinds == {"optimizer": widgets.Dropdown, "lr": widgets.SelectionSlider, "steps": widgets.IntSlider}
    assert isinstance(view, widgets.VBox) and view.children[-1] is view.output
    (shown,) = view.output.outputs
    assert base64.b64decode(shown["data"]["image/png"])[:8] == PNG


def test_changing_a_control_redraws_quickly():
    view = _explorer()
    first = view.png
    began = time.perf_counter()
    view.controls["optimizer"].value = "sgd"
    seconds = time.perf_counter() - began
    print(f"redraw after a change: {seconds:.3f} s (draw and PNG: {view.seconds:.3f} s)")
    assert view.redraws == 2 and view.values["optimizer"] == "sgd"
    assert view.png != first and view.output.outputs[0]["data"]["image/png"] == base64.b64encode(view.png).decode()
    assert seconds < 2.0
    view.controls["steps"].value = 50
    assert view.redraws == 3 and "steps=50" in view.describe()


def test_a_failing_redraw_is_shown_in_the_output_not_lost():
    def draw(lr=0.1):
        if lr > 0.5:
            raise ValueError("no result for this rate")
        return plt.figure()

    view = explore(draw, lr=(0.1, 1.0))
    view.controls["lr"].value = 1.0
    assert "could not draw {'lr': 1.0}: ValueError: no result for this rate" in view.output.outputs[0]["text"]


def test_bad_controls_are_named():
    with pytest.raises(ValueError, match="at least one control"):
        explore(draw_curve)
    with pytest.raises(TypeError, match="control lr: give a list"):
        explore(draw_curve, lr=0.1)
    with pytest.raises(ValueError, match="default 0.1 of the draw function is not one of its options"):
        explore(draw_curve, lr=(1.0, 2.0))
    with pytest.raises(TypeError, match="returned int, not a matplotlib figure"):
        explore(lambda x=1: 3, x=[1, 2])
    with pytest.raises(TypeError, match="draw_curve has no parameter rate for the control of that name"):
        explore(draw_curve, rate=(0.1, 1.0))


def test_exercise_moves_every_control_and_reports_each_redraw():
    view = _explorer()
    assert view in explorers()
    report = view.exercise(moves=2)
    moved = {(r["control"], r["value"]) for r in report}
    assert {"optimizer", "lr", "steps"} == {c for c, _ in moved}
    assert ("optimizer", "sgd") in moved and ("optimizer", "adam") in moved  # there and back
    assert all(r["changed"] and 0 < r["cpu_seconds"] and 0 < r["seconds"] for r in report)
    assert view.values == {"optimizer": "adam", "lr": 0.1, "steps": 100}, "exercise puts the controls back"


def test_exercise_reports_a_control_that_changes_nothing():
    def draw(lr=0.1, colour="k"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, lr], "k")  # colour is ignored: a control that teaches nothing
        return fig

    report = explore(draw, lr=(0.1, 1.0), colour=["k", "r"]).exercise()
    assert [r["changed"] for r in report if r["control"] == "colour"] == [False, False]
    assert all(r["changed"] for r in report if r["control"] == "lr")


def test_redraws_reuse_the_first_views_layout():
    def draw(lr=0.1):
        fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3), layout="constrained")
        a.plot([0, lr])
        b.set_title("a title long enough to move a constrained layout" if lr > 0.5 else "short")
        return fig

    view = explore(draw, lr=(0.1, 1.0))
    first = [p.bounds for p in view.positions]
    view.controls["lr"].value = 1.0
    assert [p.bounds for p in view.positions] == first and view.redraws == 2


def _quiz():
    return quiz(choice("Which activation is max(0, x)?", ["tanh", "ReLU", "sigmoid"], answer="ReLU",
                       explain="ReLU keeps the positive part."),
                number("Parameters of nn.Linear(64, 10)?", answer=650, explain="64 * 10 weights and 10 biases."),
                number("1 / 3 to two decimals?", answer=0.33, tolerance=0.005))


def test_a_headless_quiz_shows_the_questions_and_never_the_answers(monkeypatch):
    monkeypatch.setenv("LEPTON_PROGRESS", "0")
    bundle = _quiz()._repr_mimebundle_()
    assert WIDGET_VIEW not in bundle
    text = bundle["text/plain"]
    assert text.splitlines()[0] == "Self-check (3 questions): run the notebook to answer them."
    assert "1. Which activation is max(0, x)?" in text and "( ) ReLU" in text and "( ) tanh" in text
    assert "650" not in text and "keeps the positive part" not in text and "0.33" not in text


def test_a_live_quiz_gives_feedback_at_once(monkeypatch):
    import ipywidgets as widgets

    monkeypatch.delenv("LEPTON_PROGRESS", raising=False)
    q = _quiz()
    assert WIDGET_VIEW in q._repr_mimebundle_()
    assert isinstance(q.inputs[0], widgets.RadioButtons) and q.inputs[0].value is None  # nothing preselected
    assert q.answer(0, "tanh").startswith("Not quite") and "ReLU" not in q.feedback[0].value
    q.inputs[0].value = "ReLU"
    q.children[1].children[2].children[0].click()  # the Check button of question 1
    assert q.feedback[0].value == "Correct. ReLU keeps the positive part."
    assert q.answer(1, "650") == "Correct. 64 * 10 weights and 10 biases."
    assert q.answer(1, " 6.5e2 ").startswith("Correct") and q.answer(1, "651").startswith("Not quite")
    assert q.answer(1, "six hundred fifty") == "'six hundred fifty' is not a number: type one, e.g. 0.5 or 1e-3."
    assert q.answer(2, "0.334").startswith("Correct") and q.answer(2, "0.34").startswith("Not quite")
    assert q.reveal(1) == "Answer: 650. 64 * 10 weights and 10 biases."


def test_bad_questions_are_named():
    with pytest.raises(ValueError, match="at least one question"):
        quiz()
    with pytest.raises(TypeError, match=r"made with choice\(...\) or number\(...\), not str"):
        quiz("What is 2 + 2?")
    with pytest.raises(ValueError, match="the answer 'c' is not one of the options"):
        choice("Pick", ["a", "b"], answer="c")
    with pytest.raises(ValueError, match="two options or more"):
        choice("Pick", ["a"], answer="a")
    with pytest.raises(ValueError, match="cannot be negative"):
        number("How many?", answer=3, tolerance=-1)

