"""Progress bars: shown by default (a student in JupyterLab), off under LEPTON_PROGRESS=0 (our runners)."""
from __future__ import annotations

import numpy as np
import pytest

from lepton_kit.utils import progress_enabled


@pytest.mark.parametrize("value, shown", [("0", False), ("off", False), ("1", True), ("", True)])
def test_the_environment_decides_when_the_caller_does_not(monkeypatch, value, shown):
    monkeypatch.setenv("LEPTON_PROGRESS", value)
    assert progress_enabled() is shown
    assert progress_enabled(True) is True and progress_enabled(False) is False


def test_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("LEPTON_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="LEPTON_PROGRESS='sometimes'"):
        progress_enabled()


@pytest.mark.parametrize("value, shown", [("0", False), (None, True)])
def test_fit_shows_its_bar_unless_told_not_to(monkeypatch, capfd, value, shown):
    import torch

    from lepton_kit.train import fit

    if value is None:
        monkeypatch.delenv("LEPTON_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("LEPTON_PROGRESS", value)
    model = torch.nn.Linear(3, 2)
    x, y = np.random.default_rng(0).random((16, 3)), np.arange(16) % 2
    fit(model, x, y, epochs=2, batch_size=8, seed=0)
    err = capfd.readouterr().err
    assert ("epochs" in err) is shown, err


def test_keras_fit_logs_epochs_unless_told_not_to(monkeypatch, capfd):
    from lepton_kit import keras_train
    from lepton_kit.models import keras_mlp

    x, y = np.random.default_rng(0).random((16, 4)), np.arange(16) % 2
    monkeypatch.setenv("LEPTON_PROGRESS", "0")
    keras_train.fit(keras_mlp(4, (8,), 2), x, y, epochs=2, batch_size=8, seed=0)
    assert "Epoch 2/2" not in capfd.readouterr().out
    keras_train.fit(keras_mlp(4, (8,), 2), x, y, epochs=2, batch_size=8, seed=0, progress=True)
    assert "Epoch 2/2" in capfd.readouterr().out
