"""floe/_native.py copies include/floe.h by hand; these tests parse the header
and fail when the copy drifts: enum values, struct fields (names, order, C
types, and offsets and sizes as the C compiler lays them out), every
function's parameter and return types, and the exception class of every
status code."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import floe
from floe import _native as n
from conftest import REPO

HEADER = REPO / "include" / "floe.h"


def _source():
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return text


def header_enums():
    out = {}
    for name, body in re.findall(r"typedef enum (\w+) \{(.*?)\} \1;", _source(), re.S):
        members = {}
        for item in body.split(","):
            item = item.strip()
            if item:
                k, v = (s.strip() for s in item.split("="))
                members[k] = int(v, 0)
        out[name] = members
    return out


def _split_decl(decl):
    """'const char *const *keyspaces' -> ('const char *const *', 'keyspaces')."""
    decl = " ".join(decl.split())
    m = re.fullmatch(r"(.*?)\s*\b(\w+)", decl)
    assert m, decl
    return re.sub(r"\s*\*\s*", " *", m.group(1)).strip(), m.group(2)


def header_structs():
    out = {}
    for name, body in re.findall(r"typedef struct (\w+) \{(.*?)\} \1;", _source(), re.S):
        out[name] = [_split_decl(f) for f in body.split(";") if f.strip()]
    return out


def header_functions():
    text = _source()
    text = text[text.index('extern "C" {') :]
    out = {}
    for ret, name, params in re.findall(r"([\w ]+?[\s*]+)(floe_\w+)\(([^)]*)\);", text):
        args = [] if params.strip() in ("", "void") else [_split_decl(p) for p in params.split(",")]
        out[name] = (re.sub(r"\s*\*\s*", " *", " ".join(ret.split())).strip(), [t for t, _ in args])
    return out


SCALARS = {
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "uint32_t": ctypes.c_uint32,
    "uint16_t": ctypes.c_uint16,
    "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
    "bool": ctypes.c_bool,
    "double": ctypes.c_double,
    "int": ctypes.c_int,
}


def _is_pointer(t):
    return t in (ctypes.c_void_p, ctypes.c_char_p) or isinstance(t, type(ctypes.POINTER(ctypes.c_int)))


def matches(c_type, py_type):
    """Whether the ctypes type `py_type` is right for the C type `c_type`."""
    base = c_type.replace("const ", "").strip()
    if base == "void":
        return py_type is None
    if base in SCALARS:
        return py_type is SCALARS[base]
    if base.startswith("enum ") and "*" not in base:
        return py_type in (ctypes.c_int, ctypes.c_int32, ctypes.c_uint32)  # C enums are int-sized; test_layout checks
    if base == "floe_progress_callback":
        return py_type is n.PROGRESS_CALLBACK
    m = re.fullmatch(r"struct (\w+)", base)
    if m:
        return py_type is n.STRUCTS.get(m.group(1))
    if "*" in base:
        if not _is_pointer(py_type):
            return False
        target = base[: base.rindex("*")].strip()
        m = re.fullmatch(r"struct (\w+)", target)
        if m and m.group(1) in n.STRUCTS:  # a pointer to a struct we copy: exactly that
            return py_type is ctypes.POINTER(n.STRUCTS[m.group(1)])
        if m and m.group(1) in n.OPAQUE:  # a handle
            return py_type is ctypes.c_void_p
        if target in ("size_t", "uint64_t", "int64_t", "uint32_t", "int32_t", "uint16_t", "bool"):  # a scalar out-parameter
            return py_type is ctypes.POINTER(SCALARS[target])
        if target in ("char", "uint8_t"):  # a string or byte buffer
            return py_type in (ctypes.c_char_p, ctypes.c_void_p)
        if target.endswith("*"):  # a pointer to a pointer (out-parameters, name arrays)
            return py_type in (ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_char_p))
        return py_type is ctypes.c_void_p  # void *user_data
    return False


def test_header_is_parsed():
    assert set(header_enums()) == {"floe_status", "floe_phase", "floe_change"}
    assert set(header_structs()) >= {"floe_export_options", "floe_record"}
    assert "floe_export" in header_functions()


def test_enums_match_the_header():
    for name, members in header_enums().items():
        prefix = {"floe_status": "FLOE_", "floe_phase": "FLOE_PHASE_", "floe_change": "FLOE_CHANGE_"}[name]
        ours = {prefix + m.name: m.value for m in n.ENUMS[name]}
        assert ours == members, f"enum {name} differs from include/floe.h"


def test_status_matches_the_library():
    """The loaded library's own names of its codes (floe_status_name)."""
    lib = {}
    for code in range(256):
        name = n.floe_status_name(code).decode()
        if name != "FLOE_UNKNOWN_STATUS":
            lib[name] = code
    assert lib == {"FLOE_" + s.name: s.value for s in floe.Status}


def test_every_error_status_has_its_class():
    """Derived from the status table: a code added to the header (and so to
    Status) without an exception class fails here."""
    for s in floe.Status:
        if s in (floe.Status.OK, floe.Status.DONE):
            assert s not in floe._ERRORS
            continue
        cls = floe._ERRORS.get(s)
        assert cls is not None and cls is not floe.FloeError, f"no exception class for {s!r}"
        assert cls.__name__ in floe.__all__
        e = floe._make_error(s, "message")
        assert isinstance(e, cls) and e.status is s and e.status_name == f"FLOE_{s.name}"
    assert isinstance(floe.Status.IO, int) and floe.Status(6) is floe.Status.IO
    assert floe.Status.CORRUPT_ARCHIVE == 7 and repr(floe.Status(7)) == "<Status.CORRUPT_ARCHIVE: 7>"
    # A code of a newer library still gives a FloeError.
    e = floe._make_error(200, "from the future")
    assert type(e) is floe.FloeError and e.status == 200


def test_structs_match_the_header():
    structs = header_structs()
    assert set(structs) == set(n.STRUCTS), "a struct was added to or removed from include/floe.h"
    for name, fields in structs.items():
        ours = n.STRUCTS[name]._fields_
        assert [f for _, f in fields] == [f for f, _ in ours], f"struct {name}: field names or order differ"
        for (c_type, field), (_, py_type) in zip(fields, ours):
            assert matches(c_type, py_type), f"struct {name}.{field}: C {c_type!r} but ctypes {py_type}"


def test_functions_match_the_header():
    funcs = header_functions()
    assert set(funcs) == set(n.FUNCTIONS), "functions differ between include/floe.h and _native.py"
    for name, (ret, params) in funcs.items():
        py_ret, py_args = n.FUNCTIONS[name]
        assert matches(ret, py_ret), f"{name} returns C {ret!r} but ctypes {py_ret}"
        assert len(params) == len(py_args), f"{name}: {len(params)} parameters in the header, {len(py_args)} here"
        for i, (c_type, py_type) in enumerate(zip(params, py_args)):
            assert matches(c_type, py_type), f"{name} parameter {i}: C {c_type!r} but ctypes {py_type}"


def test_option_structs_can_grow():
    """ABI evolution (ffi/README.md): every option struct begins with
    struct_size and has an initialiser taking the caller's size."""
    structs = header_structs()
    funcs = header_functions()
    options = [name for name in structs if name.endswith("_options")]
    assert options, "no option structs found"
    for name in options:
        assert structs[name][0] == ("size_t", "struct_size"), f"{name} does not begin with size_t struct_size"
        init = funcs.get(f"{name}_default")
        assert init == ("enum floe_status", [f"struct {name} *", "size_t"]), f"{name}_default: {init}"


def test_matches_rejects_wrong_types():
    """The comparison itself can fail (so the tests above are not vacuous)."""
    assert not matches("uint32_t", ctypes.c_uint64)
    assert not matches("const struct floe_export_options *", ctypes.POINTER(n.ImportOptions))
    assert not matches("struct floe_reader *", ctypes.c_size_t)
    assert not matches("struct floe_write_summary", n.ExportSummary)
    assert not matches("bool", ctypes.c_int)
    assert not matches("int64_t *", ctypes.POINTER(ctypes.c_uint64))
    assert not matches("uint16_t *", ctypes.POINTER(ctypes.c_uint32))


def test_layout_matches_the_c_compiler(tmp_path):
    """sizeof and offsetof of every struct and enum, as the C compiler lays
    out include/floe.h, equal what ctypes computes."""
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        if os.environ.get("FLOE_REQUIRE_CC") == "1":
            pytest.fail(f"FLOE_REQUIRE_CC=1 but there is no C compiler {cc}")
        pytest.skip(f"no C compiler ({cc})")
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "floe.h"', "int main(void) {"]
    expect = []
    for name in header_enums():
        lines.append(f'  printf("enum {name} %zu\\n", sizeof(enum {name}));')
        expect.append(f"enum {name} {ctypes.sizeof(ctypes.c_int)}")
    for name, fields in header_structs().items():
        py = n.STRUCTS[name]
        lines.append(f'  printf("struct {name} %zu\\n", sizeof(struct {name}));')
        expect.append(f"struct {name} {ctypes.sizeof(py)}")
        for _, field in fields:
            lines.append(
                f'  printf("{name}.{field} %zu %zu\\n", offsetof(struct {name}, {field}), '
                f"sizeof(((struct {name} *)0)->{field}));"
            )
            d = getattr(py, field)
            expect.append(f"{name}.{field} {d.offset} {d.size}")
    lines += ["  return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", f"-I{REPO / 'include'}", str(src), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert got[:-1] == expect
