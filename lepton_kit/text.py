"""Text helpers for unit 06: character tokens of a whole corpus, and an honest bag-of-words baseline.

Chinese is written without spaces between words, so the simplest faithful tokens are the
characters themselves (most Chinese words are one or two characters). ``char_tokens`` keeps every
character except whitespace; ``tokenize_corpus`` applies it to every text of a corpus.

``build_vocab``, ``encode`` and ``pad_sequences`` are the course's reference versions of what the
lesson and the assignment write by hand: a vocabulary with the reserved indices 0 (padding) and 1
(out of vocabulary), and padding and truncation exactly as ``keras.utils.pad_sequences`` does them,
without importing TensorFlow (``tests/kit/test_text.py`` checks every mode against Keras).

``bow_baseline`` is the baseline a recurrent model has to beat: TF-IDF weighted counts of character
n-grams (single characters and pairs of neighbouring characters by default, which approximate a
bag of words without a word segmenter) fed to scikit-learn's logistic regression.

>>> corpus = tokenize_corpus(["好 用！", "不好"])
>>> corpus
[['好', '用', '！'], ['不', '好']]
>>> vocab = build_vocab(corpus)
>>> vocab["<pad>"], vocab["<oov>"], vocab["好"]
(0, 1, 2)
>>> pad_sequences(encode(corpus, vocab), maxlen=4).tolist()
[[0, 2, 3, 4], [0, 0, 5, 2]]
"""
from __future__ import annotations

import numpy as np

PAD, OOV = 0, 1   # reserved indices of every vocabulary of the course: padding and out-of-vocabulary


def char_tokens(text: str) -> list[str]:
    """The characters of ``text``, whitespace dropped.

    >>> char_tokens("质量 不错\\n")
    ['质', '量', '不', '错']
    """
    return [ch for ch in str(text) if not ch.isspace()]


def tokenize_corpus(texts, tokenize=char_tokens) -> list[list[str]]:
    """``tokenize`` (characters by default) applied to every text of ``texts``."""
    return [tokenize(t) for t in texts]


def build_vocab(token_lists, min_count=1, max_size=None) -> dict:
    """Token -> index: ``"<pad>"`` is 0, ``"<oov>"`` is 1, then the tokens seen at least ``min_count``
    times, most frequent first (equal counts in the order of their first appearance), at most
    ``max_size`` entries in all (the two reserved ones included).

    >>> build_vocab([["a", "b", "b"], ["c", "a", "b"]], max_size=4)
    {'<pad>': 0, '<oov>': 1, 'b': 2, 'a': 3}
    """
    from collections import Counter

    counts = Counter(token for tokens in token_lists for token in tokens)
    vocab = {"<pad>": PAD, "<oov>": OOV}
    for token, count in counts.most_common():     # ties keep the order of first appearance
        if count < min_count or (max_size is not None and len(vocab) >= max_size):
            break
        vocab[token] = len(vocab)
    return vocab


def encode(token_lists, vocab) -> list[list[int]]:
    """Every token replaced by its index; tokens outside ``vocab`` become ``OOV`` (1).

    >>> encode([["a", "z"]], {"<pad>": 0, "<oov>": 1, "a": 2})
    [[2, 1]]
    """
    return [[vocab.get(token, OOV) for token in tokens] for tokens in token_lists]


def pad_sequences(sequences, maxlen=None, padding="pre", truncating="pre", value=0, dtype="int64") -> np.ndarray:
    """Sequences of different lengths as one ``(N, maxlen)`` array, exactly as ``keras.utils.pad_sequences``.

    ``maxlen=None`` uses the longest sequence. Longer sequences lose their first (``truncating="pre"``)
    or last (``"post"``) entries; shorter ones get ``value`` before (``padding="pre"``, Keras' default)
    or after (``"post"``) their entries.

    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post").tolist()
    [[1, 2], [4, 0]]
    """
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r} and {truncating!r}")
    lengths = [len(s) for s in sequences]
    maxlen = max(lengths, default=0) if maxlen is None else int(maxlen)
    out = np.full((len(sequences), maxlen), value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or maxlen == 0:
            continue
        kept = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if padding == "pre":
            out[i, maxlen - len(kept):] = kept
        else:
            out[i, :len(kept)] = kept
    return out


def bow_baseline(train_texts, y_train, test_texts, y_test, *, analyzer="char", ngram_range=(1, 2), min_df=2,
                 C=10.0, max_iter=2000) -> dict:
    """Fit TF-IDF n-grams + logistic regression on the training texts; score it on the test texts.

    ``analyzer="char"`` counts character n-grams (whitespace included, as scikit-learn does);
    ``analyzer="word"`` counts n-grams of the whitespace-separated words (every word kept, even a
    one-character one).

    Everything is fitted on the training part only (vocabulary, document frequencies, weights).
    ``C=10`` is a weak L2 penalty: on the training reviews of ``reviews_zh``, 3-fold cross-validation
    over C in {0.3, 1, 3, 10, 30} favours the weakest ones.
    Returns ``{"accuracy", "features", "model"}``: the test accuracy, the number of n-gram features
    and the fitted scikit-learn ``Pipeline`` (``model.predict(texts)``).

    >>> texts = ["好用", "很好用", "不好", "太差", "很差", "好"]
    >>> labels = [1, 1, 0, 0, 0, 1]
    >>> result = bow_baseline(texts, labels, ["好用", "差"], [1, 0], min_df=1, C=100.0)
    >>> result["accuracy"], result["model"].predict(["很好"]).tolist()
    (1.0, [1])
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    words = dict(token_pattern=r"\S+") if analyzer == "word" else {}
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=tuple(ngram_range), min_df=min_df, **words)
    model = make_pipeline(vectorizer, LogisticRegression(C=C, max_iter=max_iter))
    model.fit(list(train_texts), np.asarray(y_train))
    accuracy = float(np.mean(model.predict(list(test_texts)) == np.asarray(y_test)))
    return {"accuracy": accuracy, "features": len(vectorizer.vocabulary_), "model": model}
