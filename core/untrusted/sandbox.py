"""Parsing untrusted files in a child process bounded in memory, CPU time, wall time and output.

A decompression bomb or a parser stuck on hostile markup must not take down the process that
asked (the web app serves everyone; an out-of-memory kill is not an exception). `FileParser`
keeps one child for a batch of files, sends it one path at a time and waits at most `wall_s`.
The child caps its own address space (RLIMIT_AS) and CPU time (RLIMIT_CPU, raised per file), so
a bomb ends in a MemoryError, a SIGXCPU or a crash of the child only; that file is refused with
the reason and a fresh child reads the rest. Zip-based formats have their members checked from
the central directory (count, declared size, compression ratio) before anything is inflated.

The child is a fresh interpreter (`python -m core.untrusted.sandbox`, started with exec, never a
fork of a
process holding torch threads) speaking length-prefixed JSON over its stdin and stdout. It gets
a scrubbed environment (no keys or tokens of the server's), and at most PARSER_CHILDREN children
run at once in one process, however many sessions upload: the others wait for a slot.
`FileParser.call` runs any function of a file (Q/A parsing and grouping) the same way, and with
`spawns=True` any work on a whole corpus (reading, chunking, counting for the Corpus page), so
that the web process gets counts, never the corpus text or its chunks.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]  # the repository: core/untrusted/ is two down
_HEADER = struct.Struct(">Q")
ZIP_FORMATS = (".docx",)
# Children of this process at once (each may take ParseLimits.memory_mb): the operator's
# ADAPTLAB_PARSER_CHILDREN, default 2. A process-wide cap, not one child per browser session.
PARSER_CHILDREN = max(1, int(os.environ.get("ADAPTLAB_PARSER_CHILDREN", "2") or 2))
_SLOTS = threading.BoundedSemaphore(PARSER_CHILDREN)
# What a parser may see of the server's environment: no API keys, tokens or passwords.
# No HOME: libraries look for credentials under it (~/.cache/huggingface/token); the child gets
# a home that does not exist instead.
_KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT")
CHILD_HOME = "/nonexistent"
CHILD_FILE_BYTES = 16 * 2**20  # RLIMIT_FSIZE: a parser writes nothing; a bug or exploit little
CHILD_PROCESSES = 0  # RLIMIT_NPROC: no fork, no thread (not enforced for root)


class ParseRefused(Exception):
    """A file the child refused or could not survive; the message is the reason shown."""


@dataclass
class ParseLimits:
    """What one file may cost to parse. The defaults read any real document of the supported
    kinds (a 50 MB PDF, a 1000-page Word file) and stop bombs within seconds."""

    memory_mb: int = 2048  # address space of the child, libraries included (~300 MB at rest)
    cpu_s: float = 60.0
    wall_s: float = 120.0
    max_chars: int = 20_000_000  # ~5M tokens: far beyond a useful corpus document
    zip_max_members: int = 5_000
    zip_max_bytes: int = 400_000_000  # declared uncompressed total
    zip_max_ratio: float = 200.0  # per member over 1 MB; deflated XML is rarely above 30


def normalise(text: str) -> str:
    """NFC, runs of spaces/tabs collapsed, no spaces around line ends, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def check_zip(path: str | Path, limits: ParseLimits) -> None:
    """Refuse a zip whose central directory announces a bomb: too many members, more than
    `zip_max_bytes` uncompressed in all, or a large member compressed over `zip_max_ratio`.

    Only the central directory is read. zipfile never inflates a member past its declared
    size, so the declared sizes bound what a reader can get. Raises ParseRefused.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip at all: the format's reader says what it expected
    if len(infos) > limits.zip_max_members:
        raise ParseRefused(f"zip with {len(infos)} members (more than {limits.zip_max_members})")
    total = sum(i.file_size for i in infos)
    if total > limits.zip_max_bytes:
        raise ParseRefused(
            f"unpacks to {total / 1e6:.0f} MB (more than {limits.zip_max_bytes / 1e6:.0f} MB)"
        )
    for i in infos:
        ratio = i.file_size / max(i.compress_size, 1)
        if i.file_size > 1_000_000 and ratio > limits.zip_max_ratio:
            raise ParseRefused(
                f"member {i.filename!r} is compressed {ratio:.0f}:1 (a decompression bomb?)"
            )


# --- the child ---------------------------------------------------------------------------------


def _send(stream, message: dict) -> None:
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _recv_blocking(stream) -> dict | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack(head)
    return json.loads(stream.read(n).decode("utf-8"))


def _child_read(request: dict) -> dict:
    """Run one reader under the request's limits; the reply holds `text` or `error`."""
    import resource

    limits = ParseLimits(**request["limits"])
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(spent + limits.cpu_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))  # SIGXCPU past it: the child dies
    path = request["path"]
    try:
        if Path(path).suffix.lower() in ZIP_FORMATS:
            check_zip(path, limits)
        module = importlib.import_module(request["module"])
        fn: Callable = module
        for part in request["qualname"].split("."):
            fn = getattr(fn, part)
        if "args" in request:  # FileParser.call: any JSON value comes back
            return {"value": fn(Path(path), *request["args"])}
        text, warning = fn(Path(path)), ""
        if isinstance(text, tuple):  # a reader that read the file with a doubt says it
            text, warning = text
        if len(text) > limits.max_chars:
            return {"error": f"more than {limits.max_chars:,} characters of text"}
        return {"text": normalise(text), "warning": str(warning or "")}
    except ParseRefused as e:
        return {"error": str(e)}
    except MemoryError:
        return {"error": f"needs more than {limits.memory_mb} MB of memory to read"}
    except RecursionError:
        return {"error": "nested too deeply to read"}
    except Exception as e:
        # core.corpus.Unreadable carries the message for the user; other errors name their type.
        if type(e).__name__ in ("Unreadable", "QAFormatError", "ConfigError", "TaskFileError"):
            return {"error": str(e)}
        # C parsers (lxml) report running out of memory as a syntax error: say what happened.
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if peak_mb > 0.5 * limits.memory_mb:
            return {"error": f"needs more than {limits.memory_mb} MB of memory to read"}
        return {"error": f"could not be read ({type(e).__name__}: {e})"}


def _child_main() -> None:
    """Serve read requests on stdin until it closes; limits set once on itself."""
    import logging
    import resource

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library printing to stdout must not corrupt the replies
    logging.disable(logging.WARNING)  # pypdf warns for every odd object; the parent decides
    stdin = sys.stdin.buffer
    memory_mb = int(os.environ.get("ADAPTLAB_PARSE_MEMORY_MB", "0"))
    if memory_mb:
        # A child of a corpus child inherits its cap: never ask for more (setrlimit would fail).
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(memory_mb * 2**20, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # A write past the cap fails with EFBIG instead of killing the child with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (CHILD_FILE_BYTES, CHILD_FILE_BYTES))
    if not os.environ.get("ADAPTLAB_PARSE_SPAWNS"):  # a corpus child starts parser children
        with contextlib.suppress(ValueError, OSError):  # a platform without it keeps the others
            resource.setrlimit(resource.RLIMIT_NPROC, (CHILD_PROCESSES, CHILD_PROCESSES))
    sys.setrecursionlimit(10_000)
    while True:
        request = _recv_blocking(stdin)
        if request is None:
            return
        _send(out, _child_read(request))


# --- the parent --------------------------------------------------------------------------------


def child_environment() -> dict[str, str]:
    """The environment a parser child starts with: locale, paths and temp folders only, and a
    home that does not exist, so a parser (or a file exploiting one) finds no secret of the
    server's through its environment or a library's default paths."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("LC_")}
    env.update(HOME=CHILD_HOME, PYTHONDONTWRITEBYTECODE="1")  # writes are capped (FSIZE)
    return env


@functools.cache
def no_network_prefix() -> tuple[str, ...]:
    """The `unshare` command that starts the child in a network namespace of its own (no
    network at all: only a loopback that is down), or () where the platform does not allow it;
    then the child has the server's network (README, Security). Probed once per process."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    # As root a network namespace needs nothing more; otherwise inside a user namespace (-r).
    for flags in (("-n",), ("-rn",)) if os.geteuid() == 0 else (("-rn",),):
        try:
            probe = subprocess.run([exe, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return (exe, *flags)
    return ()


class FileParser:
    """Reads files through a bounded child process; one child serves a whole batch.

    Use as a context manager (or call `close`). `read(path, reader)` returns the normalised
    text or raises ParseRefused with the reason; the parent never parses the file itself.

    `spawns=True` makes a corpus child: work on a whole corpus (read, chunk, count) whose own
    parser children read the files one by one, so that a bomb still costs only its file. It
    keeps every limit but RLIMIT_NPROC; its children take theirs (at most its memory).
    """

    def __init__(
        self,
        limits: ParseLimits | None = None,
        *,
        spawns: bool = False,
        env: dict[str, str] | None = None,
    ):
        self.limits = limits or ParseLimits()
        self.spawns = spawns
        self.env = dict(env or {})  # added to the scrubbed environment: folders, never secrets
        self._proc: subprocess.Popen | None = None
        self._slot = False  # holds one of the process's PARSER_CHILDREN slots

    def __enter__(self) -> FileParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        if not self._slot:
            if not _SLOTS.acquire(timeout=self.limits.wall_s):
                raise ParseRefused("the server is busy reading other uploads; try again soon")
            self._slot = True
        env = child_environment()
        env["PYTHONPATH"] = str(_ROOT)
        env["ADAPTLAB_PARSE_MEMORY_MB"] = str(self.limits.memory_mb)
        # Parsers need one thread; BLAS and tokenizer pools would only inflate the address space.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.update(RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        # No GPU: nothing here needs one, and a CUDA context maps more than RLIMIT_AS allows.
        env["CUDA_VISIBLE_DEVICES"] = ""
        if self.spawns:
            env["ADAPTLAB_PARSE_SPAWNS"] = "1"
        env.update(self.env)
        return subprocess.Popen(
            [*no_network_prefix(), sys.executable, "-m", "core.untrusted.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(_ROOT),
            close_fds=True,
        )

    def _recv(self, proc: subprocess.Popen, deadline: float) -> dict | str:
        """One reply, or "eof" when the child closed its output (it died) or "timeout" when the
        deadline passed."""
        fd = proc.stdout.fileno()
        buf = bytearray()
        need = _HEADER.size
        size = None
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return "timeout"
            chunk = os.read(fd, min(need - len(buf), 1 << 20))
            if not chunk:
                return "eof"
            buf += chunk
            if size is None and len(buf) >= _HEADER.size:
                (size,) = _HEADER.unpack(bytes(buf[: _HEADER.size]))
                need = _HEADER.size + size
        return json.loads(bytes(buf[_HEADER.size :]).decode("utf-8"))

    def read(self, path: str | Path, reader: Callable[[Path], str]) -> str:
        """The normalised text `reader(path)` returns in the child; raises ParseRefused."""
        return self.read_doubt(path, reader)[0]

    def read_doubt(self, path: str | Path, reader: Callable) -> tuple[str, str]:
        """(normalised text, warning) of `reader(path)` in the child: a reader may return
        (text, warning) when it read the file with a doubt (""; none). Raises ParseRefused."""
        reply = self._ask(path, reader)
        return reply["text"], reply.get("warning", "")

    def call(self, fn: Callable[..., Any], path: str | Path, *args: Any) -> Any:
        """What `fn(path, *args)` (a module-level function; JSON arguments) returns in the
        child, as JSON; its errors come back as ParseRefused."""
        return self._ask(path, fn, list(args))["value"]

    def _ask(self, path: str | Path, fn: Callable, args: list | None = None) -> dict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        request = {
            "path": str(Path(path).resolve()),
            "module": fn.__module__,
            "qualname": fn.__qualname__,
            "limits": asdict(self.limits),
        }
        if args is not None:
            request["args"] = args
        try:
            _send(proc.stdin, request)
        except (BrokenPipeError, OSError):
            self._discard()
            raise ParseRefused("the parser process could not be started") from None
        reply = self._recv(proc, time.monotonic() + self.limits.wall_s)
        if isinstance(reply, dict):
            if "error" in reply:
                raise ParseRefused(reply["error"])
            return reply
        if reply == "timeout":
            self._discard()
            raise ParseRefused(f"took longer than {self.limits.wall_s:g} s to read")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # its output closes a moment before its exit status is known
        code = self._discard()
        if code == -signal.SIGXCPU:
            raise ParseRefused(f"took more than {self.limits.cpu_s:g} s of CPU time to read")
        raise ParseRefused(
            f"the parser died on it (exit {code}; over {self.limits.memory_mb} MB of memory?)"
        )

    def _discard(self) -> int | None:
        """Kill the child (if still running) and forget it; returns its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        code = proc.wait()
        proc.stdout.close()
        return code

    def close(self) -> None:
        """End the child (it exits when its input closes) and free its slot."""
        proc = self._proc
        if proc is None:
            self._release()
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        self._proc = None
        self._release()

    def _release(self) -> None:
        if self._slot:
            self._slot = False
            _SLOTS.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._discard()
            self._release()


if __name__ == "__main__":
    _child_main()
