"""The sandboxed side of ``lepton autograde``: an IPython shell that runs one notebook's cells on request.

:mod:`lepton_kit.grading.execution` starts ``python -s -m lepton_kit.grading.executor`` inside bubblewrap and talks
to it over two pipes; it is the notebook's kernel, so everything it sends back is untrusted:

* stdin, one JSON request a line: ``{"op": "hello", "packages": [...], "imports": [...]}`` first,
  then ``{"op": "run", "i": 3, "code": "..."}`` for student code, ``{"op": "instr" | "test", "i": 5,
  "n": nonce, "code": "...", "tag": hmac}`` for instructor cells (run by :mod:`lepton_kit.grading.guard`),
  and ``{"op": "bye"}``;
* stdout, one record a line: ``LK <key>`` (sent by the guard before any student code runs), JSON
  ``{"t": "o", "i": 3, "o": <nbformat output>}`` and ``{"t": "done", "i": 3}``, and the guard's
  signed ``LV`` (verdict) and ``LF`` (tampering) lines. Student code can write there too, but it
  cannot sign.

Limits come from the environment (``LEPTON_LIMITS``, JSON) and are set before anything else runs:

    LEPTON_LIMITS='{"memory": 2147483648, "processes": 256}' PYTHONSAFEPATH=1 python -s -m lepton_kit.grading.executor
"""
from __future__ import annotations

import json
import os
import resource
import sys

RLIMITS = {"memory": resource.RLIMIT_DATA, "processes": resource.RLIMIT_NPROC,
           "file_size": resource.RLIMIT_FSIZE, "cpu_seconds": resource.RLIMIT_CPU,
           "open_files": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}


def apply_limits(limits: dict) -> None:
    """Drop to ``limits["uid"]`` when started as root, then set hard resource limits."""
    uid = limits.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # clears every capability bwrap kept for this step
    for name, which in RLIMITS.items():
        value = limits.get(name)
        if value is not None:
            resource.setrlimit(which, (int(value), int(value)))


class Channel:
    """Records to the parent: whole lines written with ``os.write`` (one per output)."""

    def __init__(self, fd: int, cell_cap: int):
        self.fd, self.cell_cap, self.cell, self.used, self.cut = fd, cell_cap, None, 0, False

    def start(self, index):
        self.cell, self.used, self.cut = index, 0, False

    def send(self, record: dict) -> None:
        line = (json.dumps(record, default=repr) + "\n").encode()
        while line:
            line = line[os.write(self.fd, line):]

    def output(self, output: dict) -> None:
        size = len(json.dumps(output, default=repr))
        if self.used + size > self.cell_cap:
            if not self.cut:
                self.cut = True
                self.send({"t": "o", "i": self.cell, "o": {
                    "output_type": "stream", "name": "stderr",
                    "text": f"\n[output truncated: this cell printed more than {self.cell_cap} bytes]\n"}})
            return
        self.used += size
        self.send({"t": "o", "i": self.cell, "o": output})


class Stream:
    """``sys.stdout`` / ``sys.stderr``: text buffered and sent as nbformat stream outputs."""

    encoding, errors = "utf-8", "replace"

    def __init__(self, name: str, channel: Channel, fd: int):
        self.name, self.channel, self._fd, self.parts, self.size = name, channel, fd, [], 0

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.parts.append(text)
        self.size += len(text)
        if self.size > 65536:
            self.flush()
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.parts:
            text, self.parts, self.size = "".join(self.parts), [], 0
            self.channel.output({"output_type": "stream", "name": self.name, "text": text})

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True

    @property
    def closed(self):
        return False


LINK_ABOVE = 8 << 20  # bytes: data files larger than this are linked into the home, not copied


def make_shell(channel: Channel, streams):
    """An IPython shell whose tracebacks, displays and results go to ``channel``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    def flush():
        for stream in streams:
            stream.flush()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            flush()
            channel.output({"output_type": "execute_result", "execution_count": self.prompt_count,
                            "data": format_dict, "metadata": md_dict or {}})

        def finish_displayhook(self):
            self._is_active = False

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            flush()
            channel.output({"output_type": "display_data", "data": data, "metadata": metadata or {}})

        def clear_output(self, wait=False):
            pass

    class Shell(InteractiveShell):
        def enable_gui(self, gui=None):
            """``%matplotlib inline`` asks for an event loop; figures go to the display publisher instead."""

        def _showtraceback(self, etype, evalue, stb):
            flush()
            try:
                text = str(evalue)
            except BaseException:
                text = "<exception text unavailable>"
            channel.output({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                            "evalue": text, "traceback": [str(line) for line in stb]})

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    config.InteractiveShell.xmode = "Context"
    Shell.displayhook_class = Hook
    Shell.display_pub_class = Publisher
    return Shell.instance(config=config)


def _no_input(*args, **kwargs):
    raise RuntimeError("input() is not available while the notebook is autograded")


def _peer(channel, reader, shell, streams):
    """The kernel's side of the call protocol: the checker's requests are answered from the notebook's namespace."""
    from lepton_kit.grading.wire import Peer

    def receive():
        line = reader.readline()
        if not line:
            return None
        message = json.loads(line)
        return message if isinstance(message, dict) and "k" in message else None

    def flush():
        for stream in streams:
            stream.flush()

    return Peer(send=channel.send, receive=receive, lookup=lambda name: shell.user_ns[name], before_answer=flush,
                assign=shell.user_ns.__setitem__)


def main() -> int:
    apply_limits(json.loads(os.environ.get("LEPTON_LIMITS", "{}")))
    limits = json.loads(os.environ.get("LEPTON_LIMITS", "{}"))
    records, requests = os.dup(1), os.dup(0)  # the protocol moves off fds 0-2
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # raw writes to fd 1 (subprocesses, C code) land in the diagnostics pipe
    channel = Channel(records, int(limits.get("cell_output", 1 << 20)))
    reader = os.fdopen(requests, "r", encoding="utf-8")
    hello = json.loads(reader.readline() or "{}")
    files = os.environ.get("LEPTON_FILES")
    if files and os.path.isdir(files):  # the assignment's data files and the student's own files
        import shutil

        def place(source, dest):  # large files stay where they are (read-only), linked: the home is size-limited
            if os.path.getsize(source) > LINK_ABOVE:
                os.symlink(source, dest)
            else:
                shutil.copy(source, dest)

        for name in os.listdir(files):
            source = os.path.join(files, name)
            if os.path.isdir(source):
                shutil.copytree(source, name, dirs_exist_ok=True, copy_function=place)
            else:
                place(source, name)
    for name in hello.get("imports", []):
        try:
            __import__(name)
        except Exception:  # a missing optional package fails the same way in the notebook itself
            pass
    streams = [Stream("stdout", channel, 1), Stream("stderr", channel, 2)]
    shell = make_shell(channel, streams)
    sys.stdout, sys.stderr = streams
    import builtins
    import io
    import linecache

    sys.stdin = io.StringIO()
    builtins.input = _no_input
    builtins.get_ipython = shell.get_ipython
    mailbox = [None]
    from lepton_kit.grading import guard  # signs verdicts of tests run here; reports tampering in any case

    guard.install(records, shell.user_ns, mailbox, hello.get("packages", []), hello.get("student_names", []))
    peer = _peer(channel, reader, shell, streams)
    sys.path.insert(0, os.getcwd())  # the student's own modules: importable from now on, never before the guard
    channel.send({"t": "ready"})
    audit, main_pid, peer_cell = sys.audit, os.getpid(), None
    while True:
        index = None
        if os.getpid() != main_pid:  # a process student code forked must not serve requests
            os._exit(0)
        try:
            line = reader.readline()
            if not line:
                break
            request = json.loads(line)
            op, index = request.get("op"), request.get("i")
            if op == "bye":
                break
            channel.start(index)
            if request.get("k") == "ask":  # the checker calls a function of the notebook
                if index != peer_cell:
                    peer.reset()  # a new test: its shared arrays start afresh
                    peer_cell = index
                peer.answer(request.get("q"))
                if os.getpid() != main_pid:
                    os._exit(0)
                continue
            if op == "run":
                shell.run_cell(request["code"], store_history=True)
            elif op in ("instr", "test"):
                mailbox[0] = None
                audit("lepton.begin", request["n"], op, request["code"], request["tag"])
                code = mailbox[0]
                shell.execution_count += 1
                if code is None:
                    channel.output({"output_type": "error", "ename": "LeptonGuardError",
                                    "evalue": "the autograder refused to run this cell", "traceback": []})
                else:
                    linecache.cache[code.co_filename] = (len(request["code"]), None,
                                                         request["code"].splitlines(True), code.co_filename)
                    try:
                        exec(code, shell.user_ns)
                    except BaseException:
                        shell.showtraceback()
                    value = shell.user_ns.pop("__lepton_value__", None)
                    if value is not None:
                        shell.displayhook(value)
            if os.getpid() != main_pid:
                os._exit(0)
            for stream in streams:
                stream.flush()
            channel.send({"t": "done", "i": index})
        except KeyboardInterrupt:  # an interrupt that arrived between cells
            continue
        except BaseException as err:  # the protocol must go on whatever a cell left behind
            try:
                channel.send({"t": "done", "i": index, "error": repr(err)[:300]})
            except BaseException:
                pass
    channel.send({"t": "bye"})
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
