"""Downloadable datasets (MNIST, Fashion-MNIST, CIFAR-10, IMDB) with a verified local cache.

Files are fetched with :mod:`pooch` into :func:`cache_dir` (``$LEPTON_DATA_DIR`` if set,
else the operating system's cache folder) and every download is checked against the hash
that upstream publishes before it is moved into the cache, so the cache never holds a
partial or corrupt file. Without network, copy the files into the cache by hand: the
:class:`DownloadError` message says exactly which file goes where.

>>> from lepton_kit.downloads import load_mnist
>>> x_train, y_train, x_test, y_test = load_mnist()     # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.dtype          # doctest: +SKIP
((60000, 28, 28), dtype('uint8'), dtype('int64'))

Environment variables:

* ``LEPTON_DATA_DIR``: cache folder (files go to ``<dir>/<dataset>/<filename>``).
* ``LEPTON_DATA_MIRROR``: a mirror serving ``<mirror>/<dataset>/<filename>``, used
  instead of the upstream URLs (a ``base_url`` argument still takes precedence).
"""
from __future__ import annotations

import gzip
import os
import pathlib

__all__ = [
    "CIFAR10_CLASSES",
    "DownloadError",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "REGISTRY",
    "cache_dir",
    "fetch",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
]

MNIST_CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_CIFAR10_TARBALL = "cifar-10-python.tar.gz"
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = "test_batch"

# dataset -> {"base_url": ..., "files": {filename: "<alg>:<hex>"}}.
# The md5 values are the ones upstream publishes (and torchvision's
# datasets/mnist.py and datasets/cifar.py carry). Tests point entries at fixture files
# with ``monkeypatch.setitem(REGISTRY, ...)``.
REGISTRY: dict[str, dict] = {
    "mnist": {
        "base_url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "files": {
            "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion_mnist": {
        "base_url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "files": {
            "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
    "cifar10": {
        "base_url": "https://www.cs.toronto.edu/~kriz/",
        "files": {
            _CIFAR10_TARBALL: "md5:c58f30108f718f92721af3b95e74349a",
        },
    },
    # The hashes keras.datasets.imdb passes to get_file (keras/src/datasets/imdb.py).
    "imdb": {
        "base_url": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "files": {
            "imdb.npz": "sha256:69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
            "imdb_word_index.json": "md5:bfafd718b763782e994055a2d397834f",
        },
    },
}

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


class DownloadError(RuntimeError):
    """A registered file could not be downloaded or verified (the message says how to fix it)."""


def cache_dir() -> pathlib.Path:
    """Folder holding the downloaded files: ``$LEPTON_DATA_DIR`` or the OS cache.

    >>> cache_dir()                                  # doctest: +SKIP
    PosixPath('/home/me/.cache/lepton_kit')
    """
    env = os.environ.get("LEPTON_DATA_DIR")
    if env:
        return pathlib.Path(env).expanduser().resolve()
    import pooch

    return pathlib.Path(pooch.os_cache("lepton_kit")).resolve()


def _entry(dataset: str, filename: str) -> tuple[dict, str]:
    if dataset not in REGISTRY:
        raise KeyError(f"unknown dataset {dataset!r}; known: {sorted(REGISTRY)}")
    entry = REGISTRY[dataset]
    files = entry["files"]
    if filename not in files:
        raise KeyError(f"{filename!r} is not a file of dataset {dataset!r}; known: {sorted(files)}")
    known_hash = files[filename]
    # Never let a missing hash reach pooch: known_hash=None would disable verification.
    if not isinstance(known_hash, str) or ":" not in known_hash or not known_hash.split(":", 1)[1]:
        raise ValueError(
            f"registry entry for {dataset}/{filename} needs a hash like 'md5:<hex>' or "
            f"'sha256:<hex>', got {known_hash!r}"
        )
    return entry, known_hash


def _url(dataset: str, filename: str, entry: dict, base_url: str | None) -> str:
    if base_url is None:
        mirror = os.environ.get("LEPTON_DATA_MIRROR")
        if mirror:
            base_url = mirror.rstrip("/") + "/" + dataset
        else:
            base_url = entry["base_url"]
    return base_url.rstrip("/") + "/" + filename


def _hash_ok(path: pathlib.Path, known_hash: str) -> bool:
    import pooch

    alg, _, expected = known_hash.partition(":")
    return pooch.file_hash(str(path), alg=alg.lower()).lower() == expected.lower()


def fetch(dataset: str, filename: str, base_url: str | None = None) -> pathlib.Path:
    """Return the local path of a registered file, downloading and verifying it if needed.

    A file already in the cache with the right hash is used without any network access.
    ``base_url`` (or ``$LEPTON_DATA_MIRROR``) replaces the registry's upstream URL.
    Raises :class:`DownloadError` if the file cannot be downloaded or its hash is wrong.

    >>> fetch("mnist", "t10k-labels-idx1-ubyte.gz")           # doctest: +SKIP
    PosixPath('/home/me/.cache/lepton_kit/mnist/t10k-labels-idx1-ubyte.gz')
    """
    entry, known_hash = _entry(dataset, filename)
    url = _url(dataset, filename, entry, base_url)
    folder = cache_dir() / dataset
    target = folder / filename

    # A cached file with the wrong hash is never used: drop it before downloading, so
    # that a failed download cannot leave it behind either.
    if target.exists() and not _hash_ok(target, known_hash):
        target.unlink()

    import pooch

    try:
        path = pooch.retrieve(
            url, known_hash=known_hash, fname=filename, path=folder, progressbar=True
        )
    except Exception as exc:  # network, HTTP status, hash mismatch, disk...
        # pooch streams into a temporary file and only moves it into place after the hash
        # check; this is a second guard against keeping anything unverified.
        if target.exists() and not _hash_ok(target, known_hash):
            target.unlink()
        alg, _, hexdigest = known_hash.partition(":")
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DownloadError(
            f"could not download {filename!r} (dataset {dataset!r}) from {url}: "
            f"{type(exc).__name__}: {reason}. No copy of it was kept in the cache. "
            f"To pre-seed the cache, download {url} on a machine with network access and "
            f"copy it to {target}; it must have {alg} {hexdigest}. "
            "(LEPTON_DATA_DIR sets the cache folder, LEPTON_DATA_MIRROR a mirror URL.)"
        ) from exc
    return pathlib.Path(path)


def _read_gz(path: pathlib.Path) -> bytes:
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a valid gzip file: {exc}") from exc


def _parse_idx(path: pathlib.Path, magic: int, ndim: int):
    import numpy as np

    data = _read_gz(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX file too short ({len(data)} bytes, header needs {header})")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path}: bad IDX magic number {found}, expected {magic} "
            f"({'images' if magic == _IMAGES_MAGIC else 'labels'} file)"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds "
            f"{len(data) - header} bytes of data"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _load_idx_pair(images_path, labels_path, classes: int):
    import numpy as np

    images = _parse_idx(images_path, _IMAGES_MAGIC, 3)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected 28x28 images, got {images.shape[1:]}")
    labels = _parse_idx(labels_path, _LABELS_MAGIC, 1).astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    if labels.size and labels.max() >= classes:
        raise ValueError(f"{labels_path}: label {labels.max()} out of range 0..{classes - 1}")
    return images, labels


def load_mnist(name: str = "mnist", base_url: str | None = None):
    """Load MNIST or Fashion-MNIST as ``(x_train, y_train, x_test, y_test)``.

    Images are uint8 arrays of shape (N, 28, 28), labels int64 (N,). ``name`` is
    ``"mnist"`` or ``"fashion_mnist"``; class names are in :data:`MNIST_CLASSES` and
    :data:`FASHION_MNIST_CLASSES`.

    >>> x_train, y_train, x_test, y_test = load_mnist("fashion_mnist")   # doctest: +SKIP
    >>> FASHION_MNIST_CLASSES[y_train[0]]                                  # doctest: +SKIP
    'Ankle boot'
    """
    if name not in ("mnist", "fashion_mnist"):
        raise ValueError(f"load_mnist handles 'mnist' and 'fashion_mnist', not {name!r}")
    paths = {f: fetch(name, f, base_url=base_url) for f in _MNIST_FILES}
    x_train, y_train = _load_idx_pair(
        paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"], 10
    )
    x_test, y_test = _load_idx_pair(
        paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"], 10
    )
    return x_train, y_train, x_test, y_test


def _cifar_batch(batch: object, where: str):
    import numpy as np

    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{where}: not a CIFAR-10 batch (needs keys b'data' and b'labels')")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: data must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{where}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{where}: labels out of range 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(base_url: str | None = None):
    """Load CIFAR-10 as ``(x_train, y_train, x_test, y_test)``.

    Images are uint8 arrays of shape (N, 32, 32, 3) (channels last), labels int64;
    class names are in :data:`CIFAR10_CLASSES`. Only the six known batch files are read
    from the (hash-verified) tarball; nothing is extracted to disk.

    >>> x_train, y_train, x_test, y_test = load_cifar10()   # doctest: +SKIP
    >>> x_train.shape, CIFAR10_CLASSES[y_train[0]]           # doctest: +SKIP
    ((50000, 32, 32, 3), 'frog')
    """
    import pickle
    import tarfile

    import numpy as np

    path = fetch("cifar10", _CIFAR10_TARBALL, base_url=base_url)
    wanted = {f"{_CIFAR10_FOLDER}/{name}": name for name in (*_CIFAR10_TRAIN, _CIFAR10_TEST)}
    batches: dict[str, tuple] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue  # only the known regular-file members are ever read
                stream = tar.extractfile(member)
                # The tarball's hash was verified by fetch(); CIFAR-10 ships as pickles.
                batch = pickle.load(stream, encoding="bytes")
                batches[name] = _cifar_batch(batch, f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a readable CIFAR-10 tarball: {exc}") from exc
    missing = sorted(set(wanted.values()) - set(batches))
    if missing:
        raise ValueError(f"{path}: missing {_CIFAR10_FOLDER}/ members {missing}")
    x_train = np.concatenate([batches[n][0] for n in _CIFAR10_TRAIN])
    y_train = np.concatenate([batches[n][1] for n in _CIFAR10_TRAIN])
    x_test, y_test = batches[_CIFAR10_TEST]
    return x_train, y_train, x_test, y_test


class _ArraysOnly(__import__("pickle").Unpickler):
    """Unpickles NumPy arrays and nothing else (IMDB's ragged arrays are pickled object arrays)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            import pickle

            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        return super().find_class(module, name)


def _npz_arrays(path: pathlib.Path, keys) -> dict:
    import io
    import pickle
    import zipfile

    import numpy as np

    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for key in keys:
                raw = archive.read(f"{key}.npy")
                try:
                    arrays[key] = np.load(io.BytesIO(raw), allow_pickle=False)
                except ValueError:  # an object array: its elements are pickled lists or arrays
                    stream = io.BytesIO(raw)
                    major, _ = np.lib.format.read_magic(stream)
                    # versions 2 and 3 share the header layout (3 only encodes it as UTF-8)
                    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                                   else np.lib.format.read_array_header_2_0)
                    read_header(stream)
                    arrays[key] = _ArraysOnly(stream).load()
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a readable IMDB archive: {exc}") from exc
    return arrays


def load_imdb(base_url: str | None = None, *, start_char: int = 1, index_from: int = 3):
    """Load IMDB as ``(x_train, y_train, x_test, y_test)``, reviews as lists of word indices.

    The same encoding as ``keras.datasets.imdb.load_data`` without shuffling: each review starts with
    ``start_char``, word ``i`` of the frequency-ranked vocabulary is ``i + index_from``; labels are
    int64 (0 negative, 1 positive). Only NumPy arrays are ever unpickled from the (hash-verified) file.

    >>> x_train, y_train, x_test, y_test = load_imdb()   # doctest: +SKIP
    >>> len(x_train), x_train[0][:3]                      # doctest: +SKIP
    (25000, [1, 14, 22])
    """
    import numpy as np

    arrays = _npz_arrays(fetch("imdb", "imdb.npz", base_url=base_url), ("x_train", "y_train", "x_test", "y_test"))

    def encode(reviews):
        return [[start_char] + [int(w) + index_from for w in review] for review in reviews]

    x_train, x_test = encode(arrays["x_train"]), encode(arrays["x_test"])
    y_train, y_test = (np.asarray(arrays[k], dtype=np.int64) for k in ("y_train", "y_test"))
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("imdb.npz: the number of reviews and of labels differ")
    return x_train, y_train, x_test, y_test
