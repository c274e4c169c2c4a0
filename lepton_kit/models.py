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

    return nn.Sequential(nn.Flatten(), *_torch_dense_head(input_dim, hidden, num_classes, dropout))


def _torch_dense_head(width, hidden, num_classes, dropout):
    """``Linear -> ReLU (-> Dropout)`` per hidden size, then the ``Linear`` to the logits."""
    from torch import nn

    layers = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return layers + [nn.Linear(width, num_classes)]


def keras_mlp(input_dim, hidden=(64,), num_classes=10, dropout=0.0):
    """The same MLP as :func:`torch_mlp` in Keras; outputs logits (use ``from_logits=True``)."""
    import keras

    layers = [keras.Input(shape=(input_dim,) if isinstance(input_dim, int) else tuple(input_dim)),
              keras.layers.Flatten()]
    return keras.Sequential(layers + _keras_dense_head(hidden, num_classes, dropout), name="mlp")


def _keras_dense_head(hidden, num_classes, dropout):
    """``Dense(relu) (-> Dropout)`` per hidden size, then the ``Dense`` to the logits (as :func:`_torch_dense_head`)."""
    import keras

    layers = []
    for size in hidden:
        layers.append(keras.layers.Dense(size, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return layers + [keras.layers.Dense(num_classes)]


def _builder(framework, torch_builder, keras_builder):
    """The builder of ``framework``: ``"torch"`` or ``"keras"``."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return torch_builder if framework == "torch" else keras_builder


def mlp(input_dim, hidden=(64,), num_classes=10, dropout=0.0, framework="torch"):
    """An MLP in the chosen framework (``"torch"`` or ``"keras"``)."""
    return _builder(framework, torch_mlp, keras_mlp)(input_dim, hidden, num_classes, dropout)


def count_parameters(model) -> int:
    """Number of trainable parameters of a torch module or a Keras model."""
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Convolutional and recurrent reference models (unit 05, used again by later units).
#
# Layouts: torch is channels-first, Keras channels-last.
#   cnn1d  torch (N, L) or (N, C, L)     Keras (N, L) or (N, L, C)
#   cnn2d  torch (N, C, H, W)            Keras (N, H, W, C)
#   gru    both (N, T) or (N, T, F) (batch first), or (N, T) integer tokens with vocab_size
# The Keras models put a ``Permute`` before ``Flatten`` so that the flattened features come in
# torch's (channel, position) order: the same weights then give the same outputs (see
# ``copy_torch_weights_to_keras``).
# ---------------------------------------------------------------------------------------------

def _per_layer(value, n, name):
    """``value`` repeated for ``n`` layers, or checked to have one entry per layer."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"{name} needs one entry per conv layer ({n}), got {values}")
    return values


def conv_output_length(length, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of a convolution or pooling along one axis (torch's formula, floor).

    >>> conv_output_length(40, 5, stride=2, padding=1)
    19
    """
    return (length + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _cnn1d_plan(input_length, channels, kernel_size, stride, padding):
    n = len(channels)
    kernels = _per_layer(kernel_size, n, "kernel_size")
    strides = _per_layer(stride, n, "stride")
    paddings = tuple(k // 2 for k in kernels) if padding is None else _per_layer(padding, n, "padding")
    length = input_length
    for k, s, p in zip(kernels, strides, paddings):
        length = conv_output_length(length, k, s, p)
        if length < 1:
            raise ValueError(f"the signal of length {input_length} is too short for these conv layers")
    return kernels, strides, paddings, length


def torch_cnn1d(input_length=40, channels=(25, 25, 25), kernel_size=5, stride=1, padding=None,
                num_classes=10, in_channels=1, head="flatten"):
    """``Conv1d -> ReLU`` per entry of ``channels``, then a linear head on the flattened features
    (``head="flatten"``) or on their global average (``head="global_avg"``).

    ``padding=None`` pads ``kernel_size // 2`` on both sides. Input ``(N, L)`` when ``in_channels=1``,
    else ``(N, C, L)``.
    """
    from torch import nn

    kernels, strides, paddings, length = _cnn1d_plan(input_length, channels, kernel_size, stride, padding)
    layers, width = [], in_channels
    if in_channels == 1:
        layers.append(nn.Unflatten(1, (1, input_length)))
    for size, k, s, p in zip(channels, kernels, strides, paddings):
        layers += [nn.Conv1d(width, size, k, stride=s, padding=p), nn.ReLU()]
        width = size
    if head == "flatten":
        layers += [nn.Flatten(), nn.Linear(width * length, num_classes)]
    elif head == "global_avg":
        layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    else:
        raise ValueError(f"head must be 'flatten' or 'global_avg', got {head!r}")
    return nn.Sequential(*layers)


def keras_cnn1d(input_length=40, channels=(25, 25, 25), kernel_size=5, stride=1, padding=None,
                num_classes=10, in_channels=1, head="flatten"):
    """The same 1-D CNN as :func:`torch_cnn1d` in Keras (channels-last); outputs logits.

    Explicit ``ZeroPadding1D`` + ``padding="valid"`` pads exactly like torch (Keras' ``"same"``
    pads unevenly when the stride is above 1).
    """
    import keras

    kernels, strides, paddings, length = _cnn1d_plan(input_length, channels, kernel_size, stride, padding)
    layers = [keras.Input(shape=(input_length,) if in_channels == 1 else (input_length, in_channels))]
    if in_channels == 1:
        layers.append(keras.layers.Reshape((input_length, 1)))
    for size, k, s, p in zip(channels, kernels, strides, paddings):
        if p:
            layers.append(keras.layers.ZeroPadding1D(p))
        layers.append(keras.layers.Conv1D(size, k, strides=s, padding="valid", activation="relu"))
    if head == "flatten":
        layers += [keras.layers.Permute((2, 1)), keras.layers.Flatten()]   # (C, L) order, as torch
    elif head == "global_avg":
        layers.append(keras.layers.GlobalAveragePooling1D())
    else:
        raise ValueError(f"head must be 'flatten' or 'global_avg', got {head!r}")
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers, name="cnn1d")


def cnn1d(input_length=40, channels=(25, 25, 25), kernel_size=5, stride=1, padding=None,
          num_classes=10, in_channels=1, head="flatten", framework="torch"):
    """A 1-D CNN in the chosen framework (``"torch"`` or ``"keras"``), same layers and parameters.

    The defaults follow the MNIST-1D paper's CNN: three conv layers of 25 channels and a linear head.

    >>> count_parameters(cnn1d(40, framework="torch"))
    16460
    """
    return _builder(framework, torch_cnn1d, keras_cnn1d)(input_length, channels, kernel_size, stride, padding, num_classes, in_channels, head)


def _cnn2d_plan(image_size, channels, pool):
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for _ in channels:
        height, width = height // pool, width // pool
        if min(height, width) < 1:
            raise ValueError(f"images of size {image_size} are too small for {len(channels)} pooling steps")
    return height, width


def torch_cnn2d(image_size=(8, 8), in_channels=1, channels=(32, 64), kernel_size=3, pool=2, hidden=(),
                num_classes=10, dropout=0.0):
    """``Conv2d (same padding) -> ReLU -> MaxPool2d(pool)`` per entry of ``channels``, then
    ``Flatten``, optional ``Linear -> ReLU (-> Dropout)`` hidden layers and a linear head.

    Input ``(N, C, H, W)`` (channels first); ``kernel_size`` must be odd.
    """
    from torch import nn

    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    height, width = _cnn2d_plan(image_size, channels, pool)
    layers, depth = [], in_channels
    for size in channels:
        layers += [nn.Conv2d(depth, size, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(pool)]
        depth = size
    layers.append(nn.Flatten())
    layers += _torch_dense_head(depth * height * width, hidden, num_classes, dropout)
    return nn.Sequential(*layers)


def keras_cnn2d(image_size=(8, 8), in_channels=1, channels=(32, 64), kernel_size=3, pool=2, hidden=(),
                num_classes=10, dropout=0.0):
    """The same 2-D CNN as :func:`torch_cnn2d` in Keras; input ``(N, H, W, C)``, outputs logits."""
    import keras

    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    _cnn2d_plan(image_size, channels, pool)
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    layers = [keras.Input(shape=(height, width, in_channels))]
    for size in channels:
        layers += [keras.layers.Conv2D(size, kernel_size, padding="same", activation="relu"),
                   keras.layers.MaxPooling2D(pool)]
    layers += [keras.layers.Permute((3, 1, 2)), keras.layers.Flatten()]   # (C, H, W) order, as torch
    return keras.Sequential(layers + _keras_dense_head(hidden, num_classes, dropout), name="cnn2d")


def cnn2d(image_size=(8, 8), in_channels=1, channels=(32, 64), kernel_size=3, pool=2, hidden=(), num_classes=10,
          dropout=0.0, framework="torch"):
    """A 2-D CNN in the chosen framework (``"torch"``: NCHW input, ``"keras"``: NHWC input).

    >>> count_parameters(cnn2d((8, 8), framework="torch"))
    21386
    """
    return _builder(framework, torch_cnn2d, keras_cnn2d)(image_size, in_channels, channels, kernel_size, pool, hidden, num_classes, dropout)


def _torch_gru_classifier():
    """The torch module class behind :func:`torch_gru` (built once, on first use)."""
    global _TorchGRUClassifier
    if _TorchGRUClassifier is None:
        from torch import nn

        class GRUClassifier(nn.Module):
            """(Embedding ->) GRU -> the last hidden state -> Linear."""

            def __init__(self, input_size, hidden_size, num_classes, vocab_size, num_layers):
                super().__init__()
                self.embedding = nn.Embedding(vocab_size, input_size) if vocab_size else None
                self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True)
                self.head = nn.Linear(hidden_size, num_classes)

            def forward(self, x):
                if self.embedding is not None:
                    x = self.embedding(x.long())
                elif x.ndim == 2:
                    x = x.unsqueeze(-1)            # (N, T) -> (N, T, 1)
                _, h = self.gru(x)                  # h: (num_layers, N, hidden)
                return self.head(h[-1])

        _TorchGRUClassifier = GRUClassifier
    return _TorchGRUClassifier


_TorchGRUClassifier = None


def torch_gru(input_size=1, hidden_size=64, num_classes=10, vocab_size=None, num_layers=1):
    """A GRU classifier: the last hidden state of a ``batch_first`` GRU goes to a linear head.

    Input ``(N, T)`` (one feature per step), ``(N, T, input_size)``, or integer tokens ``(N, T)``
    when ``vocab_size`` is given (an ``Embedding(vocab_size, input_size)`` comes first).
    """
    return _torch_gru_classifier()(input_size, hidden_size, num_classes, vocab_size, num_layers)


def keras_gru(input_size=1, hidden_size=64, num_classes=10, vocab_size=None, num_layers=1):
    """The same GRU classifier as :func:`torch_gru` in Keras, with the same parameter count.

    ``reset_after=True`` (Keras 3's default, written out here) applies the reset gate after the
    recurrent matrix product and keeps two bias vectors, exactly torch's ``nn.GRU`` convention
    (``b_ih`` and ``b_hh``): ``3 * (H * (F + H) + 2 * H)`` parameters per layer in both. With
    ``reset_after=False`` Keras has one bias vector and ``3 * H`` parameters fewer.
    The variable-length input ``(None,)`` accepts sequences of any length.
    """
    import keras

    if vocab_size:
        layers = [keras.Input(shape=(None,)), keras.layers.Embedding(vocab_size, input_size)]
    elif input_size == 1:
        layers = [keras.Input(shape=(None,)), keras.layers.Reshape((-1, 1))]
    else:
        layers = [keras.Input(shape=(None, input_size))]
    for i in range(num_layers):
        layers.append(keras.layers.GRU(hidden_size, reset_after=True, return_sequences=i < num_layers - 1))
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers, name="gru")


def gru(input_size=1, hidden_size=64, num_classes=10, vocab_size=None, num_layers=1, framework="torch"):
    """A GRU sequence classifier in the chosen framework, same layers and parameter count.

    >>> count_parameters(gru(1, 32, framework="torch"))
    3690
    """
    return _builder(framework, torch_gru, keras_gru)(input_size, hidden_size, num_classes, vocab_size, num_layers)


def _gru_to_keras(weight_ih, weight_hh, bias_ih, bias_hh):
    """torch GRU weights (gates r, z, n stacked on rows) -> Keras [kernel, recurrent, bias] (gates z, r, h)."""
    import numpy as np

    def reorder(a):
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    return [reorder(weight_ih).T, reorder(weight_hh).T, np.stack([reorder(bias_ih), reorder(bias_hh)])]


def copy_torch_weights_to_keras(torch_model, keras_model):
    """Copy a torch model's weights into the Keras model of the same architecture, layer by layer.

    Handles ``Linear``/``Dense``, ``Conv1d``/``Conv1D``, ``Conv2d``/``Conv2D``, ``Embedding`` and
    ``GRU`` (``reset_after=True``); the layers with weights must come in the same order in both
    (as in :func:`cnn1d`, :func:`cnn2d`, :func:`gru` and :func:`mlp`). Returns ``keras_model``.

    Conversions: a conv kernel ``(out, in, *k)`` becomes ``(*k, in, out)``; a linear weight is
    transposed; GRU gates are reordered from torch's (r, z, n) to Keras' (z, r, h).
    """
    import torch

    def arr(t):
        return t.detach().cpu().numpy()

    sources = []
    for module in torch_model.modules():
        if isinstance(module, torch.nn.Linear):
            sources.append(("dense", [arr(module.weight).T, arr(module.bias)]))
        elif isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
            w = arr(module.weight)
            sources.append(("conv", [w.transpose(*range(2, w.ndim), 1, 0), arr(module.bias)]))
        elif isinstance(module, torch.nn.Embedding):
            sources.append(("embedding", [arr(module.weight)]))
        elif isinstance(module, torch.nn.GRU):
            for layer in range(module.num_layers):
                get = lambda name: arr(getattr(module, f"{name}_l{layer}"))  # noqa: E731
                sources.append(("gru", _gru_to_keras(get("weight_ih"), get("weight_hh"),
                                                      get("bias_ih"), get("bias_hh"))))
    targets = [layer for layer in keras_model.layers if layer.weights]
    if len(sources) != len(targets):
        raise ValueError(f"torch model has {len(sources)} layers with weights, Keras model {len(targets)}")
    for (kind, weights), layer in zip(sources, targets):
        if kind == "gru" and not getattr(layer, "reset_after", True):
            raise ValueError("the Keras GRU must use reset_after=True to match torch's nn.GRU")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise ValueError(f"{kind} weights {[w.shape for w in weights]} do not fit Keras layer "
                             f"{layer.name} {expected}")
        layer.set_weights(weights)
    return keras_model


# ---------------------------------------------------------------------------------------------
# A 2-D CNN split into a body (features) and a head (classifier), for transfer learning (unit 07).
#
# body: per entry of ``channels``: Conv 3x3 (no bias: BatchNorm adds one) -> BatchNorm -> ReLU, with
# the stride of ``strides``; then global average pooling -> (N, channels[-1]) features.
# Padding is one pixel on each side in both frameworks (Keras: ZeroPadding2D + "valid"), so that the
# default strides (2, 1, 2, 2) take 28 -> 14 -> 14 -> 7 -> 4 pixels the same way in both, and the
# same weights give the same features.
# BatchNorm uses torch's momentum 0.1 and eps 1e-5 (Keras: momentum=0.9, epsilon=1e-5).
# ---------------------------------------------------------------------------------------------

def _body_plan(channels, strides):
    channels = tuple(channels)
    return channels, _per_layer(strides, len(channels), "strides")


def torch_cnn2d_body(image_size=(28, 28), in_channels=1, channels=(8, 16, 32, 64), strides=(2, 1, 2, 2)):
    """The feature extractor of :func:`transfer_cnn` in PyTorch: input ``(N, H, W)`` when
    ``in_channels=1`` (an ``Unflatten`` adds the channel axis), else ``(N, C, H, W)``; output
    ``(N, channels[-1])``."""
    from torch import nn

    channels, strides = _body_plan(channels, strides)
    height = image_size if isinstance(image_size, int) else tuple(image_size)[0]
    layers, depth = [], in_channels
    if in_channels == 1:
        layers.append(nn.Unflatten(1, (1, height)))
    for size, stride in zip(channels, strides):
        layers += [nn.Conv2d(depth, size, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(size), nn.ReLU()]
        depth = size
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def keras_cnn2d_body(image_size=(28, 28), in_channels=1, channels=(8, 16, 32, 64), strides=(2, 1, 2, 2)):
    """The same body as :func:`torch_cnn2d_body` in Keras (channels last), named ``"body"``:
    input ``(N, H, W)`` when ``in_channels=1``, else ``(N, H, W, C)``; output ``(N, channels[-1])``."""
    import keras

    channels, strides = _body_plan(channels, strides)
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if in_channels == 1:
        layers = [keras.Input(shape=(height, width)), keras.layers.Reshape((height, width, 1))]
    else:
        layers = [keras.Input(shape=(height, width, in_channels))]
    for size, stride in zip(channels, strides):
        layers += [keras.layers.ZeroPadding2D(1),
                   keras.layers.Conv2D(size, 3, strides=stride, padding="valid", use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                   keras.layers.ReLU()]
    layers.append(keras.layers.GlobalAveragePooling2D())
    return keras.Sequential(layers, name="body")


def cnn2d_body(image_size=(28, 28), in_channels=1, channels=(8, 16, 32, 64), strides=(2, 1, 2, 2), framework="torch"):
    """The body (feature extractor) of :func:`transfer_cnn` in the chosen framework.

    >>> count_parameters(cnn2d_body(framework="torch"))   # conv weights + BatchNorm scale and shift
    24504
    """
    return _builder(framework, torch_cnn2d_body, keras_cnn2d_body)(image_size, in_channels, channels, strides)


def transfer_cnn(num_classes=5, image_size=(28, 28), in_channels=1, channels=(8, 16, 32, 64), strides=(2, 1, 2, 2),
                 framework="torch"):
    """A 2-D CNN in two named parts, ``body`` (:func:`cnn2d_body`) and ``head`` (one linear layer
    from the ``channels[-1]`` features to the logits).

    torch: ``nn.Sequential`` with children ``model.body`` and ``model.head``; Keras: a
    ``Sequential`` of the ``"body"`` model and a ``Dense`` layer named ``"head"``
    (``model.get_layer("body")``). Both output logits.

    >>> model = transfer_cnn(5)
    >>> type(model.body).__name__, model.head
    ('Sequential', Linear(in_features=64, out_features=5, bias=True))
    """
    body = cnn2d_body(image_size, in_channels, channels, strides, framework=framework)
    if framework == "torch":
        from collections import OrderedDict

        from torch import nn

        return nn.Sequential(OrderedDict(body=body, head=nn.Linear(tuple(channels)[-1], num_classes)))
    import keras

    return keras.Sequential([body, keras.layers.Dense(num_classes, name="head")], name="transfer_cnn")


def _keras_layers_with_weights(model):
    """The layers of a Keras model that hold weights, in order, looking inside nested models."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            found += _keras_layers_with_weights(layer)
        elif layer.weights:
            found.append(layer)
    return found


def copy_torch_cnn_to_keras(torch_model, keras_model):
    """Copy the weights of a torch CNN with BatchNorm (such as :func:`transfer_cnn` or
    :func:`cnn2d_body`) into the Keras model of the same architecture; returns ``keras_model``.

    Handles ``Conv2d`` with or without bias, ``BatchNorm2d`` (scale, shift, running mean and
    variance) and ``Linear``, in the order of ``torch_model.modules()``; nested Keras models
    (the ``"body"`` of :func:`transfer_cnn`) are searched in order.
    """
    import torch

    def arr(t):
        return t.detach().cpu().numpy()

    sources = []
    for module in torch_model.modules():
        if isinstance(module, torch.nn.Conv2d):
            kernel = arr(module.weight).transpose(2, 3, 1, 0)           # (out, in, kh, kw) -> (kh, kw, in, out)
            sources.append([kernel] + ([arr(module.bias)] if module.bias is not None else []))
        elif isinstance(module, torch.nn.BatchNorm2d):
            sources.append([arr(module.weight), arr(module.bias), arr(module.running_mean), arr(module.running_var)])
        elif isinstance(module, torch.nn.Linear):
            sources.append([arr(module.weight).T, arr(module.bias)])
    targets = _keras_layers_with_weights(keras_model)
    if len(sources) != len(targets):
        raise ValueError(f"torch model has {len(sources)} layers with weights, Keras model {len(targets)}")
    for weights, layer in zip(sources, targets):
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise ValueError(f"weights {[w.shape for w in weights]} do not fit Keras layer {layer.name} {expected}")
        layer.set_weights(weights)
    return keras_model
