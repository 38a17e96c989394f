"""Loading libfloe and declaring its C ABI (include/floe.h) for ctypes.

The library is looked up, in order:

1. the path in the environment variable ``FLOE_LIBRARY`` (a file);
2. the copy bundled into this package when it was built (``pip install``
   copies ``target/release/libfloe.so`` of the repository, building it with
   cargo first if needed);
3. ``target/release/`` of the repository this package's source lives in
   (running from a source checkout, or an editable install), honouring
   ``CARGO_TARGET_DIR``;
4. the system's library search path (``ctypes.util.find_library("floe")``).

Everything declared here copies ``include/floe.h`` by hand; the test
``tests/test_abi.py`` parses the header and fails when the two drift apart
(status codes, struct fields and their C types, offsets and sizes as a C
compiler lays them out, and every function's parameter list).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from enum import IntEnum
from pathlib import Path
from typing import List, Optional, Tuple


class Status(IntEnum):
    """The C status codes (``enum floe_status`` in include/floe.h).

    Fixed numbers, append-only: a new code is only ever added at the end.
    ``Status.X`` is ``FLOE_X`` of the header."""

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
    INTERNAL = 14


class Phase(IntEnum):
    """``enum floe_phase``: which operation a progress report comes from."""

    EXPORT = 0
    IMPORT = 1
    VERIFY = 2


class Change(IntEnum):
    """``enum floe_change``: how a key differs between two archives."""

    ADDED = 1
    REMOVED = 2
    CHANGED = 3

if sys.platform == "darwin":
    LIBRARY_FILE = "libfloe.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "floe.dll"
else:
    LIBRARY_FILE = "libfloe.so"


def candidates() -> List[Path]:
    """Where libfloe is looked for, in order (see the module docstring)."""
    out = []
    env = os.environ.get("FLOE_LIBRARY")
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    out.append(here / LIBRARY_FILE)
    repo = here.parent.parent.parent  # ffi/python/floe -> repository root
    env_target = os.environ.get("CARGO_TARGET_DIR")
    target = Path(env_target) if env_target else repo / "target"
    if not target.is_absolute():
        target = repo / target
    out.append(target / "release" / LIBRARY_FILE)
    return out


def load() -> Tuple[ctypes.CDLL, str]:
    tried = []
    for path in candidates():
        tried.append(str(path))
        if path.is_file():
            return ctypes.CDLL(str(path)), str(path)
        if os.environ.get("FLOE_LIBRARY"):
            raise ImportError(f"FLOE_LIBRARY={path} does not name a file")
    found = ctypes.util.find_library("floe")
    if found:
        return ctypes.CDLL(found), found
    tried.append("the system library path")
    raise ImportError(
        "floe: cannot find libfloe; build it with `cargo build --release -p floe-ffi` "
        "in the floe repository, or set FLOE_LIBRARY to its path. Tried: " + ", ".join(tried)
    )


class VersionInfo(Structure):
    _fields_ = [
        ("version", c_char_p),
        ("major", c_uint32),
        ("minor", c_uint32),
        ("patch", c_uint32),
        ("format_major", c_uint16),
        ("format_minor", c_uint16),
        ("engine", c_char_p),
        ("engine_version", c_char_p),
        ("description", c_char_p),
    ]


class ProgressC(Structure):
    _fields_ = [
        ("phase", c_int),
        ("bytes_done", c_uint64),
        ("bytes_total", c_uint64),
        ("records_done", c_uint64),
    ]


PROGRESS_CALLBACK = CFUNCTYPE(c_int, c_void_p, POINTER(ProgressC))


class ExportOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("level", c_int32),
        ("threads", c_uint32),
        ("block_size", c_uint32),
        ("keyspaces", POINTER(c_char_p)),
        ("keyspace_count", c_size_t),
        ("overwrite", c_bool),
    ]


class ImportOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("threads", c_uint32),
        ("replace", c_bool),
        ("keyspaces", POINTER(c_char_p)),
        ("keyspace_count", c_size_t),
    ]


class WriteSummary(Structure):
    _fields_ = [
        ("archive_bytes", c_uint64),
        ("records", c_uint64),
        ("raw_bytes", c_uint64),
        ("key_bytes", c_uint64),
        ("value_bytes", c_uint64),
        ("blocks", c_uint64),
        ("keyspaces", c_uint64),
    ]


class ExportSummary(Structure):
    _fields_ = [
        ("write", WriteSummary),
        ("snapshot_seqno", c_uint64),
        ("elapsed_seconds", c_double),
    ]


class ImportSummary(Structure):
    _fields_ = [
        ("keyspaces", c_uint64),
        ("records", c_uint64),
        ("raw_bytes", c_uint64),
        ("elapsed_seconds", c_double),
        ("warnings", c_void_p),
    ]


class VerifyReport(Structure):
    _fields_ = [
        ("archive_bytes", c_uint64),
        ("keyspaces", c_uint64),
        ("blocks", c_uint64),
        ("records", c_uint64),
        ("raw_bytes", c_uint64),
        ("quick", c_bool),
    ]


class KeyspaceInfo(Structure):
    _fields_ = [
        ("name", c_void_p),
        ("name_len", c_size_t),
        ("records", c_uint64),
        ("key_bytes", c_uint64),
        ("value_bytes", c_uint64),
        ("raw_bytes", c_uint64),
        ("compressed_bytes", c_uint64),
        ("blocks", c_uint64),
        ("first_key", c_void_p),
        ("first_key_len", c_size_t),
        ("last_key", c_void_p),
        ("last_key_len", c_size_t),
    ]


class Record(Structure):
    _fields_ = [
        ("keyspace", c_size_t),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
    ]


class Difference(Structure):
    _fields_ = [
        ("keyspace", c_void_p),
        ("keyspace_len", c_size_t),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("change", c_int),
    ]


class WriterOptions(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("level", c_int32),
        ("block_size", c_uint32),
        ("overwrite", c_bool),
    ]


lib, library_path = load()

_status = c_int

#: Every declared function: name -> (restype, [argtypes]); tests/test_abi.py
#: compares it with the header's prototypes.
FUNCTIONS: dict = {}


def _declare(name: str, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    FUNCTIONS[name] = (restype, list(argtypes))
    return f


floe_version = _declare("floe_version", VersionInfo)
floe_last_error = _declare("floe_last_error", c_char_p)
floe_status_name = _declare("floe_status_name", c_char_p, c_int32)
floe_string_free = _declare("floe_string_free", None, c_void_p)

floe_export_options_default = _declare("floe_export_options_default", _status, POINTER(ExportOptions), c_size_t)
floe_import_options_default = _declare("floe_import_options_default", _status, POINTER(ImportOptions), c_size_t)
floe_export = _declare(
    "floe_export", _status, c_char_p, c_char_p, POINTER(ExportOptions), PROGRESS_CALLBACK, c_void_p, POINTER(ExportSummary)
)
floe_import = _declare(
    "floe_import", _status, c_char_p, c_char_p, POINTER(ImportOptions), PROGRESS_CALLBACK, c_void_p, POINTER(ImportSummary)
)
floe_verify = _declare(
    "floe_verify", _status, c_char_p, c_bool, c_uint32, PROGRESS_CALLBACK, c_void_p, POINTER(VerifyReport)
)
floe_inspect_json = _declare("floe_inspect_json", _status, c_char_p, POINTER(c_void_p))

floe_reader_open = _declare("floe_reader_open", _status, c_char_p, POINTER(c_void_p))
floe_reader_open_buffer = _declare("floe_reader_open_buffer", _status, c_char_p, c_size_t, POINTER(c_void_p))
floe_reader_free = _declare("floe_reader_free", None, c_void_p)
floe_reader_format_version = _declare(
    "floe_reader_format_version", _status, c_void_p, POINTER(c_uint16), POINTER(c_uint16)
)
floe_reader_optional_features = _declare("floe_reader_optional_features", _status, c_void_p, POINTER(c_uint64))
floe_reader_level = _declare("floe_reader_level", _status, c_void_p, POINTER(c_int32))
floe_reader_block_target = _declare("floe_reader_block_target", _status, c_void_p, POINTER(c_uint32))
floe_reader_snapshot_seqno = _declare("floe_reader_snapshot_seqno", _status, c_void_p, POINTER(c_uint64))
floe_reader_created_unix = _declare("floe_reader_created_unix", _status, c_void_p, POINTER(c_int64))
floe_reader_engine = _declare("floe_reader_engine", _status, c_void_p, POINTER(c_void_p), POINTER(c_size_t))
floe_reader_engine_version = _declare(
    "floe_reader_engine_version", _status, c_void_p, POINTER(c_void_p), POINTER(c_size_t)
)
floe_reader_writer = _declare("floe_reader_writer", _status, c_void_p, POINTER(c_void_p), POINTER(c_size_t))
floe_reader_keyspace_count = _declare("floe_reader_keyspace_count", _status, c_void_p, POINTER(c_size_t))
floe_reader_keyspace = _declare("floe_reader_keyspace", _status, c_void_p, c_size_t, POINTER(KeyspaceInfo))
floe_reader_find_keyspace = _declare("floe_reader_find_keyspace", _status, c_void_p, c_char_p, POINTER(c_size_t))
floe_reader_keyspace_options_json = _declare(
    "floe_reader_keyspace_options_json", _status, c_void_p, c_size_t, POINTER(c_void_p)
)
floe_reader_inspect_json = _declare("floe_reader_inspect_json", _status, c_void_p, POINTER(c_void_p))
floe_reader_verify = _declare(
    "floe_reader_verify", _status, c_void_p, c_bool, c_uint32, PROGRESS_CALLBACK, c_void_p, POINTER(VerifyReport)
)
floe_reader_iter_keyspace = _declare("floe_reader_iter_keyspace", _status, c_void_p, c_size_t, POINTER(c_void_p))
floe_reader_iter_all = _declare("floe_reader_iter_all", _status, c_void_p, POINTER(c_void_p))
floe_iter_next = _declare("floe_iter_next", _status, c_void_p, POINTER(Record))
floe_iter_free = _declare("floe_iter_free", None, c_void_p)
floe_reader_get = _declare(
    "floe_reader_get",
    _status,
    c_void_p,
    c_char_p,
    c_char_p,
    c_size_t,
    POINTER(c_void_p),
    POINTER(c_size_t),
    POINTER(c_bool),
)
floe_bytes_free = _declare("floe_bytes_free", None, c_void_p, c_size_t)
floe_reader_scan = _declare(
    "floe_reader_scan", _status, c_void_p, c_char_p, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_void_p)
)
floe_reader_scan_prefix = _declare(
    "floe_reader_scan_prefix", _status, c_void_p, c_char_p, c_char_p, c_size_t, POINTER(c_void_p)
)
floe_reader_diff = _declare(
    "floe_reader_diff", _status, c_void_p, c_void_p, POINTER(c_char_p), c_size_t, POINTER(c_void_p)
)
floe_diff_next = _declare("floe_diff_next", _status, c_void_p, POINTER(Difference))
floe_diff_summary_json = _declare("floe_diff_summary_json", _status, c_void_p, POINTER(c_void_p))
floe_diff_free = _declare("floe_diff_free", None, c_void_p)

floe_writer_options_default = _declare("floe_writer_options_default", _status, POINTER(WriterOptions), c_size_t)
floe_writer_create = _declare("floe_writer_create", _status, c_char_p, POINTER(WriterOptions), POINTER(c_void_p))
floe_writer_begin_keyspace = _declare("floe_writer_begin_keyspace", _status, c_void_p, c_char_p, c_char_p)
floe_writer_put = _declare("floe_writer_put", _status, c_void_p, c_char_p, c_size_t, c_char_p, c_size_t)
floe_writer_finish = _declare("floe_writer_finish", _status, c_void_p, POINTER(WriteSummary))
floe_writer_abort = _declare("floe_writer_abort", _status, c_void_p)
floe_writer_free = _declare("floe_writer_free", None, c_void_p)


def take_string(ptr: Optional[int]) -> Optional[str]:
    """Copies a string floe allocated for the caller, then frees it."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        floe_string_free(ptr)


#: The header's struct names -> their copies here (tests/test_abi.py).
STRUCTS = {
    "floe_version_info": VersionInfo,
    "floe_progress": ProgressC,
    "floe_export_options": ExportOptions,
    "floe_import_options": ImportOptions,
    "floe_write_summary": WriteSummary,
    "floe_export_summary": ExportSummary,
    "floe_import_summary": ImportSummary,
    "floe_verify_report": VerifyReport,
    "floe_keyspace_info": KeyspaceInfo,
    "floe_record": Record,
    "floe_writer_options": WriterOptions,
    "floe_difference": Difference,
}

#: The header's enums -> their copies here.
ENUMS = {"floe_status": Status, "floe_phase": Phase, "floe_change": Change}

#: The header's opaque handle types (passed as void pointers).
OPAQUE = ("floe_reader", "floe_iter", "floe_writer", "floe_diff")
