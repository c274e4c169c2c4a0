"""Optimizers up close: 2-D test functions, optimizer paths, torch.optim parity checks, comparisons.

- ``FUNCTIONS``: 2-D test functions (a quadratic bowl, Rosenbrock, Beale, Himmelblau) with their
  analytic gradients, written with plain arithmetic so that they accept floats, NumPy arrays and
  torch tensors alike.
- ``run_path``: optimise a function from a start point with a ``torch.optim`` optimizer (by name or
  class) or with a hand-written NumPy optimizer, and return the path of the parameters.
- ``check_path`` / ``max_param_diff``: compare a hand-written optimizer's path with torch.optim's.
- ``NumpyOptimizer``: lets a NumPy optimizer (``step(grads)`` on a list of arrays) train a torch model.
- ``compare_optimizers``, ``comparison_table``: the same MLP, same init, trained with several optimizers.
- ``schedule_values``: what a ``torch.optim.lr_scheduler`` does to the learning rate.

Their plots and the interactive explorer are in :mod:`lepton_kit.optimizer_plots`. Importing this
module is cheap: torch is imported inside the functions.

A hand-written optimizer is a class built as ``Opt(params, **hyper)`` (``params`` a list of float
arrays it updates **in place**) whose ``step(grads)`` takes the list of gradients, in the same
order; or a step function ``step(params, grads, state, **hyper)`` with a dict ``state`` kept between
calls.

>>> path = run_path("quadratic", (-4.0, 2.0), "sgd", steps=50, lr=0.1)
>>> path.shape, bool(FUNCTIONS["quadratic"](*path[-1]) < 1e-2)
((51, 2), True)
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import numpy as np


# --------------------------------------------------------------------------- 2-D test functions
@dataclass(frozen=True)
class Function2D:
    """A 2-D test function: ``f(x, y)``, its gradient, minima, a start point and a plotting window."""

    name: str
    value: object       # f(x, y) -> value; plain arithmetic, so floats, arrays and tensors all work
    gradient: object    # (x, y) -> (df/dx, df/dy)
    minima: tuple       # ((x*, y*), ...)
    start: tuple        # a start point that shows the function's difficulty
    xlim: tuple
    ylim: tuple
    log_levels: bool    # contour levels spaced logarithmically (for steep valleys)
    description: str

    def __call__(self, x, y):
        return self.value(x, y)

    def grad(self, x, y) -> np.ndarray:
        """Analytic gradient ``[df/dx, df/dy]`` (stacked on the first axis for array inputs).

        >>> FUNCTIONS["rosenbrock"].grad(0.0, 0.0).tolist()
        [-2.0, 0.0]
        """
        gx, gy = self.gradient(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        return np.stack([np.asarray(gx, dtype=float), np.asarray(gy, dtype=float)])


def _quadratic(x, y):
    return 0.5 * x ** 2 + 5.0 * y ** 2


def _quadratic_grad(x, y):
    return x, 10.0 * y


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100.0 * (y - x ** 2) ** 2


def _rosenbrock_grad(x, y):
    return -2.0 * (1 - x) - 400.0 * x * (y - x ** 2), 200.0 * (y - x ** 2)


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def _beale_grad(x, y):
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y ** 2, 2.625 - x + x * y ** 3
    gx = 2 * a * (y - 1) + 2 * b * (y ** 2 - 1) + 2 * c * (y ** 3 - 1)
    gy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y ** 2
    return gx, gy


def _himmelblau(x, y):
    return (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2


def _himmelblau_grad(x, y):
    a, b = x ** 2 + y - 11, x + y ** 2 - 7
    return 4 * a * x + 2 * b, 2 * a + 4 * b * y


FUNCTIONS = {
    "quadratic": Function2D(
        "quadratic", _quadratic, _quadratic_grad, ((0.0, 0.0),), (-4.5, 1.5), (-5.0, 5.0), (-2.5, 2.5), False,
        "an elongated bowl 0.5 x^2 + 5 y^2: curvature 1 along x and 10 along y (condition number 10)"),
    "rosenbrock": Function2D(
        "rosenbrock", _rosenbrock, _rosenbrock_grad, ((1.0, 1.0),), (-1.2, 1.0), (-2.0, 2.0), (-1.0, 3.0), True,
        "Rosenbrock's banana (1 - x)^2 + 100 (y - x^2)^2: a narrow curved valley, minimum 0 at (1, 1)"),
    "beale": Function2D(
        "beale", _beale, _beale_grad, ((3.0, 0.5),), (1.0, 1.4), (-4.5, 4.5), (-4.5, 4.5), True,
        "Beale's function: flat plateaus and steep walls, minimum 0 at (3, 0.5)"),
    "himmelblau": Function2D(
        "himmelblau", _himmelblau, _himmelblau_grad,
        ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        (-0.5, -0.5), (-5.0, 5.0), (-5.0, 5.0), True,
        "Himmelblau's function (x^2 + y - 11)^2 + (x + y^2 - 7)^2: four minima of value 0"),
}


def get_function(function) -> Function2D:
    """A :class:`Function2D` from its name (``"rosenbrock"``) or itself.

    >>> get_function("beale").minima
    ((3.0, 0.5),)
    """
    if isinstance(function, Function2D):
        return function
    try:
        return FUNCTIONS[function]
    except (KeyError, TypeError):
        raise ValueError(f"unknown test function {function!r}; available: {', '.join(FUNCTIONS)}") from None


# --------------------------------------------------------------------------- problems on lists of arrays
def quadratic_problem():
    """A fixed convex quadratic over two parameter arrays, ``W`` (2, 2) and ``b`` (3,).

    ``loss(params) = 0.5 * sum(curvature * (p - target)**2)`` summed over both arrays, with
    curvatures from 0.5 to 4 (so some coordinates are 8 times steeper than others). Returns
    ``(loss, start)``: ``loss`` takes a list of torch tensors, ``start`` is a list of NumPy arrays.

    >>> loss, start = quadratic_problem()
    >>> [p.shape for p in start]
    [(2, 2), (3,)]
    """
    curv = [np.array([[4.0, 1.0], [0.5, 2.0]]), np.array([3.0, 0.75, 1.5])]
    target = [np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([-1.0, 2.0, 0.0])]
    start = [np.array([[-1.5, 1.0], [2.5, 0.0]]), np.array([1.0, -1.0, 2.0])]

    def loss(params):
        import torch

        return sum(0.5 * (torch.as_tensor(c) * (p - torch.as_tensor(t)) ** 2).sum()
                   for p, c, t in zip(params, curv, target))

    return loss, start


def random_problem(seed=0, n=40, d=5, classes=3):
    """A small softmax regression on random (synthetic) data drawn from ``seed``: parameters
    ``W`` (d, classes) and ``b`` (classes,), mean cross-entropy loss. Not convex in a trivial way:
    gradients change direction and size along the path, as in real training.

    >>> loss, start = random_problem(seed=1)
    >>> [p.shape for p in start]
    [(5, 3), (3,)]
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.integers(0, classes, size=n)
    start = [rng.normal(scale=0.5, size=(d, classes)), rng.normal(scale=0.5, size=classes)]

    def loss(params):
        import torch

        w, b = params
        return torch.nn.functional.cross_entropy(torch.as_tensor(x) @ w + b, torch.as_tensor(y))

    return loss, start


# --------------------------------------------------------------------------- running optimizers
# name -> (torch.optim class name, fixed options, default options)
TORCH_OPTIMIZERS = {
    "sgd": ("SGD", {}, {}),
    "momentum": ("SGD", {}, {"momentum": 0.9}),
    "nesterov": ("SGD", {"nesterov": True}, {"momentum": 0.9}),
    "rmsprop": ("RMSprop", {}, {}),
    "adam": ("Adam", {}, {}),
    "adadelta": ("Adadelta", {}, {}),
    "adagrad": ("Adagrad", {}, {}),
}


class NumpyOptimizer:
    """Drive a hand-written NumPy optimizer from torch parameters, like a ``torch.optim`` optimizer.

    The optimizer sees NumPy *views* of the (CPU) tensors, so its in-place updates change the model;
    ``step()`` hands it copies of the gradients. ``optimizer`` is a class ``Opt(params, **hyper)``
    with ``step(grads)``, or a function ``step(params, grads, state, **hyper)``.

    >>> import torch
    >>> class PlainSGD:
    ...     def __init__(self, params, lr):
    ...         self.params, self.lr = params, lr
    ...     def step(self, grads):
    ...         for p, g in zip(self.params, grads):
    ...             p -= self.lr * g
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = NumpyOptimizer([w], PlainSGD, lr=0.5)
    >>> (w ** 2).sum().backward(); opt.step()
    >>> w.tolist()
    [0.0, 0.0]
    """

    def __init__(self, params, optimizer, **hyper):
        self.params = list(params)
        for p in self.params:
            if p.device.type != "cpu":
                raise ValueError("NumpyOptimizer works on CPU tensors only (NumPy cannot see GPU memory)")
        self.arrays = [p.detach().numpy() for p in self.params]
        if inspect.isclass(optimizer):
            self.optimizer = optimizer(self.arrays, **hyper)
            if not callable(getattr(self.optimizer, "step", None)):
                raise TypeError(f"{optimizer.__name__} has no step(grads) method")
            self._step = self.optimizer.step
        elif callable(optimizer):
            self.optimizer, self.state = optimizer, {}
            self._step = lambda grads: optimizer(self.arrays, grads, self.state, **hyper)
        else:
            raise TypeError(f"expected an optimizer class or step function, got {type(optimizer).__name__}")

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step(self):
        grads = [np.zeros_like(a) if p.grad is None else p.grad.detach().numpy().copy()
                 for p, a in zip(self.params, self.arrays)]
        self._step(grads)


def make_optimizer(optimizer, params, **hyper):
    """An optimizer over torch ``params``: a name of ``TORCH_OPTIMIZERS``, a ``torch.optim`` class,
    or a hand-written NumPy optimizer (class or step function, wrapped in :class:`NumpyOptimizer`).

    >>> import torch
    >>> type(make_optimizer("nesterov", [torch.zeros(2, requires_grad=True)], lr=0.1)).__name__
    'SGD'
    """
    import torch

    params = list(params)
    if isinstance(optimizer, str):
        if optimizer not in TORCH_OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; available: {', '.join(TORCH_OPTIMIZERS)}")
        cls_name, fixed, defaults = TORCH_OPTIMIZERS[optimizer]
        return getattr(torch.optim, cls_name)(params, **{**defaults, **hyper, **fixed})
    if inspect.isclass(optimizer) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, **hyper)
    return NumpyOptimizer(params, optimizer, **hyper)


def _problem(func, start):
    """(loss on a list of tensors, list of float64 start arrays) for a 2-D function or a loss."""
    if isinstance(func, (str, Function2D)):
        f = get_function(func)
        xy = np.array(f.start if start is None else start, dtype=np.float64).reshape(2)
        return (lambda params: f(params[0][0], params[0][1])), [xy]
    if not callable(func):
        raise TypeError(f"func must be a test function (name or Function2D) or a loss, got {type(func).__name__}")
    if start is None:
        raise ValueError("give a start point: a list of arrays, one per parameter")
    if isinstance(start, np.ndarray) or not isinstance(start, (list, tuple)):
        start = [start]
    return func, [np.array(p, dtype=np.float64) for p in start]


def run_path(func, start, optimizer, steps=100, **hyper) -> np.ndarray:
    """Optimise ``func`` from ``start`` for ``steps`` steps in float64; return the path.

    ``func`` is a 2-D test function (name or :class:`Function2D`; ``start`` is ``(x, y)`` or None
    for its default start) or a loss taking a list of torch tensors (``start`` a list of arrays).
    ``optimizer`` is anything :func:`make_optimizer` accepts; ``hyper`` are its options.
    The gradients come from torch autograd, so every optimizer sees exactly the same gradients.
    Returns an array ``(steps + 1, n)``: row ``k`` holds all parameters (flattened and concatenated)
    after ``k`` steps; row 0 is the start.

    >>> p = run_path("quadratic", (1.0, 0.0), "sgd", steps=1, lr=0.1)
    >>> p.round(6).tolist()
    [[1.0, 0.0], [0.9, 0.0]]
    """
    import torch

    loss_fn, start_arrays = _problem(func, start)
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in start_arrays]
    opt = make_optimizer(optimizer, tensors, **hyper)

    def flat():
        return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors]).copy()

    path = [flat()]
    for _ in range(int(steps)):
        opt.zero_grad()
        loss = loss_fn(tensors)
        loss.backward()
        opt.step()
        path.append(flat())
    return np.stack(path)


def path_losses(func, path) -> np.ndarray:
    """The value of a 2-D test function at every point of a path ``(steps + 1, 2)``.

    >>> path_losses("quadratic", np.array([[2.0, 0.0], [0.0, 1.0]])).tolist()
    [2.0, 5.0]
    """
    f, path = get_function(func), np.asarray(path, dtype=float)
    with np.errstate(all="ignore"):
        return np.asarray(f(path[:, 0], path[:, 1]), dtype=float)


def max_param_diff(path, reference) -> float:
    """Largest absolute difference between two paths of the same shape (inf if not finite).

    >>> max_param_diff([[0.0, 1.0], [1.0, 2.0]], [[0.0, 1.0], [1.0, 2.5]])
    0.5
    """
    a, b = np.asarray(path, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paths of shapes {a.shape} and {b.shape} cannot be compared")
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    return float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")


def check_path(path, reference, name="your optimizer", atol=1e-6) -> float:
    """Assert that a path follows a reference path (torch.optim's) within ``atol`` at every step.

    On failure the message says at which step the paths part and where each one is. Returns the
    largest difference.

    >>> check_path([[1.0, 1.0], [0.9, 0.0]], [[1.0, 1.0], [0.9, 0.0]])
    0.0
    """
    got, want = np.asarray(path, dtype=float), np.asarray(reference, dtype=float)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: path of shape {got.shape}, expected {want.shape}")
    bad = ~np.all(np.isfinite(got), axis=1)
    if bad.any():
        k = int(np.argmax(bad))
        raise AssertionError(f"{name}: the parameters became nan or inf at step {k}. "
                             "Look for a division by zero or an exponent that grows without bound.")
    moved_ref = np.any(want[1:] != want[0])
    if moved_ref and np.all(got[1:] == got[0]):
        raise AssertionError(f"{name}: the parameters never changed. Update the arrays in place "
                             "(p -= ..., or p[...] = ...): `p = p - ...` only rebinds a local name.")
    step_diff = np.max(np.abs(got - want), axis=1)
    if np.any(step_diff > atol):
        k = int(np.argmax(step_diff > atol))
        i = int(np.argmax(np.abs(got[k] - want[k])))
        raise AssertionError(
            f"{name} leaves torch.optim's path at step {k} (of {len(got) - 1}): parameter #{i} is "
            f"{got[k, i]:.8g} but torch.optim has {want[k, i]:.8g} (largest difference over the whole "
            f"path {np.max(step_diff):.3g}, allowed {atol:g}). Step {k} is the first update to check by hand.")
    return float(np.max(step_diff))


# --------------------------------------------------------------------------- one real task
def compare_optimizers(settings, data, hidden=(64,), epochs=10, batch_size=32, seed=0):
    """Train the same MLP (same initial weights, same batches, same epochs) once per optimizer.

    ``settings`` maps a label to ``(optimizer, hyper)`` or ``(optimizer, hyper, make_scheduler)``:
    ``optimizer`` is anything :func:`make_optimizer` accepts, ``hyper`` its options, and
    ``make_scheduler(opt)`` an optional ``torch.optim.lr_scheduler`` stepped once per epoch.
    ``data`` is a :class:`lepton_kit.data.Dataset`. Runs on the CPU with one thread (faster for a
    small MLP, and hand-written NumPy optimizers update CPU memory). Returns ``{label: {"loss":
    final train loss, "accuracy": test accuracy, "history": per-epoch history}}``.

    >>> from lepton_kit.data import load
    >>> res = compare_optimizers({"sgd": ("sgd", {"lr": 0.1})}, load("digits"), hidden=(8,), epochs=1)
    >>> sorted(res["sgd"])
    ['accuracy', 'history', 'loss']
    """
    import torch

    from lepton_kit.models import torch_mlp
    from lepton_kit.train import evaluate, fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        template = torch_mlp(data.x_train.shape[1], tuple(hidden), data.num_classes)
        results = {}
        for label, spec in settings.items():
            optimizer, hyper, make_scheduler = (tuple(spec) + (None,))[:3]
            model = copy.deepcopy(template)
            opt = make_optimizer(optimizer, model.parameters(), **hyper)
            history = fit(model, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, optimizer=opt,
                          scheduler=make_scheduler, progress=False, seed=seed)
            accuracy = evaluate(model, data.x_test, data.y_test)["accuracy"]
            results[label] = {"loss": history["loss"][-1], "accuracy": accuracy, "history": history}
    finally:
        torch.set_num_threads(threads)
    return results


def comparison_table(results) -> str:
    """A plain-text table of :func:`compare_optimizers` results (3 decimals), one row per optimizer.

    >>> print(comparison_table({"sgd": {"loss": 0.12345, "accuracy": 0.9}}))
    optimizer   final train loss   test accuracy
    sgd                    0.123           0.900
    """
    width = max([len("optimizer")] + [len(k) for k in results]) + 3
    lines = [f"{'optimizer':<{width}}final train loss   test accuracy"]
    for label, r in results.items():
        lines.append(f"{label:<{width}}{r['loss']:>16.3f}{r['accuracy']:>16.3f}")
    return "\n".join(lines)



# --------------------------------------------------------------------------- learning-rate schedules
def schedule_values(make_scheduler, steps=100, lr=0.1) -> np.ndarray:
    """The learning rate a ``torch.optim.lr_scheduler`` gives at each of ``steps`` steps.

    ``make_scheduler(optimizer)`` builds the scheduler for an SGD optimizer with base rate ``lr``;
    the value at index k is the rate used by the k-th ``optimizer.step()``.

    >>> from torch.optim.lr_scheduler import StepLR
    >>> schedule_values(lambda opt: StepLR(opt, step_size=2, gamma=0.5), steps=5, lr=1.0).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    import torch

    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    values = []
    for _ in range(int(steps)):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.asarray(values, dtype=float)
