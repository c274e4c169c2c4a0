"""Student-facing checks with friendly messages: shapes, closeness, numerical gradients."""
from __future__ import annotations

import numpy as np


def _as_float_array(value, name):
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{name} should be an array of numbers, got {type(value).__name__}: {err}") from None


def check_shape(actual, expected_shape, name="output"):
    """Assert the shape of an array-like, with a message that says what to look at.

    >>> check_shape(np.zeros((2, 3)), (2, 3))
    """
    shape = np.shape(actual)
    if tuple(shape) != tuple(expected_shape):
        raise AssertionError(f"{name} has shape {tuple(shape)} but should have shape {tuple(expected_shape)}. "
                             "Check which axis you sum or transpose over.")


def check_close(actual, expected, name="output", rtol=1e-5, atol=1e-8):
    """Assert that ``actual`` is finite and close to ``expected`` (type, shape, then values).

    >>> check_close([1.0, 2.0], np.array([1.0, 2.0 + 1e-9]))
    >>> check_close([1.0, 2.0, 4.0], [1.0, 2.0, 3.0], name="y")
    Traceback (most recent call last):
    AssertionError: y is not close to the expected value: largest difference 1 at index (2,) (got 4, expected 3).
    """
    if actual is None:
        raise AssertionError(f"{name} is None: did you forget a `return`?")
    got = _as_float_array(actual, name)
    want = np.asarray(expected, dtype=float)
    check_shape(got, want.shape, name)
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{name} contains nan or inf. Large exponentials overflow: is the computation stable?")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(got - want)), got.shape)) if got.ndim else ()
        raise AssertionError(f"{name} is not close to the expected value: largest difference "
                             f"{np.max(np.abs(got - want)):.3g} at index {worst} "
                             f"(got {got[worst]:.6g}, expected {want[worst]:.6g}).")


def numerical_gradient(f, x, eps=1e-5):
    """Central-difference gradient of a scalar function ``f`` at ``x`` (``x`` is restored).

    >>> numerical_gradient(lambda v: float(np.sum(v ** 2)), np.array([1.0, -2.0])).round(6).tolist()
    [2.0, -4.0]
    """
    x = np.asarray(x, dtype=float)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(f(x))
        flat[i] = old - eps
        minus = float(f(x))
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b) -> float:
    """Largest elementwise relative error ``|a-b| / max(|a|+|b|, 1e-12)``.

    >>> relative_error([1.0], [1.0])
    0.0
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))


def gradient_check(f, x, analytic_grad, eps=1e-5, tol=1e-6, name="gradient"):
    """Compare an analytic gradient with central differences; return the relative error.

    >>> gradient_check(lambda v: float(np.sum(v ** 3)), np.array([1.0, 2.0]), np.array([3.0, 12.0])) < 1e-6
    True
    """
    numeric = numerical_gradient(f, x, eps)
    check_shape(analytic_grad, numeric.shape, name)
    err = relative_error(analytic_grad, numeric)
    if not err <= tol:
        raise AssertionError(f"{name} disagrees with the numerical gradient: relative error {err:.2e} > {tol:.0e}.")
    return err


def check_own_work(func, forbidden, name=None):
    """Fail when ``func`` reaches a function of the ``forbidden`` module(s) instead of doing the exercise itself.

    Looks at every global name the function's code (nested functions and lambdas included) uses, and at
    ``import`` statements inside it: a name bound to an object defined in a forbidden module (the kit's
    own implementation of the exercise, ``torch.optim``, ``sklearn.metrics``) fails with a message.

    >>> from math import sqrt
    >>> def mine(x): return x ** 0.5
    >>> def shortcut(x): return sqrt(x)
    >>> check_own_work(mine, "math")
    >>> check_own_work(shortcut, "math")
    Traceback (most recent call last):
    AssertionError: shortcut uses sqrt from math: write it yourself, this exercise is about how it works
    """
    import types

    forbidden = (forbidden,) if isinstance(forbidden, str) else tuple(forbidden)
    name = name or getattr(func, "__name__", "the function")

    def banned(module):
        return isinstance(module, str) and any(module == f or module.startswith(f + ".") for f in forbidden)

    def codes(code):
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from codes(const)

    scope = {**vars(__import__("builtins")), **getattr(func, "__globals__", {})}
    for code in codes(getattr(func, "__code__", None) or func.__call__.__code__):
        for used in code.co_names:
            if banned(used) or any(banned(".".join(used.split(".")[:i + 1])) for i in range(used.count("."))):
                raise AssertionError(f"{name} imports {used}: write it yourself, this exercise is about how it works")
            value = scope.get(used)
            module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if value is not None and banned(module):
                raise AssertionError(f"{name} uses {used} from {module}: write it yourself, "
                                     "this exercise is about how it works")
