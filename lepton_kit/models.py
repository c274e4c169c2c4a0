"""Reference models built the same way in PyTorch and Keras (same layers, sizes and order).

>>> net = mlp(64, hidden=(32,), num_classes=10, framework="torch")
>>> count_parameters(net)
2410
"""
from __future__ import annotations

FRAMEWORKS = ("torch", "keras")


def torch_mlp(input_dim, hidden=(64,), num_classes=10, dropout=0.0):
    """``Linear -> ReLU (-> Dropout)`` for each hidden size, then a ``Linear`` to the logits."""
    from torch import nn

    layers, width = [nn.Flatten()], input_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def keras_mlp(input_dim, hidden=(64,), num_classes=10, dropout=0.0):
    """The same MLP as :func:`torch_mlp` in Keras; outputs logits (use ``from_logits=True``)."""
    import keras

    layers = [keras.Input(shape=(input_dim,) if isinstance(input_dim, int) else tuple(input_dim)),
              keras.layers.Flatten()]
    for size in hidden:
        layers.append(keras.layers.Dense(size, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers, name="mlp")


def mlp(input_dim, hidden=(64,), num_classes=10, dropout=0.0, framework="torch"):
    """An MLP in the chosen framework (``"torch"`` or ``"keras"``)."""
    builders = {"torch": torch_mlp, "keras": keras_mlp}
    if framework not in builders:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return builders[framework](input_dim, hidden, num_classes, dropout)


def count_parameters(model) -> int:
    """Number of trainable parameters of a torch module or a Keras model."""
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def copy_torch_to_keras(torch_model, keras_model):
    """Copy the weights of a torch MLP into the Keras MLP of the same shape (for parity tests)."""
    import torch

    linears = [m for m in torch_model.modules() if isinstance(m, torch.nn.Linear)]
    denses = [layer for layer in keras_model.layers if layer.weights]
    if len(linears) != len(denses):
        raise ValueError(f"torch model has {len(linears)} linear layers, Keras model {len(denses)}")
    for lin, dense in zip(linears, denses):
        dense.set_weights([lin.weight.detach().cpu().numpy().T, lin.bias.detach().cpu().numpy()])
    return keras_model
