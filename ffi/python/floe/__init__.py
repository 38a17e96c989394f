"""Python bindings for floe: export a fjall database into one checksummed,
zstd-framed archive file, import it back, verify, inspect, and read or write
archives record by record.

A thin layer over libfloe's C ABI (``include/floe.h``) through ctypes; see
``floe._native`` for how the library is found (``FLOE_LIBRARY``).

Long operations (:func:`export`, :func:`import_archive`, :func:`verify`,
:meth:`Reader.verify`) run the native call on a worker thread while the
calling thread waits, so Ctrl-C (``KeyboardInterrupt``, or any exception a
signal handler raises) cancels them promptly: the operation stops at its next
block, removes what it created and the exception is raised in the caller.

Progress callbacks receive a :class:`Progress` and run on a thread other than
the caller's (never concurrently). Returning ``False`` cancels the operation
(:class:`CancelledError`); raising an exception cancels it and re-raises that
exception in the caller. A cancelled operation leaves nothing behind.

Archive arguments are paths (``str``, ``bytes`` or ``os.PathLike``), ``file://``
or ``s3://`` URLs, or binary file objects (spooled through a temporary file).
``"-"`` is a file named ``-``, not standard input or output: pass
``sys.stdout.buffer`` or ``sys.stdin.buffer`` for those.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from typing import (
    IO,
    Any,
    Callable,
    ClassVar,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _native as _n
from ._native import Status
from ._version import __version__

# `inspect` is deliberately not exported by `from floe import *`: it would
# shadow the standard library's module. Use floe.inspect or inspect_archive.
__all__ = [
    "__version__",
    "version",
    "export",
    "import_archive",
    "verify",
    "inspect_archive",
    "Reader",
    "Writer",
    "Progress",
    "Status",
    "ExportSummary",
    "ImportSummary",
    "VerifyReport",
    "WriteSummary",
    "KeyspaceInfo",
    "Keyspace",
    "Diff",
    "Difference",
    "FloeError",
    "InvalidInputError",
    "InvalidStateError",
    "FloeIOError",
    "CorruptArchiveError",
    "UnsupportedVersionError",
    "DatabaseLockedError",
    "EngineError",
    "TargetExistsError",
    "CancelledError",
    "PanicError",
    "InternalError",
]

#: A path argument: str, bytes or os.PathLike.
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: An archive argument: a path or URL, or a binary file object.
ArchiveArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]", IO[bytes]]

# ---------------------------------------------------------------- errors


class FloeError(Exception):
    """Base class of every floe error. ``status`` is the C status code (a
    :class:`Status`), ``status_name`` its name and ``message`` floe's
    description (also ``str(error)``)."""

    #: The status codes this class stands for (the first is its default).
    statuses: ClassVar[Tuple[Status, ...]] = ()
    status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = _as_status(status)
        elif self.statuses:
            self.status = self.statuses[0]

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (_rebuild_error, (type(self), self.message, self.status, getattr(self, "errno", None)))

    @property
    def status_name(self) -> str:
        return _n.floe_status_name(self.status if self.status is not None else -1).decode()


def _as_status(status: int) -> int:
    try:
        return Status(status)
    except ValueError:  # a code of a newer library
        return int(status)


class InvalidInputError(FloeError, ValueError):
    """An invalid argument: keys not strictly ascending, a duplicate, empty or
    oversized key, an unknown keyspace or option, a bad path string..."""

    statuses = (Status.INVALID_ARGUMENT, Status.NULL_ARGUMENT, Status.INVALID_UTF8)


class InvalidStateError(FloeError):
    """The object cannot do this now (closed reader, finished or aborted
    writer, put before begin_keyspace, keyspace begun twice)."""

    statuses = (Status.INVALID_STATE,)


class FloeIOError(FloeError, OSError):
    """An operating-system I/O error (missing file, permissions, disk full),
    or an object store's failure.

    When the library's message carries the OS error number (Rust's
    ``(os error N)``), ``errno`` and ``strerror`` are set and the exception is
    also an instance of the matching built-in subclass of ``OSError``, so
    ``except FileNotFoundError`` catches a missing archive and
    ``except PermissionError`` an unreadable one. Otherwise ``errno`` is None.
    """

    statuses = (Status.IO,)

    def __init__(self, message: str, status: Optional[int] = None, errno: Optional[int] = None) -> None:
        super().__init__(message, status)
        self.errno = errno
        self.strerror = os.strerror(errno) if errno is not None else None


class CorruptArchiveError(FloeError):
    """The archive is damaged, truncated or not a floe archive."""

    statuses = (Status.CORRUPT_ARCHIVE,)


class UnsupportedVersionError(FloeError):
    """The archive needs a newer floe (format version or required feature)."""

    statuses = (Status.UNSUPPORTED_VERSION,)


class DatabaseLockedError(FloeError):
    """The database is open in another process."""

    statuses = (Status.DATABASE_LOCKED,)


class EngineError(FloeError):
    """The fjall engine failed (including: the path is not a fjall database)."""

    statuses = (Status.ENGINE,)


class TargetExistsError(FloeError):
    """The import target exists and is not empty (pass ``replace=True``), or
    the archive file an export or :class:`Writer` would create exists (pass
    ``overwrite=True``)."""

    statuses = (Status.TARGET_EXISTS,)


class CancelledError(FloeError):
    """The progress callback returned ``False``; nothing was left behind."""

    statuses = (Status.CANCELLED,)


class PanicError(FloeError):
    """floe panicked (a bug); the panic was contained."""

    statuses = (Status.PANIC,)


class InternalError(FloeError):
    """A broken invariant inside floe (a bug, never caused by input)."""

    statuses = (Status.INTERNAL,)


def _error_table() -> Dict[int, Type[FloeError]]:
    """Status -> exception class, from each class's ``statuses``. A status of
    the table that no class claims maps to FloeError itself; the test
    test_abi.py::test_every_error_status_has_its_class fails for it."""
    table: Dict[int, Type[FloeError]] = {}
    pending = list(FloeError.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for s in cls.__dict__.get("statuses", ()):
            if s in table and table[s] is not cls:
                raise TypeError(f"status {s!r} is claimed by {table[s].__name__} and {cls.__name__}")
            table[s] = cls
    return table


_ERRORS = _error_table()


def _make_io_classes() -> Dict[type, Type[FloeIOError]]:
    """One FloeIOError subclass per built-in OSError subclass that an errno
    maps to (FloeFileNotFoundError is a FloeIOError and a FileNotFoundError)."""
    out: Dict[type, Type[FloeIOError]] = {}
    for code in sorted(_errno.errorcode):
        sub = type(OSError(code, ""))
        if sub is OSError or sub in out:
            continue
        name = "Floe" + sub.__name__
        cls = type(name, (FloeIOError, sub), {"__module__": __name__, "__doc__": f"A FloeIOError that is also a {sub.__name__}."})
        cls.__qualname__ = name
        globals()[name] = cls
        out[sub] = cls
    return out


_IO_CLASSES = _make_io_classes()
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _errno_of(message: str) -> Optional[int]:
    """The OS error number in a library message: the last ``(os error N)``
    (how Rust's std::io::Error shows an OS error). The C ABI exposes no errno
    of its own, so nothing else is guessed."""
    found = _OS_ERROR.findall(message)
    return int(found[-1]) if found else None


def _make_error(status: int, message: str) -> FloeError:
    cls = _ERRORS.get(status, FloeError)
    if not message:
        message = _n.floe_status_name(status).decode()
    if cls is FloeIOError:
        code = _errno_of(message)
        if code is not None:
            cls = _IO_CLASSES.get(type(OSError(code, "")), FloeIOError)
        return cls(message, status, code)
    return cls(message, status)


def _rebuild_error(cls: Type[FloeError], message: str, status: Optional[int], code: Optional[int]) -> FloeError:
    if issubclass(cls, FloeIOError):
        return cls(message, status, code)
    return cls(message, status)


def _last_error_message() -> str:
    """floe's last error on the calling thread (it is thread-local)."""
    return (_n.floe_last_error() or b"").decode("utf-8", "replace")


def _check(status: int) -> int:
    if status in (Status.OK, Status.DONE):
        return status
    raise _make_error(status, _last_error_message())


# ---------------------------------------------------------------- results


class _Record:
    """Dict-style access kept for the dicts earlier versions returned
    (deprecated: use the attributes)."""

    _aliases: ClassVar[Dict[str, str]] = {"elapsed_seconds": "seconds"}

    def __getitem__(self, key: str) -> Any:
        warnings.warn(
            f"{type(self).__name__}[{key!r}] is deprecated; use the attribute .{self._aliases.get(key, key)}",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            return getattr(self, self._aliases.get(key, key))
        except AttributeError:
            raise KeyError(key) from None

    def asdict(self) -> Dict[str, Any]:
        """The fields as a dict."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


class _Elapsed:
    @property
    def elapsed_seconds(self) -> float:
        """Deprecated alias of ``seconds``."""
        warnings.warn("elapsed_seconds is deprecated; use seconds", DeprecationWarning, stacklevel=2)
        return self.seconds  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class WriteSummary(_Record):
    """What a :class:`Writer` wrote."""

    archive_bytes: int
    records: int
    #: Bytes of the raw record stream (keys, values, record headers, markers).
    raw_bytes: int
    key_bytes: int
    value_bytes: int
    blocks: int
    keyspaces: int


@dataclasses.dataclass(frozen=True)
class ExportSummary(_Record, _Elapsed):
    """What :func:`export` did."""

    archive_bytes: int
    records: int
    raw_bytes: int
    key_bytes: int
    value_bytes: int
    blocks: int
    keyspaces: int
    #: The fjall snapshot's sequence number.
    snapshot_seqno: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class ImportSummary(_Record, _Elapsed):
    """What :func:`import_archive` did."""

    keyspaces: int
    records: int
    raw_bytes: int
    seconds: float
    #: Non-fatal notes (e.g. unknown optional keyspace options ignored).
    warnings: List[str]


@dataclasses.dataclass(frozen=True)
class VerifyReport(_Record):
    """What :func:`verify` established: the fields of ``floe verify --json``."""

    ok: bool
    archive: str
    quick: bool
    archive_bytes: int
    keyspaces: int
    blocks: int
    records: int
    raw_bytes: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class KeyspaceInfo(_Record):
    """A keyspace of an archive, with the totals from its index."""

    name: str
    records: int
    key_bytes: int
    value_bytes: int
    raw_bytes: int
    compressed_bytes: int
    blocks: int
    #: The smallest and largest keys (b"" when the keyspace is empty).
    first_key: bytes
    last_key: bytes
    #: The keyspace's options, as ``inspect`` shows them.
    options: Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Difference:
    """One key that differs between two archives (:meth:`Reader.diff`)."""

    #: The keyspace's name.
    keyspace: str
    key: bytes
    #: ``"added"`` (in the other archive only), ``"removed"`` (in this one
    #: only) or ``"changed"`` (in both, with different values).
    change: str


class Progress(NamedTuple):
    """A progress report: ``phase`` is "export", "import" or "verify";
    ``bytes_total`` is 0 when not known in advance, and for an export an
    estimate that may change between reports (exact in the last one)."""

    phase: str
    bytes_done: int
    bytes_total: int
    records_done: int


ProgressCallback = Callable[[Progress], Optional[bool]]

_PHASES = {_n.Phase.EXPORT: "export", _n.Phase.IMPORT: "import", _n.Phase.VERIFY: "verify"}


# ---------------------------------------------------------------- cancellable calls


class _Bridge:
    """The C progress callback of one operation: calls the user's callable
    (if any), captures what it raises, and cancels once asked to."""

    def __init__(self, fn: Optional[ProgressCallback]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.cancelled = False
        # Always a real callback, so that an operation without a Python
        # callback can still be cancelled (Ctrl-C).
        self.c = _n.PROGRESS_CALLBACK(self._call)

    def _call(self, _user_data: Any, p: Any) -> int:
        try:
            if self.cancelled or self.error is not None:
                return 1
            if self.fn is None:
                return 0
            p = p.contents
            info = Progress(_PHASES.get(p.phase, str(p.phase)), p.bytes_done, p.bytes_total, p.records_done)
            return 1 if self.fn(info) is False else 0
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller after cancelling
            self.error = e
            return 1


#: How often the waiting thread wakes to run signal handlers (a signal that
#: another thread received is only handled when the main thread runs Python).
_POLL_SECONDS = 0.05


def _run(name: str, bridge: _Bridge, call: Callable[[], int]) -> None:
    """Runs ``call`` (a native call taking ``bridge.c``) on a worker thread
    and waits for it. An exception raised while waiting (KeyboardInterrupt
    from Ctrl-C, or whatever a signal handler raises) cancels the call; once
    the call has returned, having removed what it created, that exception
    is raised. Exceptions from the progress callback are re-raised likewise,
    with the CancelledError as their cause."""
    result: List[Any] = []
    go = threading.Event()
    done = threading.Event()
    abandoned: List[bool] = []
    interrupts: List[BaseException] = []

    def work() -> None:
        try:
            go.wait()
            if abandoned:  # interrupted before the call began: do nothing
                return
            st = call()
            # The last error is thread-local: read it on this thread.
            result.append((st, None if st in (Status.OK, Status.DONE) else _last_error_message()))
        except BaseException as e:  # noqa: BLE001 - reported to the waiting thread
            result.append((None, e))
        finally:
            done.set()

    def interrupted(e: BaseException) -> None:
        bridge.cancelled = True
        if not interrupts:
            interrupts.append(e)

    def wait() -> None:
        while not done.is_set():
            try:
                done.wait(_POLL_SECONDS)
            except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt and friends: cancel, then raise
                interrupted(e)

    worker = threading.Thread(target=work, name=f"floe-{name}")
    try:
        worker.start()
        go.set()
        wait()
    except BaseException as e:  # noqa: BLE001 - raised outside wait()'s own handler
        if not go.is_set():  # the native call never began
            abandoned.append(True)
            go.set()
            raise
        interrupted(e)
        while not done.is_set():
            try:
                wait()
            except BaseException as e2:  # noqa: BLE001
                interrupted(e2)
    worker.join()
    st, detail = result[0]
    if st is None:  # the call itself raised (a ctypes argument error)
        raise detail
    err = None if st in (Status.OK, Status.DONE) else _make_error(st, detail)
    if interrupts:
        interrupt = interrupts[0]
        if err is None and hasattr(interrupt, "add_note"):
            interrupt.add_note(f"floe: the {name} had completed before it could be cancelled")
        raise interrupt from err
    if err is not None:
        if bridge.error is not None:
            raise bridge.error from err
        raise err


# ---------------------------------------------------------------- helpers


def _path(p: PathArg) -> bytes:
    b = os.fsencode(os.fspath(p))
    if b"\0" in b:
        raise InvalidInputError(f"path contains a NUL byte: {p!r}", Status.INVALID_ARGUMENT)
    return b


def _is_stream(obj: Any, method: str) -> bool:
    return not isinstance(obj, (str, bytes, os.PathLike)) and callable(getattr(obj, method, None))


@contextmanager
def _spool_dir() -> Iterator[str]:
    """A private temporary directory (mkdtemp), removed afterwards: floe
    created it, so removing it is safe."""
    d = tempfile.mkdtemp(prefix="floe-spool-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def _readable(archive: ArchiveArg) -> Iterator[Union[bytes, PathArg]]:
    """A path for an archive argument; a binary file object is first copied
    into a temporary file."""
    if not _is_stream(archive, "read"):
        yield archive  # type: ignore[misc]
        return
    with _spool_dir() as d:
        path = os.path.join(d, "input.floe")
        with open(path, "wb") as f:
            shutil.copyfileobj(archive, f, 1 << 20)  # type: ignore[arg-type]
        yield path


def _archive_name(archive: ArchiveArg) -> str:
    if _is_stream(archive, "read") or _is_stream(archive, "write"):
        return str(getattr(archive, "name", "<stream>"))
    name = os.fspath(archive)  # type: ignore[arg-type]
    return os.fsdecode(name)


def _cstr(s: str, what: str) -> bytes:
    """A str as NUL-terminated UTF-8 for C."""
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str, not {type(s).__name__}")
    if "\0" in s:
        raise InvalidInputError(f"{what} contains a NUL character: {s!r}", Status.INVALID_ARGUMENT)
    return s.encode("utf-8")


def _names(keyspaces: Union[None, str, Sequence[str]]) -> Tuple[Any, int, Any]:
    """A C array of keyspace names (and its keep-alive), or (None, 0)."""
    if keyspaces is None:
        return None, 0, None
    if isinstance(keyspaces, str):
        keyspaces = [keyspaces]
    enc = [_cstr(k, "keyspace name") for k in keyspaces]
    arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
    return ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)), len(enc), (arr, enc)


def _nonneg(name: str, v: Optional[int]) -> int:
    if v is None:
        return 0
    v = int(v)
    if v < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {v}")
    return v


def _bytes(name: str, b: Union[bytes, bytearray, memoryview]) -> bytes:
    if isinstance(b, bytes):
        return b
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    raise TypeError(f"{name} must be bytes-like, not {type(b).__name__}")


def _options(cls: Any, init: Any, **fields: Any) -> Any:
    """An option struct initialised by the library (``struct_size`` set to
    this module's size of it), then ``fields`` set."""
    o = cls()
    _check(init(ctypes.byref(o), ctypes.sizeof(cls)))
    for k, v in fields.items():
        setattr(o, k, v)
    return o


_URL = re.compile(r"^([A-Za-z0-9+.-]+)://")


def _local_only(p: PathArg, what: str, instead: str) -> None:
    """Refuses a URL other than file:// for ``what`` (which takes local files
    only), saying what takes URLs instead."""
    s = os.fsdecode(os.fspath(p)) if isinstance(p, (str, bytes, os.PathLike)) else ""
    m = _URL.match(s)
    if m and m.group(1).lower() != "file":
        raise InvalidInputError(
            f"{what} takes local paths only (a path or a file:// URL), not the URL {s}; {instead}",
            Status.INVALID_ARGUMENT,
        )


def _output_exists(e: "TargetExistsError", path: str, what: str) -> "TargetExistsError":
    """The library's refusal to overwrite, in Python's terms."""
    return TargetExistsError(
        f"{path} already exists; {what} does not overwrite it unless overwrite=True. "
        "Choose another path, or remove it first",
        e.status,
    )


def _write_summary(s: Any) -> WriteSummary:
    return WriteSummary(**{f: getattr(s, f) for f, _ in s._fields_})


# ---------------------------------------------------------------- whole operations


def version() -> Dict[str, Any]:
    """floe's version, the archive format it reads and writes, and the engine."""
    v = _n.floe_version()
    return {
        "version": v.version.decode(),
        "format_major": v.format_major,
        "format_minor": v.format_minor,
        "engine": v.engine.decode(),
        "engine_version": v.engine_version.decode(),
        "description": v.description.decode(),
        "library": _n.library_path,
    }


def export(
    db_path: PathArg,
    archive_path: ArchiveArg,
    *,
    level: Optional[int] = None,
    threads: Optional[int] = None,
    keyspaces: Union[None, str, Sequence[str]] = None,
    progress: Optional[ProgressCallback] = None,
    block_size: Optional[int] = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Exports the fjall database in ``db_path`` into ``archive_path``: a
    path (written atomically: nothing appears there unless the export
    succeeds), a ``file://`` or ``s3://`` URL, or a binary file object
    opened for writing (the archive is built in a temporary file, then
    copied into it). Ctrl-C cancels it; see the module docs.

    An existing file at ``archive_path`` raises :class:`TargetExistsError`
    (before the database is opened) unless ``overwrite=True``; a file that
    appears while the export runs is never replaced. (File objects, devices,
    FIFOs and ``s3://`` objects are written whatever ``overwrite`` says.)"""
    if _is_stream(archive_path, "write"):
        with _spool_dir() as d:
            path = os.path.join(d, "output.floe")
            s = export(db_path, path, level=level, threads=threads, keyspaces=keyspaces, progress=progress, block_size=block_size)
            with open(path, "rb") as f:
                shutil.copyfileobj(f, archive_path, 1 << 20)  # type: ignore[arg-type]
            return s
    names, count, _keep = _names(keyspaces)
    opts = _options(
        _n.ExportOptions,
        _n.floe_export_options_default,
        level=0 if level is None else int(level),
        threads=_nonneg("threads", threads),
        block_size=_nonneg("block_size", block_size),
        keyspaces=names,
        keyspace_count=count,
        overwrite=bool(overwrite),
    )
    db, archive = _path(db_path), _path(archive_path)  # type: ignore[arg-type]
    bridge = _Bridge(progress)
    out = _n.ExportSummary()
    try:
        _run("export", bridge, lambda: _n.floe_export(db, archive, ctypes.byref(opts), bridge.c, None, ctypes.byref(out)))
    except TargetExistsError as e:
        raise _output_exists(e, _archive_name(archive_path), "export()") from None
    w = _write_summary(out.write)
    return ExportSummary(**dataclasses.asdict(w), snapshot_seqno=out.snapshot_seqno, seconds=out.elapsed_seconds)


def import_archive(
    archive_path: ArchiveArg,
    db_path: PathArg,
    *,
    threads: Optional[int] = None,
    keyspaces: Union[None, str, Sequence[str]] = None,
    progress: Optional[ProgressCallback] = None,
    replace: bool = False,
) -> ImportSummary:
    """Imports ``archive_path`` (a path, URL or binary file object) into a
    new fjall database at ``db_path`` (built aside and moved into place; on
    failure or cancellation nothing is left). A non-empty existing target
    raises :class:`TargetExistsError` unless ``replace=True``."""
    names, count, _keep = _names(keyspaces)
    opts = _options(
        _n.ImportOptions,
        _n.floe_import_options_default,
        threads=_nonneg("threads", threads),
        replace=bool(replace),
        keyspaces=names,
        keyspace_count=count,
    )
    db = _path(db_path)
    with _readable(archive_path) as src:
        archive = _path(src)
        bridge = _Bridge(progress)
        out = _n.ImportSummary()
        try:
            _run(
                "import", bridge, lambda: _n.floe_import(archive, db, ctypes.byref(opts), bridge.c, None, ctypes.byref(out))
            )
        except TargetExistsError as e:
            raise TargetExistsError(
                f"target {os.fsdecode(db)} exists and is not empty; import_archive() replaces it (atomically) only with "
                "replace=True",
                e.status,
            ) from None
    notes = _n.take_string(out.warnings)
    return ImportSummary(
        keyspaces=out.keyspaces,
        records=out.records,
        raw_bytes=out.raw_bytes,
        seconds=out.elapsed_seconds,
        warnings=notes.split("\n") if notes else [],
    )


def _report(archive: str, rep: Any, seconds: float) -> VerifyReport:
    return VerifyReport(
        ok=True,
        archive=archive,
        quick=bool(rep.quick),
        archive_bytes=rep.archive_bytes,
        keyspaces=rep.keyspaces,
        blocks=rep.blocks,
        records=rep.records,
        raw_bytes=rep.raw_bytes,
        seconds=seconds,
    )


def verify(
    archive_path: ArchiveArg,
    *,
    quick: bool = False,
    threads: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> VerifyReport:
    """Verifies the archive (every checksum, block, key order and total; with
    ``quick`` checksums and structure only). Raises on any problem; returns
    the fields of ``floe verify --json``."""
    n = _nonneg("threads", threads)
    with _readable(archive_path) as src:
        path = _path(src)
        bridge = _Bridge(progress)
        rep = _n.VerifyReport()
        t = time.monotonic()
        _run("verify", bridge, lambda: _n.floe_verify(path, bool(quick), n, bridge.c, None, ctypes.byref(rep)))
    return _report(_archive_name(archive_path), rep, time.monotonic() - t)


def inspect(archive_path: ArchiveArg) -> Dict[str, Any]:
    """What an archive holds: the document of ``floe inspect --json``.
    (Not exported by ``from floe import *``; also :func:`inspect_archive`.)"""
    out = ctypes.c_void_p()
    with _readable(archive_path) as src:
        _check(_n.floe_inspect_json(_path(src), ctypes.byref(out)))
    return json.loads(_n.take_string(out.value) or "null")


inspect_archive = inspect


# ---------------------------------------------------------------- reader


_C = TypeVar("_C", bound="_Closing")


class _Closing:
    """A context manager around a handle that ``close()`` releases (also
    when garbage-collected)."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class Reader(_Closing):
    """Reads an archive record by record (memory-mapped; memory bounded by
    one block). Use as a context manager::

        with floe.Reader("db.floe") as r:
            for ks in r.keyspaces(): ...
            for keyspace, key, value in r: ...
            for key, value in r.records("accounts"): ...
            if "accounts" in r: ...          # the keyspace table, no scan

            r.get("accounts", b"k1")         # in place: None if absent
            r["accounts"][b"k1"]             # KeyError if absent
            for key, value in r.scan("accounts", prefix=b"user:"): ...
            for d in r.diff(other_reader): ...

    Iteration yields records in archive order (keyspaces by ascending name,
    keys ascending) and checks them as ``verify`` does: damage raises
    :class:`CorruptArchiveError`. ``archive_path`` is a local path or
    ``file://`` URL (memory-mapped), or an ``s3://`` URL (read by ranges: a
    query reads only the blocks it needs). For a stream, read it into memory
    and use :meth:`from_bytes`.
    """

    def __init__(self, archive_path: PathArg) -> None:
        self._h: Optional[ctypes.c_void_p] = None
        self._names: Optional[List[str]] = None
        h = ctypes.c_void_p()
        _check(_n.floe_reader_open(_path(archive_path), ctypes.byref(h)))
        self._h = h
        self.name = _archive_name(archive_path)

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview]) -> "Reader":
        """Opens an archive held in memory (the bytes are copied)."""
        data = _bytes("data", data)
        self = cls.__new__(cls)
        self._h = None
        self._names = None
        h = ctypes.c_void_p()
        _check(_n.floe_reader_open_buffer(data, len(data), ctypes.byref(h)))
        self._h = h
        self.name = "<buffer>"
        return self

    def _handle(self) -> ctypes.c_void_p:
        if self._h is None:
            raise InvalidStateError("the reader is closed", Status.INVALID_STATE)
        return self._h

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Releases the archive. Iterators already started stay usable."""
        h, self._h = self._h, None
        if h is not None:
            _n.floe_reader_free(h)


    # The header (format-spec §4), without JSON.

    def _header(self, fn: Any, ctype: Any) -> Any:
        v = ctype()
        _check(fn(self._handle(), ctypes.byref(v)))
        return v.value

    def _header_str(self, fn: Any) -> str:
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        _check(fn(self._handle(), ctypes.byref(p), ctypes.byref(n)))
        return ctypes.string_at(p.value, n.value).decode("utf-8") if n.value else ""

    @property
    def format_version(self) -> Tuple[int, int]:
        """The archive's format version ``(major, minor)``; the minor may be
        newer than the one this floe writes."""
        major, minor = ctypes.c_uint16(), ctypes.c_uint16()
        _check(_n.floe_reader_format_version(self._handle(), ctypes.byref(major), ctypes.byref(minor)))
        return major.value, minor.value

    @property
    def optional_features(self) -> int:
        """The header's bit set of optional features (format 1.0 defines none)."""
        return int(self._header(_n.floe_reader_optional_features, ctypes.c_uint64))

    @property
    def level(self) -> int:
        """The zstd level the archive was written with."""
        return int(self._header(_n.floe_reader_level, ctypes.c_int32))

    @property
    def block_target(self) -> int:
        """The raw block size in bytes the writer aimed for."""
        return int(self._header(_n.floe_reader_block_target, ctypes.c_uint32))

    @property
    def snapshot_seqno(self) -> int:
        """The engine's sequence number of the exported snapshot (0 for an
        archive made by :class:`Writer`)."""
        return int(self._header(_n.floe_reader_snapshot_seqno, ctypes.c_uint64))

    @property
    def created_unix(self) -> int:
        """When the archive was made, in seconds since the Unix epoch
        (``SOURCE_DATE_EPOCH`` when that was set)."""
        return int(self._header(_n.floe_reader_created_unix, ctypes.c_int64))

    @property
    def engine(self) -> str:
        """The source engine, e.g. ``"fjall"`` (``""`` for a :class:`Writer`'s archive)."""
        return self._header_str(_n.floe_reader_engine)

    @property
    def engine_version(self) -> str:
        """The source engine's version, e.g. ``"3.1.13"``."""
        return self._header_str(_n.floe_reader_engine_version)

    @property
    def writer(self) -> str:
        """The software that wrote the archive, e.g. ``"floe 0.1.0"``."""
        return self._header_str(_n.floe_reader_writer)

    def _count(self) -> int:
        n = ctypes.c_size_t()
        _check(_n.floe_reader_keyspace_count(self._handle(), ctypes.byref(n)))
        return n.value

    def _info(self, i: int) -> Any:
        info = _n.KeyspaceInfo()
        _check(_n.floe_reader_keyspace(self._handle(), i, ctypes.byref(info)))
        return info

    def _keyspace_names(self) -> List[str]:
        if self._names is None:
            names = []
            for i in range(self._count()):
                info = self._info(i)
                names.append(ctypes.string_at(info.name, info.name_len).decode("utf-8"))
            self._names = names
        return self._names

    def keyspace_names(self) -> List[str]:
        """The keyspaces' names, in archive order (ascending)."""
        return list(self._keyspace_names())

    def __contains__(self, keyspace_name: object) -> bool:
        """``"accounts" in reader``: whether the archive has that keyspace
        (a look-up in the keyspace table; no record is read)."""
        if not isinstance(keyspace_name, str) or "\0" in keyspace_name:
            return False
        idx = ctypes.c_size_t()
        st = _n.floe_reader_find_keyspace(self._handle(), keyspace_name.encode("utf-8"), ctypes.byref(idx))
        if st == Status.INVALID_ARGUMENT:
            return False
        _check(st)
        return True

    def keyspaces(self) -> List[KeyspaceInfo]:
        """The keyspaces, in archive order, with their totals, smallest and
        largest keys and options (as ``inspect`` shows them)."""
        out = []
        for i in range(self._count()):
            info = self._info(i)
            opts = ctypes.c_void_p()
            _check(_n.floe_reader_keyspace_options_json(self._handle(), i, ctypes.byref(opts)))
            out.append(
                KeyspaceInfo(
                    name=ctypes.string_at(info.name, info.name_len).decode("utf-8"),
                    records=info.records,
                    key_bytes=info.key_bytes,
                    value_bytes=info.value_bytes,
                    raw_bytes=info.raw_bytes,
                    compressed_bytes=info.compressed_bytes,
                    blocks=info.blocks,
                    first_key=ctypes.string_at(info.first_key, info.first_key_len) if info.first_key_len else b"",
                    last_key=ctypes.string_at(info.last_key, info.last_key_len) if info.last_key_len else b"",
                    options=json.loads(_n.take_string(opts.value) or "null"),
                )
            )
        return out

    def _iterate(self, it: ctypes.c_void_p, names: List[str]) -> Iterator[Tuple[str, bytes, bytes]]:
        rec = _n.Record()
        string_at = ctypes.string_at
        try:
            while True:
                st = _n.floe_iter_next(it, ctypes.byref(rec))
                if st == Status.DONE:
                    return
                _check(st)
                key = string_at(rec.key, rec.key_len)
                value = string_at(rec.value, rec.value_len) if rec.value_len else b""
                yield names[rec.keyspace], key, value
        finally:
            _n.floe_iter_free(it)

    def __iter__(self) -> Iterator[Tuple[str, bytes, bytes]]:
        """Every record as (keyspace_name, key, value), in archive order."""
        names = self._keyspace_names()
        it = ctypes.c_void_p()
        _check(_n.floe_reader_iter_all(self._handle(), ctypes.byref(it)))
        return self._iterate(it, names)

    def records(self, keyspace_name: str) -> Iterator[Tuple[bytes, bytes]]:
        """The records of one keyspace as (key, value), in key order.
        Raises :class:`InvalidInputError` if there is no such keyspace."""
        names = self._keyspace_names()
        idx = ctypes.c_size_t()
        _check(_n.floe_reader_find_keyspace(self._handle(), _cstr(keyspace_name, "keyspace name"), ctypes.byref(idx)))
        it = ctypes.c_void_p()
        _check(_n.floe_reader_iter_keyspace(self._handle(), idx.value, ctypes.byref(it)))
        return ((k, v) for _ks, k, v in self._iterate(it, names))

    def inspect(self) -> Dict[str, Any]:
        """The ``floe inspect --json`` document of this archive."""
        out = ctypes.c_void_p()
        _check(_n.floe_reader_inspect_json(self._handle(), ctypes.byref(out)))
        return json.loads(_n.take_string(out.value) or "null")

    def verify(
        self, *, quick: bool = False, threads: Optional[int] = None, progress: Optional[ProgressCallback] = None
    ) -> VerifyReport:
        """Verifies this archive, as :func:`verify` (Ctrl-C cancels it)."""
        h = self._handle()
        n = _nonneg("threads", threads)
        bridge = _Bridge(progress)
        rep = _n.VerifyReport()
        t = time.monotonic()
        _run("verify", bridge, lambda: _n.floe_reader_verify(h, bool(quick), n, bridge.c, None, ctypes.byref(rep)))
        return _report(self.name, rep, time.monotonic() - t)

    # Queries in place.

    def get(self, keyspace_name: str, key: Union[bytes, bytearray, memoryview]) -> Optional[bytes]:
        """The value of ``key`` in the keyspace, or ``None`` if it has no such
        key; only the blocks that can hold the key are read. Raises
        :class:`InvalidInputError` (naming the keyspaces there are) if the
        archive has no such keyspace."""
        key = _bytes("key", key)
        v, n, found = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_bool()
        _check(
            _n.floe_reader_get(
                self._handle(),
                _cstr(keyspace_name, "keyspace name"),
                key,
                len(key),
                ctypes.byref(v),
                ctypes.byref(n),
                ctypes.byref(found),
            )
        )
        if not found.value:
            return None
        try:
            return ctypes.string_at(v.value, n.value) if n.value else b""
        finally:
            _n.floe_bytes_free(v.value, n.value)

    def scan(
        self,
        keyspace_name: str,
        prefix: Optional[Union[bytes, bytearray, memoryview]] = None,
        start: Optional[Union[bytes, bytearray, memoryview]] = None,
        end: Optional[Union[bytes, bytearray, memoryview]] = None,
    ) -> Iterator[Tuple[bytes, bytes]]:
        """The records of one keyspace as (key, value), in key order: those
        whose keys begin with ``prefix``, or lie in ``[start, end)`` (start
        inclusive, end exclusive; ``None`` is unbounded). Reading begins at
        the block that can hold the first key and stops past the range.
        ``prefix`` together with ``start`` or ``end`` is a ValueError."""
        if prefix is not None and (start is not None or end is not None):
            raise ValueError("scan() takes either prefix or start/end, not both")
        name = _cstr(keyspace_name, "keyspace name")
        it = ctypes.c_void_p()
        if prefix is not None:
            p = _bytes("prefix", prefix)
            _check(_n.floe_reader_scan_prefix(self._handle(), name, p, len(p), ctypes.byref(it)))
        else:
            s = None if start is None else _bytes("start", start)
            e = None if end is None else _bytes("end", end)
            _check(
                _n.floe_reader_scan(
                    self._handle(),
                    name,
                    s,
                    0 if s is None else len(s),
                    e,
                    0 if e is None else len(e),
                    ctypes.byref(it),
                )
            )
        return ((k, v) for _ks, k, v in self._iterate(it, self._keyspace_names()))

    def diff(self, other: "Reader", keyspaces: Optional[Sequence[str]] = None) -> "Diff":
        """Compares this archive (the old one) with ``other`` (the new one),
        streaming, as ``floe diff`` does: iterate the result for the
        :class:`Difference` of every key added, removed or changed in the
        keyspaces both archives hold; then its ``summary`` (as ``floe diff
        --json`` prints it) tells keyspaces in one archive only and changed
        options too. ``keyspaces`` limits the comparison to those names."""
        if not isinstance(other, Reader):
            raise TypeError(f"diff() needs a Reader, not {type(other).__name__}")
        names = None if keyspaces is None else [_cstr(k, "keyspace name") for k in keyspaces]
        arr = None if names is None else (ctypes.c_char_p * max(len(names), 1))(*names)
        d = ctypes.c_void_p()
        _check(
            _n.floe_reader_diff(
                self._handle(), other._handle(), arr, 0 if names is None else len(names), ctypes.byref(d)
            )
        )
        return Diff(d)

    def __getitem__(self, keyspace_name: str) -> "Keyspace":
        """``reader["users"]``: a view of one keyspace for look-ups
        (``reader["users"][b"alice"]``). KeyError if there is no such keyspace."""
        if keyspace_name not in self:
            raise KeyError(keyspace_name)
        return Keyspace(self, keyspace_name)


class Keyspace:
    """One keyspace of a :class:`Reader` (``reader["users"]``), read in place::

        value = reader["users"][b"alice"]       # KeyError if absent
        value = reader["users"].get(b"alice")   # None if absent
        b"alice" in reader["users"]
        for key, value in reader["users"].scan(prefix=b"user:"): ...
    """

    def __init__(self, reader: Reader, name: str) -> None:
        self.reader = reader
        self.name = name

    def get(self, key: Union[bytes, bytearray, memoryview], default: Optional[bytes] = None) -> Optional[bytes]:
        v = self.reader.get(self.name, key)
        return default if v is None else v

    def __getitem__(self, key: Union[bytes, bytearray, memoryview]) -> bytes:
        v = self.reader.get(self.name, key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            return False
        return self.reader.get(self.name, key) is not None

    def scan(
        self,
        prefix: Optional[Union[bytes, bytearray, memoryview]] = None,
        start: Optional[Union[bytes, bytearray, memoryview]] = None,
        end: Optional[Union[bytes, bytearray, memoryview]] = None,
    ) -> Iterator[Tuple[bytes, bytes]]:
        """As :meth:`Reader.scan` on this keyspace."""
        return self.reader.scan(self.name, prefix=prefix, start=start, end=end)

    def __iter__(self) -> Iterator[bytes]:
        """The keys, in order."""
        return (k for k, _v in self.reader.records(self.name))

    def items(self) -> Iterator[Tuple[bytes, bytes]]:
        return self.reader.records(self.name)

    def __repr__(self) -> str:
        return f"<floe.Keyspace {self.name!r} of {self.reader.name!r}>"


class Diff(_Closing):
    """A comparison of two archives under way (:meth:`Reader.diff`): an
    iterator of :class:`Difference`, in keyspace then key order. After it is
    exhausted, ``summary`` is the summary ``floe diff --json`` prints
    (``{"same": bool, "keyspaces": [...]}``, one entry per keyspace with its
    ``presence``, ``options_changed`` and counts) and ``same`` whether the
    archives hold the same data; reading either first consumes the remaining
    differences. Use as a context manager, or :meth:`close`, to stop early."""

    _CHANGES = {1: "added", 2: "removed", 3: "changed"}

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._h: Optional[ctypes.c_void_p] = handle
        self._summary: Optional[Dict[str, Any]] = None
        self._done = False
        self._rec = _n.Difference()

    def __iter__(self) -> "Diff":
        return self

    def __next__(self) -> Difference:
        if self._done:
            raise StopIteration
        if self._h is None:
            raise InvalidStateError("the diff is closed", Status.INVALID_STATE)
        rec = self._rec
        st = _n.floe_diff_next(self._h, ctypes.byref(rec))
        if st == Status.DONE:
            out = ctypes.c_void_p()
            _check(_n.floe_diff_summary_json(self._h, ctypes.byref(out)))
            self._summary = json.loads(_n.take_string(out.value) or "null")
            self._done = True
            self.close()
            raise StopIteration
        _check(st)
        return Difference(
            keyspace=ctypes.string_at(rec.keyspace, rec.keyspace_len).decode("utf-8"),
            key=ctypes.string_at(rec.key, rec.key_len),
            change=self._CHANGES.get(rec.change, str(rec.change)),
        )

    @property
    def summary(self) -> Dict[str, Any]:
        if not self._done:
            for _ in self:
                pass
        assert self._summary is not None
        return self._summary

    @property
    def same(self) -> bool:
        return bool(self.summary["same"])

    def close(self) -> None:
        """Stops the comparison (if still running) and releases it."""
        h, self._h = self._h, None
        if h is not None:
            _n.floe_diff_free(h)



# ---------------------------------------------------------------- writer


class Writer:
    """Writes an archive record by record. Use as a context manager: a
    normal exit finishes the archive (atomically: nothing appears at the
    path before), an exception aborts it and leaves no file::

        with floe.Writer("out.floe") as w:
            w.begin_keyspace("accounts")
            w.put(b"k1", b"v1")

    Keyspaces may be begun in any order, each once; keys within a keyspace
    must be strictly ascending (bytes order). The result is a normal archive
    that ``floe import`` loads. ``summary`` holds the result of finish().
    The archive is a local file (the C writer takes a path); to send it to a
    stream, write it to a temporary file and copy that.

    An existing file at ``archive_path`` raises :class:`TargetExistsError`
    unless ``overwrite=True`` (then it is replaced when the archive is
    finished); a file that appears there before :meth:`finish` makes the
    finish raise it, leaving that file alone.
    """

    def __init__(
        self,
        archive_path: PathArg,
        *,
        level: Optional[int] = None,
        block_size: Optional[int] = None,
        overwrite: bool = False,
    ) -> None:
        self._h: Optional[ctypes.c_void_p] = None
        self._aborted = False
        self.summary: Optional[WriteSummary] = None
        self.path = _archive_name(archive_path)
        _local_only(
            archive_path,
            "Writer",
            "floe.export() writes s3:// URLs from a database; to upload records written here, write a local "
            "file and upload it",
        )
        opts = _options(
            _n.WriterOptions,
            _n.floe_writer_options_default,
            level=0 if level is None else int(level),
            block_size=_nonneg("block_size", block_size),
            overwrite=bool(overwrite),
        )
        h = ctypes.c_void_p()
        try:
            _check(_n.floe_writer_create(_path(archive_path), ctypes.byref(opts), ctypes.byref(h)))
        except TargetExistsError as e:
            raise _output_exists(e, self.path, "Writer") from None
        self._h = h

    def _handle(self) -> ctypes.c_void_p:
        if self._h is None:
            raise InvalidStateError("the writer is closed", Status.INVALID_STATE)
        return self._h

    def begin_keyspace(self, name: str, options: Union[None, str, Dict[str, Any]] = None) -> None:
        """Begins keyspace ``name``. ``options``: None (engine defaults), a
        dict or a JSON string with the keys of the ``options`` that
        ``inspect`` shows (e.g. ``{"kv_separation": True,
        "data_block_size": [8192]}``)."""
        cname = _cstr(name, "keyspace name")
        if options is not None and not isinstance(options, str):
            options = json.dumps(options)
        copts = _cstr(options, "options") if options is not None else None
        _check(_n.floe_writer_begin_keyspace(self._handle(), cname, copts))

    def put(self, key: Union[bytes, bytearray, memoryview], value: Union[bytes, bytearray, memoryview]) -> None:
        """Adds a record to the current keyspace."""
        key = _bytes("key", key)
        value = _bytes("value", value)
        _check(_n.floe_writer_put(self._handle(), key, len(key), value, len(value)))

    def finish(self) -> WriteSummary:
        """Completes the archive and returns its :class:`WriteSummary`."""
        out = _n.WriteSummary()
        try:
            _check(_n.floe_writer_finish(self._handle(), ctypes.byref(out)))
        except TargetExistsError as e:
            raise _output_exists(e, self.path, "Writer") from None
        self.summary = _write_summary(out)
        return self.summary

    def abort(self) -> None:
        """Abandons the archive; no file is left."""
        _check(_n.floe_writer_abort(self._handle()))
        self._aborted = True

    def close(self) -> None:
        """Frees the writer, aborting it if it was not finished."""
        h, self._h = self._h, None
        if h is not None:
            _n.floe_writer_free(h)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._h is not None and self.summary is None and not self._aborted:
                if exc_type is None:
                    self.finish()
                else:
                    _n.floe_writer_abort(self._h)
        finally:
            self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _check_library() -> None:
    v = _n.floe_version()
    lib = v.version.decode()
    want = __version__.split(".")[:2]
    if lib.split(".")[:2] != want:
        raise ImportError(f"floe {__version__} needs libfloe {'.'.join(want)}.x, but {_n.library_path} is {lib}")


_check_library()
