"""lepton_kit.serving: the server always stops (port closed, no thread left), sizes on disk, the micro-batcher."""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest

from conftest import REPO
from lepton_kit.serving import MicroBatcher, file_size, serve


def run_in_own_thread(coroutine):
    """asyncio.run in a fresh thread: another test of the same worker may leave a loop marked running here."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


async def hello(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})


def port_is_open(url):
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def server_threads():
    return [t for t in threading.enumerate() if t.name.startswith("uvicorn-")]


def test_serve_answers_over_real_http_then_closes_the_port_and_leaves_no_thread():
    with serve(hello) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/predict").text == "/predict"
        assert port_is_open(url) and len(server_threads()) == 1
    assert not port_is_open(url)
    assert server_threads() == []


def test_small_responses_are_not_delayed_by_nagle_and_delayed_acks():
    """A keep-alive request must not wait for the client's delayed ACK (about 40 ms on Linux)."""
    import statistics
    import time

    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/echo")
    async def echo(payload: dict):
        return payload

    with serve(app) as url, httpx.Client(base_url=url) as client:
        times = []
        for _ in range(12):
            start = time.perf_counter()
            assert client.post("/echo", json={"signal": [1.0] * 40}).json() == {"signal": [1.0] * 40}
            times.append(time.perf_counter() - start)
    assert statistics.median(times[2:]) < 0.025, f"median request {1000 * statistics.median(times[2:]):.1f} ms"


def test_serve_stops_the_server_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with serve(hello) as url:
            assert httpx.get(url + "/").status_code == 200
            1 / 0
    assert not port_is_open(url)
    assert server_threads() == []


def test_two_servers_get_two_free_ports():
    with serve(hello) as first, serve(hello) as second:
        assert first != second
        assert httpx.get(first + "/a").text == "/a" and httpx.get(second + "/b").text == "/b"
    assert server_threads() == []


def test_serve_with_a_fastapi_app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    with serve(app) as url:
        assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert server_threads() == []


def test_a_server_that_cannot_start_is_a_clear_error_and_leaves_nothing_behind():
    async def broken(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no model file"})

    with pytest.raises(RuntimeError, match="stopped before it started|did not start"):
        with serve(broken):
            pass
    assert server_threads() == []


def test_file_size_counts_the_external_data_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"g" * 7)
    assert file_size(tmp_path / "m.onnx") == 7
    (tmp_path / "m.onnx.data").write_bytes(b"w" * 1000)
    assert file_size(str(tmp_path / "m.onnx")) == 1007
    with pytest.raises(FileNotFoundError):
        file_size(tmp_path / "missing.onnx")


def test_the_batcher_runs_the_model_once_for_concurrent_requests_and_answers_each_its_rows():
    seen = []

    def model(x):
        seen.append(len(x))
        return x.sum(axis=1, keepdims=True)

    batcher = MicroBatcher(model, max_batch=64, max_wait_ms=50)

    async def main():
        requests = [np.full((1 + i % 3, 4), float(i)) for i in range(10)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.aclose()
        return requests, answers

    requests, answers = run_in_own_thread(main())
    for rows, answer in zip(requests, answers):
        np.testing.assert_array_equal(answer, rows.sum(axis=1, keepdims=True))
    assert batcher.calls == 1 and seen == [sum(len(r) for r in requests)]
    assert batcher.requests == 10 and batcher.items == seen[0]


def test_the_batcher_respects_max_batch_and_passes_errors_to_the_waiting_requests():
    seen = []
    batcher = MicroBatcher(lambda x: seen.append(len(x)) or x, max_batch=4, max_wait_ms=50)

    async def main():
        await asyncio.gather(*(batcher.submit(np.zeros((1, 2))) for _ in range(10)))
        await batcher.aclose()

    run_in_own_thread(main())
    assert max(seen) <= 4 and sum(seen) == 10 and batcher.calls == len(seen) >= 3

    def failing(x):
        raise ValueError("bad model")

    broken = MicroBatcher(failing, max_wait_ms=1)

    async def fail():
        try:
            with pytest.raises(ValueError, match="bad model"):
                await broken.submit(np.zeros((1, 2)))
            with pytest.raises(ValueError, match="bad model"):      # the worker goes on after an error
                await broken.submit(np.zeros((1, 2)))
        finally:
            await broken.aclose()

    run_in_own_thread(fail())
    with pytest.raises(ValueError):
        MicroBatcher(failing, max_batch=0)


def test_the_batcher_without_waiting_runs_each_request_alone():
    batcher = MicroBatcher(lambda x: x, max_batch=1, max_wait_ms=0)

    async def main():
        await asyncio.gather(*(batcher.submit(np.zeros((1, 3))) for _ in range(5)))
        await batcher.aclose()

    run_in_own_thread(main())
    assert batcher.calls == 5


def test_importing_lepton_kit_does_not_import_the_serving_module():
    code = "import sys, lepton_kit; print('lepton_kit.serving' in sys.modules, 'uvicorn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"], out.stderr
