"""The `hotline` command's entry point: `hotline import` beside a running hotline
streams its file to that process, and `hotline submit` hands it its URLs, before
anything heavy is loaded; every other case goes to the full command line
(`pipeline.cli`), unchanged.

The full command starts in about half a second of CPU (click, pydantic and its
settings, SQLAlchemy, psycopg, the stages), which held the first report of an import
back by most of a second. A running web process (`hotline run`, or `hotline serve`
with a Redis broker) has all of that loaded already and announces itself in its run
file (`pipeline.core.runfile`), so for `hotline import FILE [--source S]` this module,
with the standard library and PyYAML only:

1. finds the data folder as the settings would (`pipeline.core.config_files`), and in
   it the run file of a live process;
2. asks that process, with the file's key, whether it takes imports
   (GET /internal/v1/import), so that a stale file (a dead process, a process that
   does not answer, another key) means "nothing running";
3. streams the file to it (POST /internal/v1/import): it imports the lines as they
   arrive with `pipeline.stages.importer`, the rules of `hotline import`, the first
   line committed and queued on its own;
4. prints what the full command prints: each refused line on standard error as
   `FILE:LINE: error`, then `Imported N reports (submission S); K lines refused.`,
   and `Handed to the running hotline (pid P): N reports queued there.` on standard
   error; exit status 1 when a line was refused.

`hotline submit URL... [--channel C] [--category C] [--description D]` goes the same
way (POST /internal/v1/submit): the running process validates and stores the reports
as the command would, its refusals named by the command's options in the shell's
language (LANGUAGE or LANG), and the command prints the same lines.

Anything else (no run file, no answer, another command, --help, an option this
module does not know, a file that cannot be opened) falls through to the full command
before a byte was sent, which stores the reports itself: correct, only slower. Once
the file is being sent, a failure is said, never retried by the full command: lines
already read are stored, and importing them again would store them twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from pipeline.core.config_files import data_dir_setting
from pipeline.core.runfile import (
    IMPORT_PATH,
    KEY_HEADER,
    RUN_FILE,
    SUBMIT_PATH,
    RunningSystem,
    read_run_file,
)

TYPE_CHECKING = False  # not typing's: loading typing would cost a tenth of the start-up
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO

# Seconds to wait for the running process to say it takes the import; once it does,
# the import itself may take as long as the file needs.
ASK_TIMEOUT = 5.0
CHUNK = 64 * 1024


class Refused(Exception):
    """The connection failed or the answer is not HTTP as expected."""


class Loopback:
    """HTTP/1.1 over one connection to the running process: the little this command
    needs (`http.client` would load the e-mail parser and ssl, a third of the
    start-up). Requests one after the other; a body streamed from a file, with its
    length or chunked; answers with a length, chunked or until closed."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host = f"[{host}]" if ":" in host else host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.reusable = True  # until an answer says it closes

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, method: str, target: str, headers: dict[str, str],
             body: IO[bytes] | None = None, length: int | None = None) -> None:
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}",
                *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            head.append(f"Content-Length: {length}" if length is not None
                        else "Transfer-Encoding: chunked")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if body is None:
            return
        if length is not None:  # exactly the length said, though the file may grow
            if length and self.sock.sendfile(body, count=length) != length:
                raise Refused("the file became shorter while it was sent")
            return
        while chunk := body.read(CHUNK):
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.sock.sendall(b"0\r\n\r\n")

    def answer(self) -> tuple[int, Iterator[bytes]]:
        """The status and the body's pieces, read as they come."""
        line = self.reader.readline(65537)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Refused(f"not an HTTP answer: {line[:80]!r}")
        headers: dict[bytes, bytes] = {}
        while (field := self.reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = field.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if parts[0] == b"HTTP/1.0" or headers.get(b"connection", b"").lower() == b"close":
            self.reusable = False
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            return int(parts[1]), self._chunked()
        if b"content-length" in headers:
            return int(parts[1]), iter([self._exactly(int(headers[b"content-length"]))])
        return int(parts[1]), iter(self.reader.read, b"")

    def _exactly(self, size: int) -> bytes:
        data = self.reader.read(size)
        if len(data) != size:
            raise Refused("the answer ended early")
        return data

    def _chunked(self) -> Iterator[bytes]:
        while True:
            size = int(self.reader.readline(1026).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self.reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self._exactly(size)
            self._exactly(2)  # CRLF


def main() -> None:
    """The `hotline` console script."""
    code = fast_import(sys.argv[1:])
    if code is None:
        code = fast_submit(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from pipeline.cli import main as full_command  # loaded only when needed: see above

    full_command()


def import_arguments(argv: list[str]) -> tuple[str, str | None] | None:
    """(FILE, --source) of `import FILE [--source S]`, or None for anything else."""
    if not argv or argv[0] != "import":
        return None
    file: str | None = None
    source: str | None = None
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--source" and i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            source, i = rest[i + 1], i + 2
        elif arg.startswith("--source="):
            source, i = arg.removeprefix("--source="), i + 1
        elif arg.startswith("-") or file is not None:
            return None  # --help, another option, a second file: the full command says
        else:
            file, i = arg, i + 1
    return (file, source) if file else None


# The options of `hotline submit`, by the field of the report each gives.
_SUBMIT_FIELDS = {"--channel": "channel", "--category": "claimed_category",
                  "--description": "description"}


def submit_arguments(argv: list[str]) -> dict[str, object] | None:
    """The fields of `submit URL... [--channel C] [--category C] [--description D]`,
    or None for anything else."""
    if not argv or argv[0] != "submit":
        return None
    fields: dict[str, object] = {"channel": "api", "claimed_category": None,
                                 "description": None}
    urls: list[str] = []
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        option, equals, value = arg.partition("=")
        if option in _SUBMIT_FIELDS and equals:
            fields[_SUBMIT_FIELDS[option]], i = value, i + 1
        elif arg in _SUBMIT_FIELDS and i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            fields[_SUBMIT_FIELDS[arg]], i = rest[i + 1], i + 2
        elif arg.startswith("-"):
            return None  # --help, another option, a value that looks like one
        else:
            urls.append(arg)
            i += 1
    return {"urls": urls, **fields} if urls else None


def running_system() -> RunningSystem | None:
    """The running hotline named by this configuration's run file, if its process lives."""
    data_dir = data_dir_setting()
    if data_dir is None:
        return None
    return read_run_file(data_dir / RUN_FILE)


def fast_import(argv: list[str]) -> int | None:
    """Run `hotline import` through the running hotline; its exit status, or None
    when the full command must do it (nothing was sent)."""
    arguments = import_arguments(argv)
    if arguments is None:
        return None
    file, source = arguments
    path = Path(file)
    query = {"format": "csv" if path.suffix.lower() == ".csv" else "jsonl", "name": path.name}
    if source is not None:
        query["source"] = source
    try:
        target = f"{IMPORT_PATH}?{urlencode(query)}"
        stream = path.open("rb")
    except (OSError, UnicodeError):  # a name that is not text: the full command
        return None
    with stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISDIR(info.st_mode):
            return None
        running = running_system()
        if running is None:
            return None
        connection = _connection(running)
        if connection is None:
            return None
        try:
            return _send(connection, running, target, stream, info, path)
        finally:
            connection.close()


def fast_submit(argv: list[str]) -> int | None:
    """Run `hotline submit` through the running hotline; its exit status, or None when
    the full command must do it (nothing was stored)."""
    fields = submit_arguments(argv)
    if fields is None:
        return None
    running = running_system()
    if running is None:
        return None
    fields["language"] = os.environ.get("LANGUAGE") or os.environ.get("LANG") or ""
    try:  # an argument that is not text (a lone surrogate): the full command says so
        body = json.dumps(fields, ensure_ascii=False).encode()
    except UnicodeError:
        return None
    connection = _connection(running)
    if connection is None:
        return None
    try:
        connection.send("POST", SUBMIT_PATH, {KEY_HEADER: running.key,
                                              "Content-Type": "application/json",
                                              "Content-Length": str(len(body))})
        connection.sock.sendall(body)
        status, pieces = connection.answer()
        answer = json.loads(b"".join(pieces))
    except (OSError, ValueError, Refused) as exc:
        return _failed(running, f"{type(exc).__name__}: {exc}", "submission")
    finally:
        connection.close()
    if status in (401, 403, 404):
        return None  # the key checked before anything is stored: the full command
    if status == 422 and isinstance(answer.get("problems"), list):
        for problem in answer["problems"]:
            print(f"hotline: {problem}", file=sys.stderr)
        return 1
    if status != 200:
        return _failed(running, f"HTTP {status}", "submission")
    for report in answer["reports"]:
        print(json.dumps({"reference": report["reference"], "url": report["url"],
                          "submission": answer["submission"]}))
    print(f"Handed to the running hotline (pid {running.pid}): "
          f"{len(answer['reports'])} reports queued there.", file=sys.stderr)
    return 0


def _connection(running: RunningSystem) -> Loopback | None:
    """A connection to `running` once it has said it takes imports with this key."""
    try:
        url = urlsplit(running.url)
        if url.scheme != "http" or not url.hostname:
            return None
        connection = Loopback(url.hostname, url.port or 80, ASK_TIMEOUT)
    except (OSError, ValueError):
        return None
    try:
        connection.send("GET", IMPORT_PATH, {KEY_HEADER: running.key})
        status, body = connection.answer()
        for _ in body:
            pass
    except (OSError, ValueError, Refused):
        connection.close()
        return None
    if status != 200:
        connection.close()
        return None
    if not connection.reusable:  # it closes after each answer: a connection of its own
        connection.close()
        try:
            connection = Loopback(url.hostname, url.port or 80, ASK_TIMEOUT)
        except OSError:
            return None
    return connection


def _send(connection: Loopback, running: RunningSystem, target: str, stream: IO[bytes],
          info: os.stat_result, path: Path) -> int | None:
    headers = {KEY_HEADER: running.key, "Content-Type": "application/octet-stream"}
    length = info.st_size if stat.S_ISREG(info.st_mode) else None
    connection.sock.settimeout(None)  # the import takes the time the file needs
    try:
        # It may answer (a CSV header it refuses) before it has taken the whole file.
        with contextlib.suppress(OSError):
            connection.send("POST", target, headers, stream, length)
        status, body = connection.answer()
        if status != 200:
            return _refused(running, status, b"".join(body))
        return _outcome(running, body, path)
    except (OSError, ValueError, Refused) as exc:
        return _failed(running, f"{type(exc).__name__}: {exc}")


def _refused(running: RunningSystem, status: int, body: bytes) -> int | None:
    """A file it could not read at all (said as the full command says it), a key it no
    longer takes (checked before a byte is read: None, the full command imports), or a
    failure."""
    if status in (401, 403, 404):
        return None
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    if status in (400, 422) and isinstance(error, str):
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return _failed(running, f"HTTP {status}")


def _lines(pieces: Iterator[bytes]) -> Iterator[bytes]:
    left = b""
    for piece in pieces:
        left += piece
        *whole, left = left.split(b"\n")
        yield from whole
    if left:
        yield left


def _outcome(running: RunningSystem, body: Iterator[bytes], path: Path) -> int:
    summary = None
    for raw in _lines(body):
        line = json.loads(raw)
        if "error" in line:
            print(f"{path}:{line['line']}: {line['error']}", file=sys.stderr)
        else:
            summary = line
    if summary is None:
        return _failed(running, "the answer ended before its summary")
    print(f"Imported {summary['imported']} reports (submission {summary['submission']}); "
          f"{summary['refused']} lines refused.")
    print(f"Handed to the running hotline (pid {running.pid}): {summary['imported']} "
          "reports queued there.", file=sys.stderr)
    return 1 if summary["refused"] else 0


def _failed(running: RunningSystem, why: str, what: str = "import") -> int:
    if what == "import":
        print(f"hotline: the running hotline (pid {running.pid}) did not finish the import "
              f"({why}); the lines it read before are stored and queued. Look the file's "
              "reports up before importing it again.", file=sys.stderr)
    else:
        print(f"hotline: the running hotline (pid {running.pid}) did not finish the "
              f"submission ({why}); look the URLs up before submitting them again.",
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
