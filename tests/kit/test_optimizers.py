"""Unit tests of lepton_kit.optimizers: test functions, paths, parity checks, comparisons, schedules."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit import optimizers as ov  # noqa: E402
from lepton_kit.checks import numerical_gradient  # noqa: E402


class PlainSGD:
    """A hand-written optimizer in the course's interface (class, in-place step(grads))."""

    def __init__(self, params, lr, weight_decay=0.0):
        self.params, self.lr, self.weight_decay = params, lr, weight_decay

    def step(self, grads):
        for p, g in zip(self.params, grads):
            p -= self.lr * (g + self.weight_decay * p)


class HeavyBall:
    def __init__(self, params, lr, momentum=0.9):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.buf = [np.zeros_like(p) for p in params]

    def step(self, grads):
        for p, g, b in zip(self.params, grads, self.buf):
            b *= self.momentum
            b += g
            p -= self.lr * b


class Rebinding(PlainSGD):
    def step(self, grads):
        for p, g in zip(self.params, grads):
            p = p - self.lr * g  # noqa: F841 (the mistake under test: nothing changes)


def sgd_step_function(params, grads, state, lr):
    state["calls"] = state.get("calls", 0) + 1
    for p, g in zip(params, grads):
        p -= lr * g


# --------------------------------------------------------------------------- test functions
@pytest.mark.parametrize("name", list(ov.FUNCTIONS))
def test_analytic_gradients_match_autograd_and_finite_differences(name):
    f = ov.FUNCTIONS[name]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.uniform(f.xlim[0], f.xlim[1]) / 2, rng.uniform(f.ylim[0], f.ylim[1]) / 2
        xy = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
        f(xy[0], xy[1]).backward()
        np.testing.assert_allclose(f.grad(x, y), xy.grad.numpy(), rtol=1e-10, atol=1e-10)
        numeric = numerical_gradient(lambda v: f(v[0], v[1]), np.array([x, y]), eps=1e-6)
        np.testing.assert_allclose(f.grad(x, y), numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(ov.FUNCTIONS))
def test_minima_are_stationary_with_value_zero(name):
    f = ov.FUNCTIONS[name]
    for mx, my in f.minima:
        assert abs(f(mx, my)) < 1e-9
        assert np.max(np.abs(f.grad(mx, my))) < 1e-4
        assert f.xlim[0] < mx < f.xlim[1] and f.ylim[0] < my < f.ylim[1]
    sx, sy = f.start
    assert f(sx, sy) > 0.1, "the default start should not already sit at a minimum"


def test_functions_accept_arrays_and_grad_stacks():
    f = ov.get_function("rosenbrock")
    x, y = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(f(x, y), [1.0, 0.0])
    assert f.grad(x, y).shape == (2, 2)
    with pytest.raises(ValueError, match="unknown test function 'nope'"):
        ov.get_function("nope")


# --------------------------------------------------------------------------- running optimizers
def test_run_path_sgd_by_hand_on_the_quadratic():
    path = ov.run_path("quadratic", (2.0, 1.0), "sgd", steps=2, lr=0.1)
    # grad = (x, 10 y): x -> 0.9 x, y -> 0 y
    np.testing.assert_allclose(path, [[2.0, 1.0], [1.8, 0.0], [1.62, 0.0]], atol=1e-12)
    assert path.dtype == np.float64


def test_run_path_uses_the_default_start():
    path = ov.run_path("beale", None, "adam", steps=3, lr=0.01)
    np.testing.assert_array_equal(path[0], ov.FUNCTIONS["beale"].start)


@pytest.mark.parametrize("optimizer", [PlainSGD, sgd_step_function])
def test_hand_written_sgd_follows_torch_on_both_problems(optimizer):
    for loss, start in (ov.quadratic_problem(), ov.random_problem(seed=3)):
        ours = ov.run_path(loss, start, optimizer, steps=100, lr=0.1)
        ref = ov.run_path(loss, start, torch.optim.SGD, steps=100, lr=0.1)
        assert ours.shape == (101, sum(p.size for p in start))
        assert ov.check_path(ours, ref, "PlainSGD") < 1e-12


def test_heavy_ball_matches_the_momentum_name_and_its_default():
    loss, start = ov.quadratic_problem()
    ours = ov.run_path(loss, start, HeavyBall, lr=0.05)  # momentum 0.9 by default on both sides
    assert ov.max_param_diff(ours, ov.run_path(loss, start, "momentum", lr=0.05)) < 1e-12
    nesterov = ov.run_path(loss, start, "nesterov", lr=0.05)
    assert ov.max_param_diff(ours, nesterov) > 1e-3


def test_make_optimizer_resolves_names_classes_and_rejects_junk():
    p = [torch.zeros(2, requires_grad=True)]
    sgd = ov.make_optimizer("nesterov", p, lr=0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9
    assert ov.make_optimizer("momentum", p, lr=0.1, momentum=0.5).param_groups[0]["momentum"] == 0.5
    assert isinstance(ov.make_optimizer(torch.optim.Adam, p, lr=0.1), torch.optim.Adam)
    assert isinstance(ov.make_optimizer(PlainSGD, p, lr=0.1), ov.NumpyOptimizer)
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        ov.make_optimizer("lion", p, lr=0.1)
    with pytest.raises(TypeError):
        ov.make_optimizer(3.0, p)


def test_numpy_optimizer_trains_a_torch_model_in_place():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    before = model.weight.detach().clone()
    opt = ov.NumpyOptimizer(model.parameters(), PlainSGD, lr=0.5)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    expected = before - 0.5 * model.weight.grad
    opt.step()
    torch.testing.assert_close(model.weight.detach(), expected)
    opt.zero_grad()
    assert model.weight.grad is None
    state_opt = ov.NumpyOptimizer(model.parameters(), sgd_step_function, lr=0.1)
    ((model(x) - y) ** 2).mean().backward()
    state_opt.step()
    assert state_opt.state["calls"] == 1


def test_check_path_messages():
    ref = ov.run_path("quadratic", None, "sgd", steps=10, lr=0.1)
    assert ov.check_path(ref.copy(), ref) == 0.0
    off = ref.copy()
    off[4:, 1] += 1e-3
    with pytest.raises(AssertionError, match=r"at step 4 \(of 10\): parameter #1"):
        ov.check_path(off, ref, "Mine")
    with pytest.raises(AssertionError, match="never changed.*in place"):
        ov.check_path(ov.run_path("quadratic", None, Rebinding, steps=10, lr=0.1), ref)
    bad = ref.copy()
    bad[3, 0] = np.nan
    with pytest.raises(AssertionError, match="nan or inf at step 3"):
        ov.check_path(bad, ref)
    with pytest.raises(AssertionError, match="shape"):
        ov.check_path(ref[:5], ref)
    assert ov.max_param_diff(bad, ref) == float("inf")
    with pytest.raises(ValueError):
        ov.max_param_diff(ref[:5], ref)


def test_problems_are_reproducible():
    (l1, s1), (l2, s2) = ov.random_problem(seed=5), ov.random_problem(seed=5)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(ov.random_problem(seed=6)[1][0], s1[0])
    tensors = [torch.tensor(p) for p in s1]
    assert float(l1(tensors)) == float(l2(tensors))
    loss, start = ov.quadratic_problem()
    assert float(loss([torch.tensor(p) for p in start])) > 1.0


def test_importing_the_modules_stays_light():
    code = ("import sys; import lepton_kit.optimizers, lepton_kit.optimizer_plots; "
            "print(','.join(m for m in ('torch', 'matplotlib', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


# --------------------------------------------------------------------------- real task and schedules
def test_compare_optimizers_same_init_same_batches():
    from lepton_kit.data import load

    data = load("digits")
    settings = {"a": ("sgd", {"lr": 0.1}), "b": (PlainSGD, {"lr": 0.1}),
                "c": ("sgd", {"lr": 0.1}, lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.0))}
    res = ov.compare_optimizers(settings, data, hidden=(8,), epochs=2, batch_size=64)
    assert res["a"]["loss"] == pytest.approx(res["b"]["loss"], rel=1e-5)
    assert res["a"]["accuracy"] == pytest.approx(res["b"]["accuracy"], abs=1 / len(data.y_test))
    # the scheduler sets lr to 0 after the first epoch: epoch 2 trains nothing, unlike "a"
    assert res["c"]["history"]["loss"][0] == pytest.approx(res["a"]["history"]["loss"][0])
    assert res["c"]["history"]["loss"][1] != pytest.approx(res["a"]["history"]["loss"][1])
    table = ov.comparison_table(res).splitlines()
    assert table[0].split()[0] == "optimizer" and len(table) == 4
    assert torch.get_num_threads() >= 1


def test_schedule_values_step_cosine_and_warmup():
    from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR, StepLR

    step = ov.schedule_values(lambda o: StepLR(o, step_size=30, gamma=0.5), steps=100, lr=0.1)
    assert step[29] == pytest.approx(0.1) and step[30] == pytest.approx(0.05) and step[99] == pytest.approx(0.0125)
    cos = ov.schedule_values(lambda o: CosineAnnealingLR(o, T_max=100), steps=100, lr=0.1)
    assert cos[0] == pytest.approx(0.1) and cos[50] == pytest.approx(0.05) and np.all(np.diff(cos) <= 0)
    warm = ov.schedule_values(lambda o: SequentialLR(
        o, [LinearLR(o, start_factor=0.1, total_iters=10), CosineAnnealingLR(o, T_max=90)], milestones=[10]),
        steps=100, lr=0.1)
    assert warm[0] == pytest.approx(0.01) and np.all(np.diff(warm[:11]) > 0) and warm[10] == pytest.approx(0.1)
    lam = ov.schedule_values(lambda o: LambdaLR(o, lambda s: min(1.0, (s + 1) / 10)), steps=20, lr=0.1)
    np.testing.assert_allclose(lam[:10], 0.01 * np.arange(1, 11))
