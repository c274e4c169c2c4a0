"""Serving helpers of unit 09: run an ASGI app (FastAPI) for real on 127.0.0.1 and always stop it,
the size of an exported model on disk, and an asyncio micro-batcher.

Not imported by ``import lepton_kit`` (it imports uvicorn). What the unit's assignment asks the
student to write (latency statistics, payload validation, drift) is deliberately not here.

>>> import httpx
>>> async def app(scope, receive, send):      # the smallest ASGI app: answers "ok" to every request
...     if scope["type"] == "http":
...         await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
...         await send({"type": "http.response.body", "body": b"ok"})
>>> with serve(app) as url:
...     httpx.get(url + "/health").text
'ok'
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from pathlib import Path

import uvicorn

__all__ = ["MicroBatcher", "file_size", "serve"]


@contextlib.contextmanager
def serve(app, *, host="127.0.0.1", start_timeout=10.0, stop_timeout=10.0, log_level="warning"):
    """Run ``app`` with uvicorn in a daemon thread on a free port of ``host``; yield its base URL.

    The socket is bound here (port 0: the system picks a free port, no race with another server),
    and handed to uvicorn; its connections send small responses at once (``TCP_NODELAY``). On leaving the ``with`` block, also when its body raises, the server is
    told to exit, its thread joined and the socket closed: no port stays open, no thread is left.
    Raises ``RuntimeError`` when the server does not start within ``start_timeout`` seconds, or does
    not stop within ``stop_timeout`` seconds.
    """
    # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on every accepted connection (it checks the proto);
    # without it, Nagle's algorithm and the client's delayed ACK add about 40 ms to each response
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    thread = None
    server = None
    try:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="auto")
        server = uvicorn.Server(config)
        failure = []

        def run():
            try:
                server.run(sockets=[sock])
            except SystemExit as exit_:              # uvicorn exits when the app's startup fails
                failure.append(exit_.code)

        thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{port} stopped before it started "
                                   f"(exit status {failure[0] if failure else None}; see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {host}:{port} did not start within {start_timeout} s")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None and thread.is_alive():
            thread.join(stop_timeout)
        sock.close()
        if thread is not None and thread.is_alive():
            raise RuntimeError(f"the server thread {thread.name} did not stop within {stop_timeout} s")


def file_size(path):
    """Bytes of a model file together with its external-data file ``<name>.data`` if there is one
    (``torch.onnx.export`` writes large weights there).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "m.onnx").write_bytes(b"x" * 10)
    >>> file_size(folder / "m.onnx")
    10
    >>> _ = (folder / "m.onnx.data").write_bytes(b"w" * 90)
    >>> file_size(folder / "m.onnx")
    100
    """
    path = Path(path)
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


class MicroBatcher:
    """Dynamic batching for an asyncio server: requests wait up to ``max_wait_ms`` (or until
    ``max_batch`` rows are waiting), then the model runs once on all their rows and each request
    gets its own rows of the result.

    ``fn`` maps a 2-D NumPy array (rows = examples) to an array with one row per example.
    ``calls`` counts the model's calls, ``items`` the rows it saw, ``requests`` the requests.

    >>> import numpy as np
    >>> batcher = MicroBatcher(lambda x: x * 2, max_batch=8, max_wait_ms=20)
    >>> async def main():
    ...     answers = await asyncio.gather(*(batcher.submit(np.full((1, 2), i)) for i in range(4)))
    ...     await batcher.aclose()
    ...     return answers
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as pool:     # a thread of its own: this thread may run an event loop already
    ...     answers = pool.submit(asyncio.run, main()).result()
    >>> [a.tolist() for a in answers]
    [[[0, 0]], [[2, 2]], [[4, 4]], [[6, 6]]]
    >>> batcher.requests, batcher.calls, batcher.items
    (4, 1, 4)
    """

    def __init__(self, fn, *, max_batch=32, max_wait_ms=2.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.fn, self.max_batch, self.max_wait = fn, int(max_batch), max_wait_ms / 1000
        self.calls = self.items = self.requests = 0
        self._queue = None
        self._worker = None

    async def submit(self, rows):
        """The model's output for ``rows`` (a 2-D array), computed in a batch with other waiting requests."""
        import numpy as np

        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self.requests += 1
        await self._queue.put((np.asarray(rows), future))
        return await future

    async def _run(self):
        import numpy as np

        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            size = len(waiting[0][0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    waiting.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
                size += len(waiting[-1][0])
            try:
                outputs = np.asarray(self.fn(np.concatenate([rows for rows, _ in waiting])))
                self.calls += 1
                self.items += size
            except Exception as error:          # every waiting request gets the error, the worker goes on
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for rows, future in waiting:
                if not future.done():
                    future.set_result(outputs[start:start + len(rows)])
                start += len(rows)

    async def aclose(self):
        """Stop the worker task (requests still waiting are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
