"""Python bindings for floe: export a fjall database into one checksummed,
zstd-framed archive file, import it back, verify, inspect, and read or write
archives record by record.

A thin layer over libfloe's C ABI (``include/floe.h``) through ctypes; see
``floe._native`` for how the library is found (``FLOE_LIBRARY``).

Progress callbacks receive a :class:`Progress` and may run on one of floe's
worker threads (never concurrently). Returning ``False`` cancels the
operation (:class:`CancelledError`); raising an exception cancels it and
re-raises that exception. A cancelled operation leaves nothing behind.
"""

import ctypes
import json
import os
import time
from collections import namedtuple

from . import _native as _n
from ._version import __version__

__all__ = [
    "__version__",
    "version",
    "export",
    "import_archive",
    "verify",
    "inspect",
    "Reader",
    "Writer",
    "Progress",
    "Status",
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
]


class Status:
    """The C status codes (``floe_status``); fixed numbers."""

    OK = 0
    DONE = 1
    NULL_ARGUMENT = 2
    INVALID_UTF8 = 3
    INVALID_ARGUMENT = 4
    INVALID_STATE = 5
    IO = 6
    CORRUPT_ARCHIVE = 7
    UNSUPPORTED_VERSION = 8
    DATABASE_LOCKED = 9
    ENGINE = 10
    TARGET_EXISTS = 11
    CANCELLED = 12
    PANIC = 13


# ---------------------------------------------------------------- errors


class FloeError(Exception):
    """Base class of every floe error. ``status`` is the C status code,
    ``status_name`` its name and ``message`` floe's description."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self):
        return _n.floe_status_name(self.status if self.status is not None else -1).decode()


class InvalidInputError(FloeError, ValueError):
    """An invalid argument: keys not strictly ascending, a duplicate, empty or
    oversized key, an unknown keyspace or option, a bad path string..."""

    status = Status.INVALID_ARGUMENT


class InvalidStateError(FloeError):
    """The object cannot do this now (closed reader, finished or aborted
    writer, put before begin_keyspace, keyspace begun twice)."""

    status = Status.INVALID_STATE


class FloeIOError(FloeError, OSError):
    """An operating-system I/O error (missing file, permissions, disk full)."""

    status = Status.IO


class CorruptArchiveError(FloeError):
    """The archive is damaged, truncated or not a floe archive."""

    status = Status.CORRUPT_ARCHIVE


class UnsupportedVersionError(FloeError):
    """The archive needs a newer floe (format version or required feature)."""

    status = Status.UNSUPPORTED_VERSION


class DatabaseLockedError(FloeError):
    """The database is open in another process."""

    status = Status.DATABASE_LOCKED


class EngineError(FloeError):
    """The fjall engine failed (including: the path is not a fjall database)."""

    status = Status.ENGINE


class TargetExistsError(FloeError):
    """The import target exists and is not empty (pass ``replace=True``)."""

    status = Status.TARGET_EXISTS


class CancelledError(FloeError):
    """The progress callback returned ``False``; nothing was left behind."""

    status = Status.CANCELLED


class PanicError(FloeError):
    """floe panicked (a bug); the panic was contained."""

    status = Status.PANIC


_ERRORS = {
    Status.NULL_ARGUMENT: InvalidInputError,
    Status.INVALID_UTF8: InvalidInputError,
    Status.INVALID_ARGUMENT: InvalidInputError,
    Status.INVALID_STATE: InvalidStateError,
    Status.IO: FloeIOError,
    Status.CORRUPT_ARCHIVE: CorruptArchiveError,
    Status.UNSUPPORTED_VERSION: UnsupportedVersionError,
    Status.DATABASE_LOCKED: DatabaseLockedError,
    Status.ENGINE: EngineError,
    Status.TARGET_EXISTS: TargetExistsError,
    Status.CANCELLED: CancelledError,
    Status.PANIC: PanicError,
}


def _error(status):
    """The exception for a failed call; reads floe's (thread-local) last error."""
    message = (_n.floe_last_error() or b"").decode("utf-8", "replace")
    cls = _ERRORS.get(status, FloeError)
    if not message:
        message = _n.floe_status_name(status).decode()
    return cls(message, status)


def _check(status, bridge=None):
    if status in (Status.OK, Status.DONE):
        return status
    err = _error(status)
    if status == Status.CANCELLED and bridge is not None and bridge.error is not None:
        raise bridge.error from err
    raise err


# ---------------------------------------------------------------- helpers

Progress = namedtuple("Progress", ["phase", "bytes_done", "bytes_total", "records_done"])
Progress.__doc__ = """A progress report: ``phase`` is "export", "import" or "verify";
``bytes_total`` is 0 when not known in advance."""

_PHASES = {0: "export", 1: "import", 2: "verify"}


class _Bridge:
    """Adapts a Python progress callable to the C callback."""

    def __init__(self, fn):
        self.fn = fn
        self.error = None
        self.c = _n.PROGRESS_CALLBACK(self._call) if fn is not None else _n.PROGRESS_CALLBACK()

    def _call(self, _user_data, p):
        try:
            p = p.contents
            info = Progress(_PHASES.get(p.phase, str(p.phase)), p.bytes_done, p.bytes_total, p.records_done)
            return 1 if self.fn(info) is False else 0
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller after cancelling
            self.error = e
            return 1


def _path(p):
    b = os.fsencode(os.fspath(p))
    if b"\0" in b:
        raise InvalidInputError(f"path contains a NUL byte: {p!r}", Status.INVALID_ARGUMENT)
    return b


def _cstr(s, what):
    """A str as NUL-terminated UTF-8 for C."""
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str, not {type(s).__name__}")
    if "\0" in s:
        raise InvalidInputError(f"{what} contains a NUL character: {s!r}", Status.INVALID_ARGUMENT)
    return s.encode("utf-8")


def _names(keyspaces):
    """A C array of keyspace names (and its keep-alive), or (None, 0)."""
    if keyspaces is None:
        return None, 0, None
    if isinstance(keyspaces, str):
        keyspaces = [keyspaces]
    enc = [_cstr(k, "keyspace name") for k in keyspaces]
    arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
    return ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)), len(enc), (arr, enc)


def _nonneg(name, v):
    if v is None:
        return 0
    v = int(v)
    if v < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {v}")
    return v


def _bytes(name, b):
    if isinstance(b, bytes):
        return b
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    raise TypeError(f"{name} must be bytes-like, not {type(b).__name__}")


def _summary(s):
    return {f: getattr(s, f) for f, _ in s._fields_}


# ---------------------------------------------------------------- whole operations


def version():
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


def export(db_path, archive_path, *, level=None, threads=None, keyspaces=None, progress=None, block_size=None):
    """Exports the fjall database in ``db_path`` into ``archive_path``
    (written atomically). Returns a summary dict: archive_bytes, records,
    raw_bytes, key_bytes, value_bytes, blocks, keyspaces, snapshot_seqno,
    elapsed_seconds."""
    names, count, _keep = _names(keyspaces)
    opts = _n.ExportOptions(
        level=0 if level is None else int(level),
        threads=_nonneg("threads", threads),
        block_size=_nonneg("block_size", block_size),
        keyspaces=names,
        keyspace_count=count,
    )
    bridge = _Bridge(progress)
    out = _n.ExportSummary()
    st = _n.floe_export(_path(db_path), _path(archive_path), ctypes.byref(opts), bridge.c, None, ctypes.byref(out))
    _check(st, bridge)
    d = _summary(out.write)
    d["snapshot_seqno"] = out.snapshot_seqno
    d["elapsed_seconds"] = out.elapsed_seconds
    return d


def import_archive(archive_path, db_path, *, threads=None, keyspaces=None, progress=None, replace=False):
    """Imports ``archive_path`` into a new fjall database at ``db_path``
    (built aside and moved into place). Returns a summary dict: keyspaces,
    records, raw_bytes, elapsed_seconds, warnings (a list of strings)."""
    names, count, _keep = _names(keyspaces)
    opts = _n.ImportOptions(threads=_nonneg("threads", threads), replace=bool(replace), keyspaces=names, keyspace_count=count)
    bridge = _Bridge(progress)
    out = _n.ImportSummary()
    st = _n.floe_import(_path(archive_path), _path(db_path), ctypes.byref(opts), bridge.c, None, ctypes.byref(out))
    _check(st, bridge)
    warnings = _n.take_string(out.warnings)
    return {
        "keyspaces": out.keyspaces,
        "records": out.records,
        "raw_bytes": out.raw_bytes,
        "elapsed_seconds": out.elapsed_seconds,
        "warnings": warnings.split("\n") if warnings else [],
    }


def _report(archive, rep, seconds):
    return {
        "ok": True,
        "archive": archive,
        "quick": bool(rep.quick),
        "archive_bytes": rep.archive_bytes,
        "keyspaces": rep.keyspaces,
        "blocks": rep.blocks,
        "records": rep.records,
        "raw_bytes": rep.raw_bytes,
        "seconds": seconds,
    }


def verify(archive_path, *, quick=False, threads=None, progress=None):
    """Verifies the archive (every checksum, block, key order and total; with
    ``quick`` checksums and structure only). Raises on any problem; returns
    the fields of ``floe verify --json``."""
    bridge = _Bridge(progress)
    rep = _n.VerifyReport()
    t = time.monotonic()
    st = _n.floe_verify(_path(archive_path), bool(quick), _nonneg("threads", threads), bridge.c, None, ctypes.byref(rep))
    _check(st, bridge)
    return _report(os.fspath(archive_path), rep, time.monotonic() - t)


def inspect(archive_path):
    """What an archive holds: the document of ``floe inspect --json``."""
    out = ctypes.c_void_p()
    _check(_n.floe_inspect_json(_path(archive_path), ctypes.byref(out)))
    return json.loads(_n.take_string(out.value))


# ---------------------------------------------------------------- reader


class Reader:
    """Reads an archive record by record (memory-mapped; memory bounded by
    one block). Use as a context manager::

        with floe.Reader("db.floe") as r:
            for ks in r.keyspaces(): ...
            for keyspace, key, value in r: ...
            for key, value in r.records("accounts"): ...

    Iteration yields records in archive order (keyspaces by ascending name,
    keys ascending) and checks them as ``verify`` does: damage raises
    :class:`CorruptArchiveError`.
    """

    def __init__(self, archive_path):
        self._h = None
        self._names = None
        h = ctypes.c_void_p()
        _check(_n.floe_reader_open(_path(archive_path), ctypes.byref(h)))
        self._h = h
        self.name = os.fspath(archive_path)

    @classmethod
    def from_bytes(cls, data):
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

    def _handle(self):
        if self._h is None:
            raise InvalidStateError("the reader is closed", Status.INVALID_STATE)
        return self._h

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Releases the archive. Iterators already started stay usable."""
        h, self._h = self._h, None
        if h is not None:
            _n.floe_reader_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _count(self):
        n = ctypes.c_size_t()
        _check(_n.floe_reader_keyspace_count(self._handle(), ctypes.byref(n)))
        return n.value

    def _info(self, i):
        info = _n.KeyspaceInfo()
        _check(_n.floe_reader_keyspace(self._handle(), i, ctypes.byref(info)))
        return info

    def _keyspace_names(self):
        if self._names is None:
            names = []
            for i in range(self._count()):
                info = self._info(i)
                names.append(ctypes.string_at(info.name, info.name_len).decode("utf-8"))
            self._names = names
        return self._names

    def keyspaces(self):
        """The keyspaces, in archive order: dicts with name, records,
        key_bytes, value_bytes, raw_bytes, compressed_bytes, blocks,
        first_key and last_key (bytes) and options (as ``inspect``)."""
        out = []
        for i in range(self._count()):
            info = self._info(i)
            opts = ctypes.c_void_p()
            _check(_n.floe_reader_keyspace_options_json(self._handle(), i, ctypes.byref(opts)))
            out.append(
                {
                    "name": ctypes.string_at(info.name, info.name_len).decode("utf-8"),
                    "records": info.records,
                    "key_bytes": info.key_bytes,
                    "value_bytes": info.value_bytes,
                    "raw_bytes": info.raw_bytes,
                    "compressed_bytes": info.compressed_bytes,
                    "blocks": info.blocks,
                    "first_key": ctypes.string_at(info.first_key, info.first_key_len) if info.first_key_len else b"",
                    "last_key": ctypes.string_at(info.last_key, info.last_key_len) if info.last_key_len else b"",
                    "options": json.loads(_n.take_string(opts.value)),
                }
            )
        return out

    def _iterate(self, it, names):
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

    def __iter__(self):
        """Every record as (keyspace_name, key, value), in archive order."""
        names = self._keyspace_names()
        it = ctypes.c_void_p()
        _check(_n.floe_reader_iter_all(self._handle(), ctypes.byref(it)))
        return self._iterate(it, names)

    def records(self, keyspace_name):
        """The records of one keyspace as (key, value), in key order.
        Raises :class:`InvalidInputError` if there is no such keyspace."""
        names = self._keyspace_names()
        idx = ctypes.c_size_t()
        _check(_n.floe_reader_find_keyspace(self._handle(), _cstr(keyspace_name, "keyspace name"), ctypes.byref(idx)))
        it = ctypes.c_void_p()
        _check(_n.floe_reader_iter_keyspace(self._handle(), idx.value, ctypes.byref(it)))
        return ((k, v) for _ks, k, v in self._iterate(it, names))

    def inspect(self):
        """The ``floe inspect --json`` document of this archive."""
        out = ctypes.c_void_p()
        _check(_n.floe_reader_inspect_json(self._handle(), ctypes.byref(out)))
        return json.loads(_n.take_string(out.value))

    def verify(self, *, quick=False, threads=None, progress=None):
        """Verifies this archive, as :func:`verify`."""
        bridge = _Bridge(progress)
        rep = _n.VerifyReport()
        t = time.monotonic()
        st = _n.floe_reader_verify(self._handle(), bool(quick), _nonneg("threads", threads), bridge.c, None, ctypes.byref(rep))
        _check(st, bridge)
        return _report(self.name, rep, time.monotonic() - t)


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
    """

    def __init__(self, archive_path, *, level=None, block_size=None):
        self._h = None
        self._aborted = False
        self.summary = None
        self.path = os.fspath(archive_path)
        opts = _n.WriterOptions(level=0 if level is None else int(level), block_size=_nonneg("block_size", block_size))
        h = ctypes.c_void_p()
        _check(_n.floe_writer_create(_path(archive_path), ctypes.byref(opts), ctypes.byref(h)))
        self._h = h

    def _handle(self):
        if self._h is None:
            raise InvalidStateError("the writer is closed", Status.INVALID_STATE)
        return self._h

    def begin_keyspace(self, name, options=None):
        """Begins keyspace ``name``. ``options``: None (engine defaults), a
        dict or a JSON string with the keys of the ``options`` that
        ``inspect`` shows (e.g. ``{"kv_separation": True,
        "data_block_size": [8192]}``)."""
        name = _cstr(name, "keyspace name")
        if options is not None and not isinstance(options, str):
            options = json.dumps(options)
        if options is not None:
            options = _cstr(options, "options")
        _check(_n.floe_writer_begin_keyspace(self._handle(), name, options))

    def put(self, key, value):
        """Adds a record to the current keyspace."""
        key = _bytes("key", key)
        value = _bytes("value", value)
        _check(_n.floe_writer_put(self._handle(), key, len(key), value, len(value)))

    def finish(self):
        """Completes the archive and returns its summary (archive_bytes,
        records, raw_bytes, key_bytes, value_bytes, blocks, keyspaces)."""
        out = _n.WriteSummary()
        _check(_n.floe_writer_finish(self._handle(), ctypes.byref(out)))
        self.summary = _summary(out)
        return self.summary

    def abort(self):
        """Abandons the archive; no file is left."""
        _check(_n.floe_writer_abort(self._handle()))
        self._aborted = True

    def close(self):
        """Frees the writer, aborting it if it was not finished."""
        h, self._h = self._h, None
        if h is not None:
            _n.floe_writer_free(h)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._h is not None and self.summary is None and not self._aborted:
                if exc_type is None:
                    self.finish()
                else:
                    _n.floe_writer_abort(self._h)
        finally:
            self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _check_library():
    v = _n.floe_version()
    lib = v.version.decode()
    want = __version__.split(".")[:2]
    if lib.split(".")[:2] != want:
        raise ImportError(f"floe {__version__} needs libfloe {'.'.join(want)}.x, but {_n.library_path} is {lib}")


_check_library()
