"""Objects a test hands to a student's function by value: torch modules, optimizers, data loaders, Keras
models, and the functions of an assignment whose instructor code imports torch.

A test such as ``train_one_epoch(model, loader, loss_fn, optimizer)`` builds a model in the checker and
asks the student's function to train it. Handles cannot do that (the student's loop would run the
model in the checker, one remote call per layer, and autograd cannot follow a tensor across the
boundary). So the checker pickles the call's arguments (one pickle: an optimizer keeps pointing at the
model's parameters) and sends them to the kernel, which unpickles them (the pickle comes from the
trusted side), runs the student's function, and sends back, as data only, the *state* of every
object it was handed: parameters, buffers, training flags and plain attributes of each module, the
optimizer's state dict, a generator's state, the arrays, a Keras model's weights and compile settings.
The checker writes that state into its own objects; nothing from the kernel is ever unpickled.

A module the student's code returns (``build_cnn(40)``) crosses as data when it is made of
``torch.nn`` layers only (:func:`describe_module`), and the checker rebuilds it from torch's own classes
(:func:`build_module`): no code of the student's runs in the checker. Any other object stays a handle.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> state = module_state(model)
>>> sorted(state["p"]), state["training"]
(['bias', 'weight'], True)
>>> rebuilt = build_module(describe_module(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())))
>>> type(rebuilt).__name__, type(rebuilt[0]).__name__, tuple(rebuilt(torch.zeros(4, 2)).shape)
('Sequential', 'Linear', (4, 3))
"""
from __future__ import annotations

import sys
import types

import numpy as np

MAX_DEPTH = 8


def _torch():
    return sys.modules.get("torch")


def _keras_model(obj) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def _from_package(obj, packages=("torch", "keras")) -> bool:
    """Whether ``obj``'s class or one of its bases (a test's own ``nn.Module`` subclass) comes from ``packages``."""
    for cls in getattr(type(obj), "__mro__", ()):
        module = getattr(cls, "__module__", "") or ""
        if any(module == p or module.startswith(p + ".") for p in packages):
            return True
    return False


def wanted(args, kwargs, *, functions=False) -> bool:
    """Whether a call goes by value: an argument is a torch or Keras object, or a function and ``functions``
    (the checker's namespace holds torch: the student's code may differentiate through the function)."""
    def visit(obj, depth):
        if depth > MAX_DEPTH:
            return False
        if type(obj) in (list, tuple):
            return any(visit(v, depth + 1) for v in obj)
        if type(obj) is dict:
            return any(visit(v, depth + 1) for v in obj.values())
        if isinstance(obj, np.ndarray):
            return False
        if isinstance(obj, types.FunctionType):
            return functions
        return _from_package(obj)

    return visit(list(args), 0) or visit(dict(kwargs), 0)


def tracked(args, kwargs) -> list:
    """The objects whose state comes back after the call, each once, in a fixed order."""
    torch = _torch()
    found, seen = [], set()

    def add(obj):
        if id(obj) not in seen:
            seen.add(id(obj))
            found.append(obj)

    def visit(obj, depth):
        if depth > MAX_DEPTH or id(obj) in seen:
            return
        if type(obj) in (list, tuple, dict):
            if depth == 1 and type(obj) is not tuple:  # a list or dict argument comes back as the call left it
                add(obj)
            for v in (obj.values() if type(obj) is dict else obj):
                visit(v, depth + 1)
        elif isinstance(obj, np.ndarray) or isinstance(obj, np.random.Generator) or _keras_model(obj):
            add(obj)
        elif torch is not None:
            if isinstance(obj, torch.nn.Module):
                for module in obj.modules():
                    add(module)
            elif isinstance(obj, torch.optim.Optimizer):
                add(obj)
                for group in obj.param_groups:
                    for p in group["params"]:
                        visit(p, depth + 1)
            elif isinstance(obj, torch.Tensor):
                add(obj)
            elif isinstance(obj, torch.Generator):
                add(obj)
            elif isinstance(obj, torch.utils.data.DataLoader):
                for generator in (obj.generator, getattr(obj.sampler, "generator", None)):
                    if generator is not None:
                        add(generator)

    visit(list(args), 0)
    visit(dict(kwargs), 0)
    return found


def pack(args, kwargs, *, handle_of=lambda obj: None) -> tuple[bytes, list]:
    """The checker's side: one pickle of ``(args, kwargs, objects)`` and the objects whose state comes back.

    ``handle_of(obj)``: the kernel's number for an object that lives there (a handle), pickled as that number."""
    import io

    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def persistent_id(self, obj):
            number = handle_of(obj)
            return None if number is None else ("handle", number)

    objects = tracked(args, kwargs)
    buffer = io.BytesIO()
    Pickler(buffer).dump((tuple(args), dict(kwargs), objects))
    return buffer.getvalue(), objects


def unpack(blob: bytes, *, handles=None):
    """The kernel's side: the call's ``(args, kwargs, objects)`` (the pickle comes from the checker);
    ``handles``: this side's objects by number."""
    import io
    import pickle

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            if type(pid) is tuple and len(pid) == 2 and pid[0] == "handle" and pid[1] in (handles or {}):
                return handles[pid[1]]
            raise pickle.UnpicklingError("a handle this side never gave out")

    return Unpickler(io.BytesIO(blob)).load()


def plain(value, depth=0) -> bool:
    """Whether ``value`` is data that :mod:`lepton_kit.grading.wire` sends as data (no handle)."""
    torch = _torch()
    if depth > MAX_DEPTH:
        return False
    if value is None or type(value) in (bool, int, float, str, bytes):
        return True
    if type(value) in (list, tuple):
        return len(value) <= 10_000 and all(plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return len(value) <= 10_000 and all(plain(k, depth + 1) and plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype.kind in "biufc?"
    return torch is not None and type(value) is torch.Tensor


def module_state(module) -> dict:
    """A module's own parameters (and which are frozen), buffers, training flag and plain public attributes
    (children not included)."""
    return {"p": {k: None if v is None else v.detach() for k, v in module._parameters.items()},
            "frozen": sorted(k for k, v in module._parameters.items() if v is not None and not v.requires_grad),
            "b": dict(module._buffers),
            "training": bool(module.training),
            "attrs": {k: v for k, v in vars(module).items()
                      if not k.startswith("_") and k != "training" and plain(v)}}


def state(obj):
    """The kernel's side: what the checker needs to make its copy of ``obj`` look like this one (data only)."""
    torch = _torch()
    if isinstance(obj, np.ndarray):
        return obj
    if type(obj) in (list, dict):
        return obj if plain(obj) else None
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if _keras_model(obj):
        config = obj.get_compile_config() if getattr(obj, "compiled", False) else None
        return {"weights": [np.asarray(w) for w in obj.get_weights()], "compile": config if plain(config) else None}
    if isinstance(obj, torch.nn.Module):
        return module_state(obj)
    if isinstance(obj, torch.optim.Optimizer):
        found = obj.state_dict()
        return found if plain(found) else None
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    return None


def restore(obj, value) -> None:
    """The checker's side: write the state the kernel sent into the checker's own ``obj``."""
    torch = _torch()
    if value is None:
        return
    if isinstance(obj, np.ndarray):
        if isinstance(value, np.ndarray) and value.shape == obj.shape and obj.flags.writeable:
            np.copyto(obj, value, casting="unsafe")
    elif type(obj) is list and type(value) is list:
        obj[:] = value
    elif type(obj) is dict and type(value) is dict:
        obj.clear()
        obj.update(value)
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = value
    elif _keras_model(obj):
        obj.set_weights(value["weights"])
        if value.get("compile"):
            _check_keras_config(value["compile"])
            obj.compile_from_config(value["compile"])
    elif isinstance(obj, torch.nn.Module):
        _restore_module(torch, obj, value, public_only=True)
    elif isinstance(obj, torch.optim.Optimizer):
        obj.load_state_dict(value)
    elif isinstance(obj, torch.Generator):
        obj.set_state(torch.as_tensor(np.asarray(value), dtype=torch.uint8))
    elif isinstance(obj, torch.Tensor):
        with torch.no_grad():
            obj.copy_(torch.as_tensor(np.asarray(value)).reshape(obj.shape))


def _restore_module(torch, module, value, public_only):
    with torch.no_grad():
        for table, wrap in (("p", torch.nn.Parameter), ("b", lambda t: t)):
            store = module._parameters if table == "p" else module._buffers
            for name, data in value.get(table, {}).items():
                if data is None:
                    store[str(name)] = None
                    continue
                tensor = torch.as_tensor(np.asarray(data))
                current = store.get(name)
                if current is not None and current.shape == tensor.shape:
                    current.copy_(tensor)
                else:
                    store[str(name)] = wrap(tensor)
    frozen = value.get("frozen", [])
    for name, p in module._parameters.items():
        if p is not None and type(frozen) is list:
            p.requires_grad_(name not in frozen)
    module.training = bool(value.get("training", module.training))
    for name, data in value.get("attrs", {}).items():
        if type(name) is str and (not public_only or not name.startswith("_")) and not name.startswith("__") \
                and name not in ("training", "_parameters", "_buffers", "_modules"):
            module.__dict__[name] = data


def _check_keras_config(config, depth=0):
    """Compile settings name Keras's own classes only (``module`` keras.*), never a module to import."""
    if depth > MAX_DEPTH:
        raise ValueError("Keras compile settings nested too deep")
    if type(config) is dict:
        module = config.get("module")
        if module is not None and not (module == "keras" or str(module).startswith("keras.")):
            raise ValueError(f"the model's compile settings name {module!r}: only Keras's own classes come back")
        for v in config.values():
            _check_keras_config(v, depth + 1)
    elif type(config) in (list, tuple):
        for v in config:
            _check_keras_config(v, depth + 1)


def describe_module(module, depth=0):
    """A module made of ``torch.nn`` layers only, as data (its class path, attributes, tensors, children); None otherwise."""
    torch = _torch()
    cls = type(module)
    if depth > 32 or torch is None or not isinstance(module, torch.nn.Module) or not _torch_layer(cls):
        return None
    children = []
    for name, child in module._modules.items():
        if child is None:
            continue
        tree = describe_module(child, depth + 1)
        if tree is None:
            return None
        children.append([name, tree])
    own = module_state(module)
    own["attrs"] = {k: v for k, v in vars(module).items()
                    if k not in ("training", "_parameters", "_buffers", "_modules") and not k.startswith("__")
                    and plain(v)}
    return {"class": f"{cls.__module__}:{cls.__qualname__}", **own, "children": children}


def _torch_layer(cls) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module.startswith("torch.nn.") and "." not in cls.__qualname__


def build_module(tree, depth=0):
    """The checker's side of :func:`describe_module`: the same layers, built from torch's own classes."""
    import importlib

    torch = _torch()
    if depth > 32 or type(tree) is not dict or type(tree.get("class")) is not str or ":" not in tree["class"]:
        raise ValueError("not a module description")
    module_name, _, qualname = tree["class"].partition(":")
    if not module_name.startswith("torch.nn.") or not qualname.isidentifier():
        raise ValueError(f"{tree['class']} is not a torch.nn layer")
    cls = getattr(importlib.import_module(module_name), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and _torch_layer(cls)):
        raise ValueError(f"{tree['class']} is not a torch.nn layer")
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    _restore_module(torch, module, tree, public_only=False)
    for name, child in tree.get("children", []):
        module._modules[str(name)] = build_module(child, depth + 1)
    return module


class Alias:
    """A tensor the student's function returned that *is* a parameter or buffer of an object it was handed
    (``model.state_dict()`` without a copy): the checker answers with a view of its own tensor, so a later
    call that trains the model changes it too, as it would in one process."""

    __slots__ = ("index", "table", "name")

    def __init__(self, index, table, name):
        self.index, self.table, self.name = index, table, name


def mark_aliases(value, objects):
    """The kernel's side: ``value`` with every tensor that shares its storage with a parameter or buffer of
    ``objects`` replaced by an :class:`Alias` (a state dict comes back as a plain dict)."""
    torch = _torch()
    if torch is None:
        return value
    owners = {}
    for index, obj in enumerate(objects):
        if isinstance(obj, torch.nn.Module):
            for table, store in (("p", obj._parameters), ("b", obj._buffers)):
                for name, t in store.items():
                    if t is not None and t.numel():
                        owners.setdefault((t.data_ptr(), tuple(t.shape), t.dtype), Alias(index, table, name))

    def mark(v, depth):
        if depth > MAX_DEPTH:
            return v
        if isinstance(v, torch.Tensor):
            return owners.get((v.data_ptr(), tuple(v.shape), v.dtype), v) if v.numel() else v
        if type(v) in (list, tuple):
            return type(v)(mark(item, depth + 1) for item in v)
        if isinstance(v, dict) and type(v).__module__ in ("builtins", "collections"):
            return {k: mark(item, depth + 1) for k, item in v.items()}
        return v

    return mark(value, 0) if owners else value


def aliased(objects, index, table, name):
    """The checker's side of :class:`Alias`: a view of its own parameter or buffer."""
    torch = _torch()
    obj = objects[index] if type(index) is int and 0 <= index < len(objects) else None
    if not isinstance(obj, torch.nn.Module) or table not in ("p", "b"):
        raise ValueError("an alias to nothing that was handed over")
    tensor = (obj._parameters if table == "p" else obj._buffers).get(name)
    if tensor is None:
        raise ValueError(f"an alias to a tensor {name!r} that the object does not have")
    return tensor.detach()
