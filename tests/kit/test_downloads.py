"""Offline tests of lepton_kit.downloads against a local HTTP server.

Every file served here is a small TEST FIXTURE built by this module in the real formats
(gzipped IDX, CIFAR-10 python tarball) from random pixels with a fixed seed; the registry
is pointed at the fixtures' hashes with monkeypatch.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import shutil
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from lepton_kit import downloads
from lepton_kit.downloads import DownloadError

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_TARBALL = "cifar-10-python.tar.gz"


# ----------------------------------------------------------------------------- fixture files
def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def make_mnist_fixture(folder: Path, seed: int) -> dict:
    """TEST FIXTURE: 20 train + 10 test random 28x28 images in gzipped IDX files."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 20).astype(np.int64),
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 10).astype(np.int64),
    }
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "train-images-idx3-ubyte.gz": _idx_bytes(arrays["x_train"], 2051),
        "train-labels-idx1-ubyte.gz": _idx_bytes(arrays["y_train"], 2049),
        "t10k-images-idx3-ubyte.gz": _idx_bytes(arrays["x_test"], 2051),
        "t10k-labels-idx1-ubyte.gz": _idx_bytes(arrays["y_test"], 2049),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return arrays


def make_cifar_fixture(folder: Path, seed: int = 10) -> dict:
    """TEST FIXTURE: cifar-10-python.tar.gz with 4 random images per batch."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            b"batch_label": f"fixture {name}".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, 4)],
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(4)],
        }
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, batch in batches.items():
            payload = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        extra = b"not a batch"
        info = tarfile.TarInfo("../outside.txt")  # must be ignored, never extracted
        info.size = len(extra)
        tar.addfile(info, io.BytesIO(extra))
    (folder / CIFAR_TARBALL).write_bytes(buffer.getvalue())

    def images(names):
        data = np.concatenate([batches[n][b"data"] for n in names])
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    train = [f"data_batch_{i}" for i in range(1, 6)]
    return {
        "x_train": images(train),
        "y_train": np.array(sum((batches[n][b"labels"] for n in train), []), dtype=np.int64),
        "x_test": images(["test_batch"]),
        "y_test": np.array(batches["test_batch"][b"labels"], dtype=np.int64),
    }


def _hashes(folder: Path, names, alg: str) -> dict:
    return {n: f"{alg}:{hashlib.new(alg, (folder / n).read_bytes()).hexdigest()}" for n in names}


def register(monkeypatch, dataset: str, folder: Path, names, alg: str = "md5") -> None:
    monkeypatch.setitem(
        downloads.REGISTRY,
        dataset,
        {"base_url": "http://127.0.0.1:9/unused/", "files": _hashes(folder, names, alg)},
    )


def cached_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- pytest fixtures
@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("LEPTON_DATA_DIR", str(folder))
    monkeypatch.delenv("LEPTON_DATA_MIRROR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return folder


class _Server:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def url(self, sub: str = "") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{sub}"

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = _Server(root)
    yield srv
    srv.stop()


@pytest.fixture
def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data/"  # nothing listens there any more


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_mnist_download_roundtrip_and_cache(dataset, cache, server, monkeypatch):
    folder = server.root / dataset
    expected = make_mnist_fixture(folder, seed=0 if dataset == "mnist" else 1)
    register(monkeypatch, dataset, folder, MNIST_FILES)

    got = downloads.load_mnist(dataset, base_url=server.url(dataset))
    for array, key in zip(got, ["x_train", "y_train", "x_test", "y_test"]):
        np.testing.assert_array_equal(array, expected[key])
    assert got[0].dtype == np.uint8 and got[0].shape == (20, 28, 28)
    assert got[1].dtype == np.int64 and got[2].shape == (10, 28, 28)
    assert len(server.requests) == 4
    assert cached_files(cache) == sorted(f"{dataset}/{n}" for n in MNIST_FILES)

    server.stop()  # second call must be served from the cache alone
    again = downloads.load_mnist(dataset, base_url=server.url(dataset))
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)
    assert len(server.requests) == 4


def test_cifar10_download_roundtrip_and_cache(cache, server, monkeypatch):
    expected = make_cifar_fixture(server.root / "cifar")
    register(monkeypatch, "cifar10", server.root / "cifar", [CIFAR_TARBALL], alg="sha256")

    got = downloads.load_cifar10(base_url=server.url("cifar/"))
    for array, key in zip(got, ["x_train", "y_train", "x_test", "y_test"]):
        np.testing.assert_array_equal(array, expected[key])
    assert got[0].shape == (20, 32, 32, 3) and got[0].dtype == np.uint8
    assert got[2].shape == (4, 32, 32, 3) and got[3].dtype == np.int64
    assert len(server.requests) == 1
    assert not (cache.parent / "outside.txt").exists()
    assert cached_files(cache) == [f"cifar10/{CIFAR_TARBALL}"]

    again = downloads.load_cifar10(base_url=server.url("cifar/"))
    np.testing.assert_array_equal(again[0], got[0])
    assert len(server.requests) == 1


def test_mirror_env_var(cache, server, monkeypatch):
    make_mnist_fixture(server.root / "mnist", seed=0)
    register(monkeypatch, "mnist", server.root / "mnist", MNIST_FILES)
    monkeypatch.setenv("LEPTON_DATA_MIRROR", server.url())
    path = downloads.fetch("mnist", "t10k-labels-idx1-ubyte.gz")
    assert path == cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert server.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]


def test_hash_mismatch_keeps_nothing(cache, server, monkeypatch):
    folder = server.root / "mnist"
    make_mnist_fixture(folder, seed=0)
    register(monkeypatch, "mnist", folder, MNIST_FILES)
    name = "train-images-idx3-ubyte.gz"
    (folder / name).write_bytes(b"tampered" + (folder / name).read_bytes())

    url = server.url("mnist")
    with pytest.raises(DownloadError) as info:
        downloads.fetch("mnist", name, base_url=url)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert name in message and f"{url}/{name}" in message and "cache" in message
    assert "hash" in message.lower()
    assert len(server.requests) == 1
    assert not list(cache.rglob(name))
    assert cached_files(cache) == []  # no temporary leftovers either


def test_http_error_is_download_error(cache, server, monkeypatch):
    register(monkeypatch, "mnist", *_one_fixture(server.root / "elsewhere"))
    with pytest.raises(DownloadError, match="404"):
        downloads.fetch("mnist", "t10k-labels-idx1-ubyte.gz", base_url=server.url("missing"))
    assert cached_files(cache) == []


def _one_fixture(folder: Path):
    make_mnist_fixture(folder, seed=0)
    return folder, MNIST_FILES


def test_unreachable_server(cache, closed_port_url, monkeypatch, tmp_path):
    folder, names = _one_fixture(tmp_path / "src")
    register(monkeypatch, "mnist", folder, names)
    name = "t10k-images-idx3-ubyte.gz"
    with pytest.raises(DownloadError) as info:
        downloads.fetch("mnist", name, base_url=closed_port_url)
    message = str(info.value)
    target = cache / "mnist" / name
    assert name in message and closed_port_url + name in message
    assert "pre-seed" in message and str(target) in message and "copy it to" in message
    assert downloads.REGISTRY["mnist"]["files"][name].split(":")[1] in message
    assert cached_files(cache) == []


def test_preseeded_cache_needs_no_network(cache, closed_port_url, monkeypatch, tmp_path):
    src = tmp_path / "src"
    expected = make_mnist_fixture(src, seed=3)
    register(monkeypatch, "fashion_mnist", src, MNIST_FILES)
    (cache / "fashion_mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(src / name, cache / "fashion_mnist" / name)

    got = downloads.load_mnist("fashion_mnist", base_url=closed_port_url)
    np.testing.assert_array_equal(got[0], expected["x_train"])
    np.testing.assert_array_equal(got[3], expected["y_test"])


def test_corrupt_cached_file_without_network(cache, closed_port_url, monkeypatch, tmp_path):
    src = tmp_path / "src"
    make_mnist_fixture(src, seed=0)
    register(monkeypatch, "mnist", src, MNIST_FILES)
    name = "train-labels-idx1-ubyte.gz"
    target = cache / "mnist" / name
    target.parent.mkdir(parents=True)
    target.write_bytes((src / name).read_bytes()[:-5])  # truncated: wrong hash

    with pytest.raises(DownloadError, match="pre-seed"):
        downloads.fetch("mnist", name, base_url=closed_port_url)
    assert not target.exists()
    assert cached_files(cache) == []


def test_corrupt_cached_file_is_replaced(cache, server, monkeypatch):
    folder = server.root / "mnist"
    make_mnist_fixture(folder, seed=0)
    register(monkeypatch, "mnist", folder, MNIST_FILES)
    name = "t10k-labels-idx1-ubyte.gz"
    target = cache / "mnist" / name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    assert downloads.fetch("mnist", name, base_url=server.url("mnist")) == target
    assert target.read_bytes() == (folder / name).read_bytes()


def test_malformed_idx_raises_value_error(cache, server, monkeypatch):
    folder = server.root / "mnist"
    make_mnist_fixture(folder, seed=0)
    name = "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress((folder / name).read_bytes()))
    raw[:4] = (1234).to_bytes(4, "big")  # wrong magic number
    (folder / name).write_bytes(gzip.compress(bytes(raw)))
    register(monkeypatch, "mnist", folder, MNIST_FILES)  # hashes match the bad file

    with pytest.raises(ValueError, match=r"magic number 1234, expected 2051"):
        downloads.load_mnist("mnist", base_url=server.url("mnist"))


def test_truncated_idx_raises_value_error(cache, server, monkeypatch):
    folder = server.root / "mnist"
    make_mnist_fixture(folder, seed=0)
    name = "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress((folder / name).read_bytes())
    (folder / name).write_bytes(gzip.compress(raw[:-28]))
    register(monkeypatch, "mnist", folder, MNIST_FILES)
    with pytest.raises(ValueError, match="IDX header says shape"):
        downloads.load_mnist("mnist", base_url=server.url("mnist"))


def test_registry_has_upstream_hashes():
    assert downloads.REGISTRY["mnist"]["base_url"].startswith("https://ossci-datasets.s3")
    assert downloads.REGISTRY["mnist"]["files"]["train-images-idx3-ubyte.gz"] == (
        "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    )
    assert downloads.REGISTRY["cifar10"]["files"][CIFAR_TARBALL] == (
        "md5:c58f30108f718f92721af3b95e74349a"
    )
    for entry in downloads.REGISTRY.values():
        for known_hash in entry["files"].values():
            alg, _, hexdigest = known_hash.partition(":")
            assert alg in ("md5", "sha256") and len(hexdigest) in (32, 64)
    assert len(downloads.FASHION_MNIST_CLASSES) == len(downloads.CIFAR10_CLASSES) == 10


def test_unknown_file_or_dataset(cache):
    with pytest.raises(KeyError):
        downloads.fetch("mnist", "../../etc/passwd")
    with pytest.raises(KeyError):
        downloads.fetch("imagenet", "x")


# ----------------------------------------------------------------------------- IMDB
def make_imdb_fixture(folder: Path, seed: int = 3) -> dict:
    """TEST FIXTURE: imdb.npz in Keras's layout (ragged reviews as pickled object arrays of lists)."""
    rng = np.random.default_rng(seed)

    def reviews(n):
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = [int(w) for w in rng.integers(1, 50, rng.integers(3, 9))]
        return out

    arrays = {"x_train": reviews(6), "y_train": rng.integers(0, 2, 6), "x_test": reviews(4),
              "y_test": rng.integers(0, 2, 4)}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "imdb.npz", **arrays)
    return arrays


def test_imdb_download_roundtrip_encodes_like_keras(cache, server, monkeypatch):
    raw = make_imdb_fixture(server.root / "imdb")
    register(monkeypatch, "imdb", server.root / "imdb", ["imdb.npz"], alg="sha256")

    x_train, y_train, x_test, y_test = downloads.load_imdb(base_url=server.url("imdb/"))
    assert x_train[0] == [1] + [w + 3 for w in raw["x_train"][0]]  # start_char 1, index_from 3
    assert len(x_train) == 6 and len(x_test) == 4 and y_train.dtype == np.int64
    np.testing.assert_array_equal(y_test, raw["y_test"])
    assert cached_files(cache) == ["imdb/imdb.npz"]

    from lepton_kit.data import load

    monkeypatch.setitem(downloads.REGISTRY["imdb"], "base_url", server.url("imdb/"))
    d = load("imdb", num_words=20)
    assert d.classes == ["negative", "positive"] and len(d.x_train) == 6
    assert all(max(review) < 20 for review in d.x_train)  # rarer words become OOV index 2
    assert len(server.requests) == 1


class _Exploit:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickle gadget ran')",))


def test_imdb_file_with_a_pickle_gadget_is_refused_not_run(cache, server, monkeypatch):
    folder = server.root / "imdb"
    folder.mkdir(parents=True)
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit()
    np.savez(folder / "imdb.npz", x_train=evil, y_train=np.zeros(1), x_test=evil, y_test=np.zeros(1))
    register(monkeypatch, "imdb", folder, ["imdb.npz"], alg="sha256")
    with pytest.raises(ValueError, match="refusing to unpickle builtins.exec"):
        downloads.load_imdb(base_url=server.url("imdb/"))


def test_imdb_registry_has_the_hash_keras_uses():
    assert downloads.REGISTRY["imdb"]["files"]["imdb.npz"] == (
        "sha256:69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f")
