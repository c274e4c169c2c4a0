"""The boundary between checker and kernel: data only, handles for the rest, arrays that keep their identity."""
from __future__ import annotations

import json
import queue
import threading

import numpy as np
import pytest
from math import sqrt

from lepton_kit.grading.checker import check_own_work, pushing
from lepton_kit.grading.wire import Peer, Remote, WireError


def _pair(namespace):
    """A checker-side Peer talking to a kernel-side Peer (serving ``namespace``) through JSON, in a thread."""
    to_kernel, to_checker = queue.Queue(), queue.Queue()

    def through_json(q):
        return lambda message: q.put(json.loads(json.dumps(message, allow_nan=False)))

    kernel = Peer(send=through_json(to_checker), receive=to_kernel.get, lookup=namespace.__getitem__,
                  assign=namespace.__setitem__)
    checker = Peer(send=through_json(to_kernel), receive=to_checker.get, trusted=True)

    def serve():
        while True:
            message = to_kernel.get()
            if message is None:
                return
            kernel.answer(message["q"])

    threading.Thread(target=serve, daemon=True).start()
    return checker, kernel


def test_data_round_trips_and_non_data_becomes_a_handle():
    peer = Peer(send=None, receive=None)
    value = {"a": (1, 2.5, float("inf")), "b": [np.arange(6, dtype=np.int32).reshape(2, 3), np.float32(1.5)],
             "c": b"\x00\xff", "big": 2 ** 70, "s": "caf\u00e9", 3: None}
    back = peer.decode(json.loads(json.dumps(peer.encode(value))))
    assert back["a"] == (1, 2.5, float("inf")) and back[3] is None and back["big"] == 2 ** 70
    assert back["b"][0].dtype == np.int32 and back["b"][0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(back["b"][1]) is np.float32 and back["c"] == b"\x00\xff"
    assert isinstance(peer.decode(peer.encode(object())), Remote)


@pytest.mark.parametrize("data", [
    {"$nd": ["|O", [1], "AA=="]},                      # object arrays: pickles in disguise
    {"$nd": ["<f8", [3], "AAAAAAAAAAA="]},             # bytes that do not match the shape
    {"$nd": ["<f8", [-1], ""]},
    {"$nd": [{"descr": "x"}, [1], ""]},
    {"__reduce__": "os.system"},
    {"$r": 12345},                                     # a handle this side never gave out
    {"$int": "1" * 6000},
])
def test_the_decoder_refuses_what_is_not_plain_data(data):
    with pytest.raises(ValueError):
        Peer(send=None, receive=None).decode(data)


def test_the_decoder_cuts_deep_nesting():
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="too deep"):
        Peer(send=None, receive=None).decode(deep)


def test_calls_return_data_and_built_in_exceptions_keep_their_type():
    def forward(x, w):
        return x @ w

    def picky(task):
        raise ValueError(f"unknown task {task!r}: gone")  # an honest message, whatever its words

    checker, _ = _pair({"forward": forward, "picky": picky})
    fns = checker.request({"op": "get", "names": ["forward", "picky", "missing"]})
    assert set(fns) == {"forward", "picky"}
    out = fns["forward"](np.ones((2, 3)), np.ones((3, 4)))
    assert type(out) is np.ndarray and out.shape == (2, 4) and out[0, 0] == 3.0
    with pytest.raises(ValueError, match="unknown task 'ranking'") as info:
        fns["picky"]("ranking")
    assert isinstance(info.value, WireError) and str(info.value).startswith("unknown task")


def test_arrays_keep_their_identity_across_calls():
    class SGD:
        def __init__(self, params, lr):
            self.params, self.lr = params, lr

        def step(self, grads):
            for p, g in zip(self.params, grads):
                p -= self.lr * g

    checker, _ = _pair({"SGD": SGD})
    remote_sgd = checker.request({"op": "get", "names": ["SGD"]})["SGD"]
    assert isinstance(remote_sgd, type) and "step" in vars(remote_sgd)  # a stand-in class, methods as handles
    params = [np.array([1.0, -2.0]), np.array([[3.0]])]
    first = params[0]
    remote_sgd(params, lr=0.1).step([np.array([0.5, -1.0]), np.array([[2.0]])])  # updated in a later call
    assert first.tolist() == [0.95, -1.9] and params[1].tolist() == [[2.8]]


def test_functions_handed_over_are_called_back():
    def numerical(f, x, eps=1e-5):
        grad = np.zeros_like(x)
        for i in range(x.size):
            old = x[i]
            x[i] = old + eps
            up = f(x)
            x[i] = old - eps
            down = f(x)
            x[i] = old
            grad[i] = (up - down) / (2 * eps)
        return grad

    checker, _ = _pair({"numerical": numerical})
    fn = checker.request({"op": "get", "names": ["numerical"]})["numerical"]
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(fn(lambda v: float(np.sum(v ** 2)), x), 2 * x, rtol=1e-6)
    assert x.tolist() == [1.0, -2.0, 3.0]


def test_a_test_that_rebinds_a_student_name_rebinds_it_in_the_kernel():
    namespace = {"double": lambda x: 2 * x, "twice": lambda x: namespace["double"](namespace["double"](x))}
    checker, _ = _pair(namespace)
    ns = checker.request({"op": "get", "names": ["double", "twice"]})
    seen = []
    ns["__lepton_push__"] = lambda name, value: checker.request(
        {"op": "set", "name": name, "value": checker.encode(value)})
    exec(pushing("_double = double\ndef double(x):\n    seen.append(x)\n    return _double(x)\nout = twice(3)",
                 {"double"}, "<test>"), {**ns, "seen": seen, "out": None})
    assert seen == [3, 6]


def test_check_own_work_reads_a_remote_function():
    def mine(x):
        return x ** 0.5

    def shortcut(x):
        return sqrt(x)

    checker, _ = _pair({"mine": mine, "shortcut": shortcut})
    fns = checker.request({"op": "get", "names": ["mine", "shortcut"]})
    import lepton_kit.checks
    import lepton_kit.grading.checker as module

    module._kit_check_own_work = lepton_kit.checks.check_own_work
    check_own_work(fns["mine"], "math")
    with pytest.raises(AssertionError, match="uses sqrt from math"):
        check_own_work(fns["shortcut"], "math")


def test_the_checker_serves_what_it_handed_over_and_nothing_else():
    """A student's function that got a test's function must not read its globals, code or failing lines."""
    def nosy(f):
        peer = object.__getattribute__(f, "_peer")
        target = {"h": object.__getattribute__(f, "_id")}
        refused = []
        for q in ({"op": "getattr", "target": target, "name": "__globals__"},
                  {"op": "names", "target": target}, {"op": "get", "names": ["expected"]}):
            try:
                peer.request(q)
            except PermissionError as err:
                refused.append(str(err))
        try:
            f(-1.0)
        except ValueError as err:
            refused.append(str(err))
        return refused

    checker, _ = _pair({"nosy": nosy})
    expected = 42.0  # noqa: F841 (what a hidden test would hold)

    def hidden_helper(v):
        if v < 0:
            raise ValueError("negative")  # the line itself must not travel
        return v * expected

    refused = checker.request({"op": "get", "names": ["nosy"]})["nosy"](hidden_helper)
    assert len(refused) == 4 and all("serves the objects it handed over" in r for r in refused[:3])
    assert refused[3] == "negative", refused[3]


def test_a_generator_handed_over_is_usable():
    """Tests hand student functions a random generator: its public methods work from the kernel."""
    def noisy(x, rng):
        return x + rng.normal(0.0, 1.0, size=x.shape)

    checker, _ = _pair({"noisy": noisy})
    out = checker.request({"op": "get", "names": ["noisy"]})["noisy"](np.zeros(3), np.random.default_rng(0))
    np.testing.assert_allclose(out, np.random.default_rng(0).normal(0.0, 1.0, size=3))


# --- by value: torch objects handed to a student's function ------------------------------------------
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lepton_kit.grading import byvalue  # noqa: E402


def _student_epoch(model, optimizer, x, y, seen):
    model.train()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    seen.append(len(x))
    return 0.5


def test_a_model_and_its_optimizer_go_by_value_and_their_state_comes_back():
    checker, _ = _pair({"epoch": _student_epoch})
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    twin = nn.Sequential(nn.Linear(3, 2))
    twin.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    model.eval()
    seen = []
    for _ in range(2):                               # the momentum buffer must survive between calls
        assert Remote.__call__(checker.request({"op": "get", "names": ["epoch"]})["epoch"],
                               model, optimizer, x, y, seen) == 0.5
        _student_epoch(twin, twin_opt := getattr(twin, "opt", None) or torch.optim.SGD(
            twin.parameters(), lr=0.1, momentum=0.9), x, y, [])
        twin.opt = twin_opt
    assert model.training, "the training flag set by the student's code came back"
    assert seen == [5, 5], "a list handed over comes back as the call left it"
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)
    assert optimizer.param_groups[0]["params"][0] is next(model.parameters()), "the checker's objects stay its own"
    assert "momentum_buffer" in optimizer.state[next(model.parameters())]


def test_a_function_handed_over_in_a_torch_assignment_can_be_differentiated_and_arrays_come_back_changed():
    def gradient(f, x):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        f(t).backward()
        x[0] = 99.0                                  # a student's function that changes its input
        return t.grad.numpy()

    checker, _ = _pair({"gradient": gradient})
    checker.functions_by_value = True                # the checker's namespace holds torch
    remote = checker.request({"op": "get", "names": ["gradient"]})["gradient"]
    x = np.array([1.0, -2.0, 3.0])
    g = remote(lambda t: (t ** 2).sum(), x)
    np.testing.assert_allclose(g, [2.0, -4.0, 6.0])
    assert x[0] == 99.0, "the change to the array handed over is seen by the test"


def test_a_model_of_torch_layers_comes_back_rebuilt_and_others_stay_handles():
    class Mine(nn.Module):
        def forward(self, x):
            return x

    torch.manual_seed(1)
    made = nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 2, 3, padding="same"), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16, 2), nn.BCEWithLogitsLoss())
    checker, _ = _pair({"build": lambda: made, "mine": Mine})
    names = checker.request({"op": "get", "names": ["build", "mine"]})
    rebuilt = names["build"]()
    assert isinstance(rebuilt, nn.Sequential) and rebuilt is not made
    assert [type(m).__name__ for m in rebuilt] == [type(m).__name__ for m in made]
    x = torch.randn(4, 8)
    torch.testing.assert_close(rebuilt[:5](x), made[:5](x))
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in made.parameters())
    assert isinstance(names["mine"](), Remote), "a class of the student's own stays in the kernel"


@pytest.mark.parametrize("name", ["os:system", "builtins:eval", "torch.nn.functional:relu",
                                  "torch.nn.modules.linear:Linear.__init__", "collections:OrderedDict"])
def test_the_checker_rebuilds_torch_layers_only(name):
    peer = Peer(send=None, receive=None, trusted=True)
    tree = {**byvalue.describe_module(nn.Linear(2, 2)), "class": name}
    with pytest.raises(ValueError):
        peer.decode({"$m": json.loads(json.dumps(Peer(send=None, receive=None).encode(tree)))})


def test_the_kernel_never_receives_a_model_description_and_keras_settings_name_keras_only():
    tree = Peer(send=None, receive=None).encode(byvalue.describe_module(nn.Linear(2, 2)))
    with pytest.raises(ValueError):
        Peer(send=None, receive=None).decode({"$m": tree})          # the untrusted side
    assert isinstance(Peer(send=None, receive=None, trusted=True).decode({"$m": tree}), nn.Linear)
    with pytest.raises(ValueError, match="only Keras"):
        byvalue._check_keras_config({"loss": {"module": "os", "class_name": "system", "config": {}}})
    byvalue._check_keras_config({"optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {}}})


def test_parameters_a_student_function_freezes_come_back_frozen():
    def freeze(model):
        for p in model[0].parameters():
            p.requires_grad = False

    checker, _ = _pair({"freeze": freeze})
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    checker.request({"op": "get", "names": ["freeze"]})["freeze"](model)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_a_test_ending_in_an_expression_when_the_kernel_holds_none_under_that_name(tmp_path):
    """The checker forgets the names it fetched after a test; one the test itself rebound is not there to forget."""
    import io
    import os

    from lepton_kit.grading.checker import Checker
    from lepton_kit.grading.executor import Channel

    read, write = os.pipe()
    try:
        checker = Checker(Channel(write, 1 << 20), io.StringIO(), [])
        checker.peer, _ = _pair({"__lepton_value__": None, "total": None})
        checker.student = {"__lepton_value__", "total"}
        out = checker.run({"op": "test", "i": 3, "code": "del total\n__lepton_value__ = (1 + 1)\n",
                           "value": "__lepton_value__"})
        assert out == {"ok": True, "value": 2.0}
    finally:
        os.close(read)
        os.close(write)


def test_a_state_dict_returned_without_a_copy_stays_tied_to_the_model():
    """``return model.state_dict()``: the next call that trains the model changes what the first returned."""
    def client(model, lr):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(lr)
        return model.state_dict(), {k: v.clone() for k, v in model.state_dict().items()}

    checker, _ = _pair({"client": client})
    remote = checker.request({"op": "get", "names": ["client"]})["client"]
    model = nn.Linear(2, 1)
    shared, copied = remote(model, 1.0)
    kept = {k: v.clone() for k, v in shared.items()}
    remote(model, 1.0)
    assert not torch.equal(shared["weight"], kept["weight"]), "the state that shares the model's tensors moved"
    assert torch.equal(copied["weight"], kept["weight"]), "the copied state did not"


def test_a_model_of_the_students_own_class_trains_in_the_kernel_and_is_evaluated_here():
    from lepton_kit.train import evaluate

    class Mine(nn.Module):                            # a class of the student's own: it stays in the kernel
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 2)

        def forward(self, x):
            return self.layer(x)

    torch.manual_seed(0)
    namespace = {"model": Mine()}
    checker, _ = _pair(namespace)
    checker.functions_by_value = True                # the tests' namespace holds torch
    model = checker.request({"op": "get", "names": ["model"]})["model"]
    assert isinstance(model, Remote)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    before = evaluate(model, x, y)["accuracy"]         # forward calls across the boundary, the metric here
    history = checker.call({"kit": "lepton_kit.train.fit"}, (model, x, y),
                           {"epochs": 30, "lr": 0.05, "progress": False,
                            "scheduler": lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)})
    assert len(history["loss"]) == 30
    after = evaluate(model, x, y)["accuracy"]
    assert after > max(before, 0.9), (before, after)
    assert evaluate(namespace["model"], x, y)["accuracy"] == after   # it was the kernel's model that trained
    with pytest.raises(ValueError, match="malformed target"):
        checker.call({"kit": "os.system"}, ("true",), {})


def test_a_pickle_naming_a_handle_that_was_never_given_out_is_refused():
    import pickle

    blob, _ = byvalue.pack((np.zeros(2),), {}, handle_of=lambda obj: 7 if type(obj) is np.ndarray else None)
    with pytest.raises(pickle.UnpicklingError):
        byvalue.unpack(blob, handles={1: object()})
    assert byvalue.unpack(blob, handles={7: "the kernel's object"})[0] == ("the kernel's object",)


def test_a_tests_own_module_subclass_goes_by_value():
    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, x):
            self.calls.append(self.training)
            return x

    checker, _ = _pair({"run": lambda m: (isinstance(m, nn.Module), m(torch.zeros(2)).shape[0])})
    probe = Probe().eval()
    assert checker.request({"op": "get", "names": ["run"]})["run"](probe) == (True, 2), "a module there, not a handle"
    assert probe.calls == [False], "the probe handed over alone recorded its call"
