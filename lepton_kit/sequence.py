"""Recurrent sequence classifiers in PyTorch (unit 06): Elman RNN, GRU or LSTM, with a choice of readout.

``rnn_classifier`` covers the two shapes the course needs:

- MNIST-1D as in the paper (Greydanus & Kobak 2024): a bidirectional GRU with hidden size 6 reads the
  40 samples of a signal, and **all** 40 outputs go to one linear layer (``readout="all"``, 5,134
  parameters);
- text: integer tokens (``vocab_size``) through an ``Embedding`` whose row 0 is the padding, then the
  recurrent layer and a readout of the last state (``"last"``) or a pooling that ignores the padded
  positions (``"mean"`` or ``"max"``, token 0 masked out).

``lepton_kit.models.gru`` keeps the plain "last hidden state" GRU built the same way in Keras.
torch is imported inside the functions only.

>>> from lepton_kit.models import count_parameters
>>> count_parameters(rnn_classifier("gru", 1, 6, 10, bidirectional=True, readout="all", time_steps=40))
5134
"""
from __future__ import annotations

CELLS = ("rnn", "gru", "lstm")
READOUTS = ("last", "all", "mean", "max")

_Classifier = None


def _classifier_class():
    """The torch module class behind :func:`rnn_classifier` (built once, on first use)."""
    global _Classifier
    if _Classifier is None:
        import torch
        from torch import nn

        layers = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

        class RNNClassifier(nn.Module):
            """(Embedding ->) RNN / GRU / LSTM -> readout -> (Dropout ->) Linear."""

            def __init__(self, cell, input_size, hidden_size, num_classes, bidirectional, readout, time_steps,
                         vocab_size, num_layers, dropout):
                super().__init__()
                self.readout, self.vocab_size = readout, vocab_size
                self.embedding = nn.Embedding(vocab_size, input_size, padding_idx=0) if vocab_size else None
                self.rnn = layers[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                        bidirectional=bidirectional)
                self.directions = 2 if bidirectional else 1
                width = hidden_size * self.directions * (time_steps if readout == "all" else 1)
                self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
                self.head = nn.Linear(width, num_classes)

            def forward(self, x):
                mask = None
                if self.embedding is not None:
                    tokens = x.long()
                    mask = (tokens != 0).unsqueeze(-1)            # (N, T, 1): False on padding
                    x = self.dropout(self.embedding(tokens))
                elif x.ndim == 2:
                    x = x.unsqueeze(-1)                           # (N, T) -> (N, T, 1)
                out, state = self.rnn(x)                          # out: (N, T, directions * H)
                if self.readout == "last":
                    h = state[0] if isinstance(state, tuple) else state    # LSTM: (h, c)
                    z = torch.cat(list(h[-self.directions:]), dim=1)       # last layer, every direction
                elif self.readout == "all":
                    z = out.reshape(len(out), -1)
                elif self.readout == "mean":
                    m = mask.float() if mask is not None else torch.ones_like(out[..., :1])
                    z = (out * m).sum(1) / m.sum(1).clamp(min=1.0)
                else:
                    z = out.masked_fill(~mask, float("-inf")) if mask is not None else out
                    z = torch.nan_to_num(z.max(1).values, neginf=0.0)      # an all-padding row gives 0
                return self.head(self.dropout(z))

        _Classifier = RNNClassifier
    return _Classifier


def rnn_classifier(cell="gru", input_size=1, hidden_size=64, num_classes=10, *, bidirectional=False,
                   readout="last", time_steps=None, vocab_size=None, num_layers=1, dropout=0.0):
    """A recurrent classifier (torch ``nn.Module``) over ``batch_first`` sequences.

    - ``cell``: ``"rnn"`` (Elman, tanh), ``"gru"`` or ``"lstm"``.
    - Input ``(N, T)`` (one feature per step), ``(N, T, input_size)``, or integer tokens ``(N, T)`` when
      ``vocab_size`` is given: an ``Embedding(vocab_size, input_size, padding_idx=0)`` comes first.
    - ``readout``: ``"last"`` the final hidden state of each direction; ``"all"`` every step's output,
      flattened (``time_steps`` needed, the MNIST-1D paper's GRU); ``"mean"`` / ``"max"`` pooled over
      the steps, ignoring the padding tokens (0) when the input is tokens.
    - ``dropout`` applies to the embedded tokens and to the features before the linear head.

    >>> import torch
    >>> net = rnn_classifier("lstm", 8, 16, 2, vocab_size=50, readout="mean")
    >>> tuple(net(torch.tensor([[0, 0, 5, 7], [3, 4, 5, 6]])).shape)
    (2, 2)
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if readout == "all" and not time_steps:
        raise ValueError("readout='all' flattens every step: give time_steps (the sequence length)")
    return _classifier_class()(cell, input_size, hidden_size, num_classes, bidirectional, readout, time_steps,
                               vocab_size, num_layers, dropout)


def copy_rnn_weights_to_keras(torch_rnn, keras_layer):
    """Copy a one-layer unidirectional ``nn.RNN`` (tanh) into a Keras ``SimpleRNN`` of the same size.

    torch keeps two biases (``b_ih`` and ``b_hh``) where Keras keeps one: their sum. Kernels are
    transposed (torch stores ``(H, F)``, Keras ``(F, H)``). Returns ``keras_layer``.
    """
    if torch_rnn.num_layers != 1 or torch_rnn.bidirectional or torch_rnn.nonlinearity != "tanh":
        raise ValueError("only a one-layer, unidirectional tanh nn.RNN maps onto one SimpleRNN layer")

    def arr(t):
        return t.detach().cpu().numpy()

    bias = arr(torch_rnn.bias_ih_l0) + arr(torch_rnn.bias_hh_l0)
    keras_layer.set_weights([arr(torch_rnn.weight_ih_l0).T, arr(torch_rnn.weight_hh_l0).T, bias])
    return keras_layer
