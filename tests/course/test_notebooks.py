"""Every notebook executed with papermill in the ci profile; lessons checked with nbval."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO
from lepton_kit.course.runner import CI_BUDGET_SECONDS, find_notebooks, run

pytestmark = pytest.mark.xdist_group("notebooks")
NOTEBOOKS = find_notebooks([REPO / "notebooks", REPO / "source"])
# what each notebook must publish with record(...) in the ci profile, and the least value allowed
CI_TARGETS = {
    "notebooks/01_mlp_from_scratch.ipynb": {"digits_mlp_test_accuracy": 0.90},
    "source/01_mlp/mlp_from_scratch.ipynb": {"digits_mlp_test_accuracy": 0.90},
    "notebooks/02_training_with_autograd.ipynb": {"digits_mlp_test_accuracy": 0.90, "keras_digits_mlp_test_accuracy": 0.90,
                                                  "mnist1d_mlp_test_accuracy": 0.45},
    "source/02_autograd/training_with_autograd.ipynb": {"digits_mlp_test_accuracy": 0.90,
                                                        "keras_digits_mlp_test_accuracy": 0.90},
    "notebooks/03_optimizers.ipynb": {"optimizer_comparison_min_accuracy": 0.85},
    "source/03_optimizers/optimizers.ipynb": {"optimizer_comparison_min_accuracy": 0.85},
    "notebooks/04_generalization.ipynb": {"mnist1d_baseline_test_accuracy": 0.30, "mnist1d_weight_decay_test_accuracy": 0.33,
                                          "mnist1d_dropout_test_accuracy": 0.33, "mnist1d_early_stopping_test_accuracy": 0.25,
                                          "mnist1d_augmentation_test_accuracy": 0.45, "mnist1d_batchnorm_test_accuracy": 0.33},
    "source/04_generalization/generalization.ipynb": {"mnist1d_baseline_test_accuracy": 0.30,
                                                      "mnist1d_augmentation_test_accuracy": 0.45},
    "notebooks/05_convolutional_networks.ipynb": {"mnist1d_cnn_test_accuracy": 0.85, "mnist1d_cnn_shuffled_test_accuracy": 0.45,
                                                  "keras_mnist1d_cnn_test_accuracy": 0.85, "digits_cnn_test_accuracy": 0.95},
    "source/05_cnn/convolutional_networks.ipynb": {"mnist1d_cnn_test_accuracy": 0.85,
                                                   "mnist1d_cnn_shuffled_test_accuracy": 0.45},
}

# metrics that must stay at or below a bound (a hand-written optimizer follows torch.optim)
CI_MAXIMA = {
    "source/03_optimizers/optimizers.ipynb": {f"max_param_diff_vs_torch_{name}": 1e-6 for name in
                                              ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adadelta")},
    "notebooks/03_optimizers.ipynb": {"max_param_diff_vs_torch_adagrad": 1e-6},
}


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run(NOTEBOOKS, out, profile="ci", progress=False)
    assert json.loads((out / "summary.json").read_text()) == result
    return {entry["notebook"]: entry for entry in result["notebooks"]}


def _key(path):
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_key)
def test_notebook_runs_top_to_bottom_in_ci_profile(summary, notebook):
    entry = summary[str(notebook)]
    assert entry["status"] == "ok", entry.get("error")
    for name, least in CI_TARGETS.get(_key(notebook), {}).items():
        assert name in entry["metrics"], f"{_key(notebook)} did not record {name}"
        assert entry["metrics"][name] >= least, f"{name} = {entry['metrics'][name]} < {least}"
    for name, most in CI_MAXIMA.get(_key(notebook), {}).items():
        assert name in entry["metrics"], f"{_key(notebook)} did not record {name}"
        assert entry["metrics"][name] <= most, f"{name} = {entry['metrics'][name]} > {most}"
    if entry["seconds"] > CI_BUDGET_SECONDS:  # reported, not failed: timing depends on the machine's load
        print(f"warning: {_key(notebook)} took {entry['seconds']} s, over the {CI_BUDGET_SECONDS} s ci budget")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_key)
def test_notebook_starts_with_a_parameters_cell(notebook):
    first_code = next(c for c in nbformat.read(notebook, 4).cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert 'profile = "ci"' in first_code.source


def test_every_unit_target_is_checked():
    assert set(CI_TARGETS) | set(CI_MAXIMA) <= {_key(n) for n in NOTEBOOKS}
    assert {_key(n) for n in NOTEBOOKS} <= set(CI_TARGETS), "every notebook must publish a checked metric"


def test_run_reports_a_failing_notebook_without_stopping(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    for path, code in ((bad, "raise ValueError('boom')"), (good, "from lepton_kit import record\nrecord('x', 1)")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('profile = "ci"', metadata={"tags": ["parameters"]}),
                                             nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
    result = run([tmp_path], tmp_path / "out", progress=False)
    by_name = {e["notebook"].rsplit("/", 1)[-1]: e for e in result["notebooks"]}
    assert by_name["bad.ipynb"]["status"] == "failed" and "boom" in by_name["bad.ipynb"]["error"]
    assert by_name["good.ipynb"]["status"] == "ok" and by_name["good.ipynb"]["metrics"] == {"x": 1}


def test_lessons_match_their_stored_outputs_with_nbval():
    lessons = sorted((REPO / "notebooks").glob("*.ipynb"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                             "--nbval", "--nbval-sanitize-with", str(REPO / "tests/course/nbval_sanitize.cfg"),
                             *map(str, lessons)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
