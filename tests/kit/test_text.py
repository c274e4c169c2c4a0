"""lepton_kit.text: character tokens, the vocabulary's reserved indices, padding equal to Keras in
every mode, and a bag-of-words baseline fitted on the training texts only."""
from __future__ import annotations

import os

import numpy as np
import pytest

from lepton_kit.text import OOV, PAD, bow_baseline, build_vocab, char_tokens, encode, pad_sequences, tokenize_corpus


def test_char_tokens_drop_whitespace_and_keep_punctuation():
    assert char_tokens(" 很好，\t不错\n") == ["很", "好", "，", "不", "错"]
    assert tokenize_corpus(["ab", ""]) == [["a", "b"], []]


def test_vocabulary_reserves_padding_and_oov_and_orders_by_frequency_then_first_appearance():
    vocab = build_vocab([["x", "y", "y"], ["z", "x", "y", "w"]], min_count=1)
    assert vocab == {"<pad>": PAD, "<oov>": OOV, "y": 2, "x": 3, "z": 4, "w": 5}
    assert build_vocab([["x", "y", "y"], ["z"]], min_count=2) == {"<pad>": 0, "<oov>": 1, "y": 2}
    assert len(build_vocab([list("abcdef")], max_size=4)) == 4
    assert encode([["y", "unknown"]], vocab) == [[2, OOV]]


@pytest.mark.xdist_group("keras")
def test_pad_sequences_equals_keras_in_every_mode():
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras.utils import pad_sequences as keras_pad

    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 50, size=n)) for n in (0, 1, 3, 7, 12, 5)]
    for maxlen in (None, 1, 4, 7, 15):
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                for value in (0, -1):
                    ours = pad_sequences(sequences, maxlen, padding, truncating, value)
                    theirs = keras_pad(sequences, maxlen=maxlen, padding=padding, truncating=truncating, value=value)
                    np.testing.assert_array_equal(ours, theirs, err_msg=f"{maxlen} {padding} {truncating} {value}")


def test_pad_sequences_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="pre"):
        pad_sequences([[1]], padding="left")


def test_bow_baseline_learns_from_the_training_texts_only():
    pos, neg = ["好用", "很好", "不错", "喜欢"], ["太差", "很差", "失望", "难用"]
    result = bow_baseline(pos + neg, [1] * 4 + [0] * 4, ["很好用", "太失望"], [1, 0], min_df=1, C=100.0)
    assert result["accuracy"] == 1.0
    assert result["features"] == len(result["model"][0].vocabulary_)
    assert "很好用" not in result["model"][0].vocabulary_        # test texts never reach the vocabulary


def test_bow_baseline_on_words_keeps_one_character_words():
    train = ["1 5 9", "1 5 7", "2 6 8", "2 6 3"]
    result = bow_baseline(train, [1, 1, 0, 0], ["5 9", "6 8"], [1, 0], analyzer="word", ngram_range=(1, 1), min_df=1)
    assert result["accuracy"] == 1.0 and "5" in result["model"][0].vocabulary_
