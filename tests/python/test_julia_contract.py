"""The contract between the Julia package (bindings/julia/DLShare) and the C library, checked
without Julia: Julia cannot be installed on the CI machines, so its own tests
(bindings/julia/DLShare/test/runtests.jl) run only where `julia` is on PATH.

- Every .jl file parses (tree-sitter-julia: no ERROR or MISSING node).
- Every `ccall` in the package names a function that libdlshare exports and include/dlshare.h
  declares, with the same number of arguments and the same types (and return type).
- Every struct the Julia code declares matches the C struct of the same name field for field
  (names, types, so offsets and size), and every constant matches the header's value.
- The Julia package's calls are replayed through ctypes, with argument types, struct layouts
  and constants taken from the Julia sources: wrapping a column-major array (Fortran-order byte
  strides, the array rooted by an id until the release callback runs once), turning F- and
  C-ordered tensors back into arrays (Array / PermutedDimsArray of the reversed dimensions),
  DLPack export and import, explain, and errors with status, name, message and reason.
"""

import ctypes
import pathlib
import re

import numpy as np
import pytest

import dlshare

REPO = pathlib.Path(__file__).resolve().parents[2]
JULIA_PACKAGE = REPO / "bindings" / "julia" / "DLShare"
LIB_JL = JULIA_PACKAGE / "src" / "LibDLShare.jl"
HEADER = REPO / "include" / "dlshare.h"
JULIA_FILES = sorted((REPO / "bindings" / "julia").rglob("*.jl")) + sorted(
    (REPO / "examples").rglob("*.jl"))


# ---- syntax --------------------------------------------------------------------------------


def julia_parser():
    try:
        import tree_sitter
        import tree_sitter_julia
    except ImportError as e:  # a failure, not a skip: scripts/setup.sh installs both
        pytest.fail(f"{e}: run scripts/setup.sh (pip install tree-sitter tree-sitter-julia)")
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))


def syntax_errors(parser, source: bytes):
    problems = []

    def walk(node):
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            kind = "missing " + node.type if node.is_missing else "syntax error"
            problems.append(f"{row + 1}:{col + 1}: {kind} near {node.text[:40]!r}")
            return
        if node.has_error:
            for child in node.children:
                walk(child)

    walk(parser.parse(source).root_node)
    return problems


def test_julia_files_are_found():
    names = {p.relative_to(REPO).as_posix() for p in JULIA_FILES}
    assert {"bindings/julia/DLShare/src/DLShare.jl", "bindings/julia/DLShare/src/LibDLShare.jl",
            "bindings/julia/DLShare/test/runtests.jl", "examples/readme/example.jl"} <= names


@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_julia_source_parses(path):
    problems = syntax_errors(julia_parser(), path.read_bytes())
    assert not problems, f"{path.relative_to(REPO)}:\n" + "\n".join(problems)


def test_syntax_check_catches_errors():
    parser = julia_parser()
    assert syntax_errors(parser, b"function f(x)\n    x + 1\n")  # missing end
    assert syntax_errors(parser, b"x = [1, 2\n")
    assert not syntax_errors(parser, b"f(x) = ccall((:g, lib), Cint, (Ptr{Cvoid},), x)\n")


# ---- the C side: include/dlshare.h ---------------------------------------------------------

C_SCALARS = {"int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
             "uint8_t": "u8", "uint16_t": "u16", "size_t": "usize", "bool": "bool",
             "char": "u8", "void": "void", "int": "i32"}


def strip_c(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return text


class Header:
    def __init__(self, path):
        raw = strip_c(path.read_text())
        self.defines = {}
        for name, value in re.findall(r"^\s*#define\s+((?:DLSHARE|DLPACK)_\w+)\s+(.+?)\s*$",
                                      raw, flags=re.M):
            expr = re.sub(r"(\d+)U?L*", r"\1", value)
            if re.fullmatch(r"[\d\s()<|]+", expr):
                self.defines[name] = eval(expr)  # noqa: S307 - integer literals and shifts only
        text = re.sub(r"^\s*#[^\n]*", " ", raw, flags=re.M)
        self.enums = set()
        self.enum_values = {}
        for body, name in re.findall(r"typedef enum[^{]*\{([^}]*)\}\s*(\w+)\s*;", text):
            self.enums.add(name)
            for const, value in re.findall(r"(\w+)\s*=\s*(\d+)U?", body):
                self.enum_values[const] = int(value)
        self.structs = {}
        for body, name in re.findall(r"typedef struct(?:\s+\w+)?\s*\{(.*?)\}\s*(\w+)\s*;", text,
                                     flags=re.S):
            self.structs[name] = [self.field(d) for d in body.split(";") if d.strip()]
        self.structs["dlshare_tensor"] = []  # opaque
        self.functions = {}
        for ret, name, params in re.findall(
                r"((?:const\s+)?(?:enum\s+|struct\s+)?\w+\s*\**)\s*\b(dlshare_\w+)\s*\(([^)]*)\)\s*;",
                text):
            args = [] if params.strip() in ("", "void") else [
                self.canon(re.sub(r"\w+\s*$", "", p.strip())) for p in params.split(",")]
            self.functions[name] = (self.canon(ret), args)

    def field(self, decl):
        decl = " ".join(decl.split())
        m = re.fullmatch(r"(.+?)\(\s*\*\s*(\w+)\s*\)\s*\(.*\)", decl)
        if m:  # a function pointer: Julia holds it as Ptr{Cvoid}
            return m.group(2), ("ptr", "void")
        m = re.fullmatch(r"(.+?)\b(\w+)\s*\[(\d+)\]", decl)
        if m:
            return m.group(2), ("array", int(m.group(3)), self.canon(m.group(1)))
        m = re.fullmatch(r"(.+?)\b(\w+)", decl)
        return m.group(2), self.canon(m.group(1))

    def canon(self, ctype):
        pointers = ctype.count("*")
        words = [w for w in re.findall(r"\w+", ctype) if w not in ("const", "struct", "enum")]
        assert len(words) == 1, f"cannot read C type {ctype!r}"
        (base,) = words
        if base in C_SCALARS:
            kind = C_SCALARS[base]
        elif base in self.enums:
            kind = "i32"
        else:
            kind = ("struct", base)
        for _ in range(pointers):
            kind = ("ptr", kind)
        return kind


# ---- the Julia side: bindings/julia/DLShare/src ---------------------------------------------

JULIA_SCALARS = {"Cint": "i32", "Int32": "i32", "Cuint": "u32", "UInt32": "u32",
                 "Int64": "i64", "UInt64": "u64", "UInt8": "u8", "UInt16": "u16",
                 "Csize_t": "usize", "Bool": "bool", "Cvoid": "void", "Nothing": "void"}


def split_types(text):
    """Splits a Julia type tuple's contents at the commas outside braces."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return [p for p in parts if p]


def canon_julia(t):
    t = t.strip()
    m = re.fullmatch(r"(?:Ptr|Ref)\{(.+)\}", t)
    if m:
        return ("ptr", canon_julia(m.group(1)))
    m = re.fullmatch(r"NTuple\{(\d+),\s*(.+)\}", t)
    if m:
        return ("array", int(m.group(1)), canon_julia(m.group(2)))
    if t == "Cstring":
        return ("ptr", "u8")
    if t in JULIA_SCALARS:
        return JULIA_SCALARS[t]
    assert re.fullmatch(r"\w+", t), f"cannot read Julia type {t!r}"
    return ("struct", t)


class Julia:
    CCALL = re.compile(r"ccall\(\(:(\w+),\s*libdlshare\),\s*([^,]+?),\s*\(([^()]*)\)")
    POINTER_CCALL = re.compile(r"ccall\((\w+),\s*(\w+),\s*\(([^()]*)\)")

    def __init__(self):
        lib_source = LIB_JL.read_text()
        sources = [p.read_text() for p in sorted((JULIA_PACKAGE / "src").glob("*.jl"))]
        self.ccalls = []
        self.pointer_ccalls = []
        self.ccall_count = 0
        self.macro_ccalls = 0
        for source in sources:
            code = re.sub(r"#[^\n]*", "", source)
            self.ccall_count += code.count("ccall(") - code.count("@ccall(")
            self.macro_ccalls += code.count("@ccall")
            for name, ret, args in self.CCALL.findall(code):
                self.ccalls.append((name, canon_julia(ret), [canon_julia(a) for a in split_types(args)],
                                    split_types(args), ret.strip()))
            for _, ret, args in self.POINTER_CCALL.findall(code):
                self.pointer_ccalls.append((canon_julia(ret), [canon_julia(a) for a in split_types(args)]))
        self.structs = {}
        for name, body in re.findall(r"^struct (\w+)\n(.*?)^end$", lib_source, flags=re.S | re.M):
            self.structs[name] = [(f, canon_julia(t)) for f, t in
                                  re.findall(r"^\s*(\w+)::(.+?)\s*$", body, flags=re.M)]
        for name in re.findall(r"^mutable struct (\w+) end$", lib_source, flags=re.M):
            self.structs[name] = []
        self.constants = {name: int(value) for name, value in re.findall(
            r"^const (\w+) = (?:\w+\()?(\d+)\)?\s*$", lib_source, flags=re.M)}
        self.lib_names = self.defined_names(lib_source)
        self.package_source = (JULIA_PACKAGE / "src" / "DLShare.jl").read_text()
        self.package_names = self.defined_names(self.package_source)
        if 'include("LibDLShare.jl")' in self.package_source:
            self.package_names.add("LibDLShare")

    @staticmethod
    def defined_names(source):
        """Top-level functions, constants, globals, structs and modules a Julia file defines."""
        code = re.sub(r"#[^\n]*", "", source)
        definition = re.compile(
            r"^(?:function\s+(?:Base\.)?([\w!]+)|(?:mutable\s+)?struct\s+(\w+)|const\s+(\w+)"
            r"|module\s+(\w+)|(?:Base\.)?([\w!]+)\(.*?\)(?:\s+where\s+\{.*?\})?\s*=(?!=)"
            r"|(\w+)\s*=(?!=))", re.M)
        return {name for groups in definition.findall(code) for name in groups if name}


HDR = Header(HEADER)
JL = Julia()


def test_every_ccall_is_read():
    assert JL.ccalls, "no ccall found in the Julia sources"
    assert JL.macro_ccalls == 0, "use ccall((:name, libdlshare), ...), which this test reads"
    assert len(JL.ccalls) + len(JL.pointer_ccalls) == JL.ccall_count, (
        "a ccall in bindings/julia/DLShare/src is written in a form this test cannot read: use "
        "ccall((:dlshare_name, libdlshare), Ret, (ArgTypes...,), args...) on one line")


@pytest.mark.parametrize("call", JL.ccalls, ids=lambda c: c[0])
def test_ccall_matches_header_and_library(call):
    name, ret, args, julia_args, julia_ret = call
    lib = ctypes.CDLL(dlshare.LIBRARY_PATH)
    assert hasattr(lib, name), f"{name} is not exported by {dlshare.LIBRARY_PATH}"
    assert name in HDR.functions, f"{name} is not declared in include/dlshare.h"
    c_ret, c_args = HDR.functions[name]
    assert len(args) == len(c_args), (
        f"{name}: Julia passes {len(args)} arguments ({', '.join(julia_args)}), "
        f"the header declares {len(c_args)}")
    for i, (j, c) in enumerate(zip(args, c_args)):
        assert j == c, f"{name} argument {i + 1}: Julia {julia_args[i]} = {j}, C {c}"
    assert ret == c_ret, f"{name} returns: Julia {julia_ret} = {ret}, C {c_ret}"


def test_deleter_ccalls_match_the_struct_fields():
    # The only ccalls through a function pointer call a producer's DLPack deleter.
    assert len(JL.pointer_ccalls) == 2
    for ret, args in JL.pointer_ccalls:
        assert ret == "void"
        assert args in ([("ptr", ("struct", "DLManagedTensorVersioned"))],
                        [("ptr", ("struct", "DLManagedTensor"))])


def test_julia_names_used_are_defined():
    """Typos in names that only Julia would catch at run time: L.x must exist in LibDLShare,
    DLShare.x in DLShare, and every exported name must be defined."""
    for path in JULIA_FILES:
        code = re.sub(r"#[^\n]*", "", path.read_text())
        for name in set(re.findall(r"\bL\.(\w+)", code)):
            assert name in JL.lib_names, f"{path.relative_to(REPO)}: L.{name} is not defined"
        for name in set(re.findall(r"\bDLShare\.(\w+)", code)):
            assert name in JL.package_names, f"{path.relative_to(REPO)}: DLShare.{name} undefined"
    exports = re.findall(r"^export (.+)$", JL.package_source, flags=re.M)
    exported = {n.strip() for line in exports for n in line.split(",")}
    assert "from_array" in exported and "LibDLShare" in JL.package_names
    for name in exported:
        assert name in JL.package_names, f"DLShare exports {name}, which it does not define"


@pytest.mark.parametrize("name", sorted(JL.structs))
def test_struct_matches_header(name):
    assert name in HDR.structs, f"Julia struct {name} has no C struct of that name"
    assert JL.structs[name] == HDR.structs[name], (
        f"{name}: Julia fields {JL.structs[name]} != C fields {HDR.structs[name]}")
    assert ctypes.sizeof(ctypes_type(("struct", name))) == ctypes.sizeof(
        ctypes_type(("struct", name), structs=HDR.structs))


def test_constants_match_header():
    known = {**HDR.enum_values, **HDR.defines}
    assert JL.constants
    for name, value in JL.constants.items():
        assert name in known, f"Julia constant {name} is not in include/dlshare.h"
        assert value == known[name], f"{name}: Julia {value}, C {known[name]}"


# ---- ctypes mirrors built from the Julia declarations ---------------------------------------

SCALAR_CTYPES = {"i32": ctypes.c_int32, "u32": ctypes.c_uint32, "i64": ctypes.c_int64,
                 "u64": ctypes.c_uint64, "u8": ctypes.c_uint8, "u16": ctypes.c_uint16,
                 "usize": ctypes.c_size_t, "bool": ctypes.c_bool}
_built = {}


def ctypes_type(kind, structs=None, argument=False):
    """The ctypes type of a canonical kind; structs from the Julia sources (or `structs`)."""
    structs = JL.structs if structs is None else structs
    if kind == "void":
        return None
    if kind in SCALAR_CTYPES:
        return SCALAR_CTYPES[kind]
    if kind[0] == "array":
        return ctypes_type(kind[2], structs) * kind[1]
    if kind[0] == "ptr":
        target = kind[1]
        if target == "void" or target == ("struct", "dlshare_tensor"):  # untyped or opaque
            return ctypes.c_void_p
        if target == ("ptr", ("struct", "dlshare_tensor")):
            return ctypes.POINTER(ctypes.c_void_p)
        if target == "u8" and argument:
            return ctypes.c_char_p
        return ctypes.POINTER(ctypes_type(target, structs))
    name = kind[1]
    key = (name, id(structs))
    if key not in _built:
        fields = [(f, ctypes_type(k, structs)) for f, k in structs[name]]
        _built[key] = type(name, (ctypes.Structure,), {"_fields_": fields})
    return _built[key]


class JuliaTypedLibrary:
    """libdlshare's functions with argtypes/restype exactly as the Julia package declares them
    (built on first use, so a missing symbol fails only the tests that need it)."""

    def __init__(self):
        self.lib = ctypes.CDLL(dlshare.LIBRARY_PATH)
        self.signatures = {name: (ret, args) for name, ret, args, _, _ in JL.ccalls}

    def __getitem__(self, name):
        ret, args = self.signatures[name]
        fn = getattr(self.lib, name)
        fn.argtypes = [ctypes_type(a, argument=True) for a in args]
        fn.restype = ctypes_type(ret, argument=True)
        return fn


class Roots:
    """The Julia package's rooting: arrays by id, dropped by the view's release callback."""

    def __init__(self):
        self.roots, self.next_id, self.released = {}, 1, []
        self.callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.release)

    def root(self, array):
        rid, self.next_id = self.next_id, self.next_id + 1
        self.roots[rid] = array
        return rid

    def release(self, ctx):
        self.released.append(ctx)
        del self.roots[ctx]


C = JuliaTypedLibrary()
K = JL.constants
S = {name: ctypes_type(("struct", name)) for name in JL.structs if JL.structs[name]}


def julia_options(mode, dtype=None, allow_read_only=False):
    """DLShare.options: dlshare_options_init(mode), then dtype / allow_read_only set."""
    base = C["dlshare_options_init"](mode)
    assert base.mode == mode and not base.has_dtype and not base.has_device
    assert not base.allow_read_only and not base.stream
    return S["dlshare_options"](base.mode, dtype is not None,
                                dtype if dtype is not None else base.dtype, base.has_device,
                                base.device, allow_read_only, base.allow_complex_to_real,
                                base.stream)


def julia_view(array, roots=None, readonly=False):
    """DLShare.make_view of a strided Julia array, modelled by a NumPy array with the same
    memory layout: shape as is, byte strides = Julia's element strides times the item size."""
    itemsize = array.itemsize
    shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    strides = (ctypes.c_int64 * max(array.ndim, 1))(*(s for s in array.strides))
    for s, b in zip(array.strides, strides):
        assert b == s and s % itemsize == 0
    dtype = S["DLDataType"](K["kDLFloat"], 8 * itemsize, 1)
    release, ctx = (ctypes.cast(roots.callback, ctypes.c_void_p), roots.root(array)) if roots \
        else (None, None)
    view = S["dlshare_view"](array.__array_interface__["data"][0], dtype, array.ndim, shape,
                             strides, S["DLDevice"](K["kDLCPU"], 0),
                             K["DLSHARE_VIEW_READ_ONLY"] if readonly else 0, release, ctx)
    return view, (shape, strides)


def julia_array_strides(shape):
    """Base.strides of a Julia Array of these dims: column-major, in elements."""
    strides, step = [], 1
    for extent in shape:
        strides.append(step)
        step *= extent
    return tuple(strides)


def info(tensor):
    dl, flags = S["DLTensor"](), ctypes.c_uint64()
    assert C["dlshare_tensor_info"](tensor, ctypes.byref(dl), ctypes.byref(flags)) == K["DLSHARE_OK"]
    return dl, flags.value


def flag(name, tensor):
    out = ctypes.c_bool()
    assert C[name](tensor, ctypes.byref(out)) == K["DLSHARE_OK"]
    return out.value


def detail(decision):
    return bytes(decision.detail).split(b"\0", 1)[0].decode()


def host_array(address, shape, dtype, order):
    """unsafe_wrap(Array, ptr, dims): an array over foreign memory (no copy)."""
    count = int(np.prod(shape))
    buffer = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def test_replay_column_major_array_to_tensor_and_back():
    # A Julia Array{Float64,3}, reshape(collect(0.0:23.0), 2, 3, 4): column-major.
    array = np.arange(24.0).reshape((2, 3, 4), order="F")
    assert array.strides == tuple(s * 8 for s in julia_array_strides(array.shape))
    roots = Roots()
    view, keep = julia_view(array, roots)
    out, decision = ctypes.c_void_p(), S["dlshare_decision"]()
    status = C["dlshare_tensor_from_view"](ctypes.byref(view),
                                           ctypes.byref(julia_options(K["DLSHARE_MODE_SHARE"])),
                                           ctypes.byref(out), ctypes.byref(decision))
    assert status == K["DLSHARE_OK"] and decision.shared
    assert decision.reason == K["DLSHARE_REASON_NONE"] and detail(decision).startswith("shared")
    assert list(roots.roots) == [1] and roots.released == []

    dl, flags = info(out)
    assert dl.data + dl.byte_offset == array.__array_interface__["data"][0]
    assert dl.ndim == 3 and [dl.shape[i] for i in range(3)] == [2, 3, 4]
    assert tuple(dl.strides[i] for i in range(3)) == julia_array_strides((2, 3, 4))  # F order
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (K["kDLFloat"], 64, 1)
    assert flags & K["DLPACK_FLAG_BITMASK_READ_ONLY"] == 0
    assert flag("dlshare_tensor_is_f_contiguous", out)
    assert not flag("dlshare_tensor_is_c_contiguous", out)

    # as_array: F-contiguous, so an Array of the same dims over the same memory, which holds
    # its own reference (retain) released by its finalizer.
    assert C["dlshare_tensor_retain"](out) == K["DLSHARE_OK"]
    back = host_array(dl.data + dl.byte_offset, (2, 3, 4), np.float64, "F")
    assert np.array_equal(back, array)
    back[1, 2, 3] = -1.0
    assert array[1, 2, 3] == -1.0

    # to_dlpack, then the consumer's deleter (free_dlpack calls it through its pointer).
    managed = ctypes.POINTER(S["DLManagedTensorVersioned"])()
    assert C["dlshare_tensor_to_dlpack"](out, ctypes.byref(managed)) == K["DLSHARE_OK"]
    m = managed.contents
    assert m.version.major == K["DLPACK_MAJOR_VERSION"]
    assert m.dl_tensor.data + m.dl_tensor.byte_offset == array.__array_interface__["data"][0]
    assert tuple(m.dl_tensor.strides[i] for i in range(3)) == (1, 2, 6)

    assert C["dlshare_tensor_release"](out) == K["DLSHARE_OK"]  # release!(t)
    assert C["dlshare_tensor_release"](out) == K["DLSHARE_OK"]  # the Array's finalizer
    assert roots.released == []  # the DLPack export still uses the memory
    deleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(S["DLManagedTensorVersioned"]))(m.deleter)
    deleter(managed)
    assert roots.released == [1] and roots.roots == {}  # the array is unrooted exactly once
    del keep


def test_replay_row_major_tensor_as_permuted_dims_array():
    out = ctypes.c_void_p()
    shape = (ctypes.c_int64 * 2)(2, 3)
    f32 = S["DLDataType"](K["kDLFloat"], 32, 1)
    assert C["dlshare_tensor_zeros"](f32, 2, shape, S["DLDevice"](K["kDLCPU"], 0),
                                     ctypes.byref(out)) == K["DLSHARE_OK"]
    dl, _ = info(out)
    assert tuple(dl.strides[i] for i in range(2)) == (3, 1)
    assert flag("dlshare_tensor_is_c_contiguous", out)
    assert not flag("dlshare_tensor_is_f_contiguous", out)
    address = dl.data + dl.byte_offset
    # Julia: PermutedDimsArray(unsafe_wrap(Array, ptr, (3, 2)), (2, 1))
    parent = host_array(address, (3, 2), np.float32, "F")
    permuted = parent.transpose(1, 0)
    assert permuted.shape == (2, 3)
    permuted[1, 0] = 7.0  # Julia P[2, 1]
    row_major = host_array(address, (2, 3), np.float32, "C")
    assert row_major[1, 0] == 7.0 and row_major.ravel()[3] == 7.0  # element 4 in Julia
    assert np.array_equal(permuted, row_major)
    assert C["dlshare_tensor_release"](out) == K["DLSHARE_OK"]


def test_replay_modes_explain_and_errors():
    v = np.arange(1.0, 7.0)
    reversed_view = v[::-1]  # Julia view(v, 6:-1:1): pointer to v[6], stride -1
    roots = Roots()
    view, keep = julia_view(reversed_view, roots)
    decision = S["dlshare_decision"]()
    share = julia_options(K["DLSHARE_MODE_SHARE"])
    status = C["dlshare_explain_view"](ctypes.byref(view), ctypes.byref(share),
                                       ctypes.byref(decision))
    assert status == K["DLSHARE_ERR_CANNOT_SHARE"]
    assert decision.reason == K["DLSHARE_REASON_NEGATIVE_STRIDE"]
    assert C["dlshare_reason_name"](decision.reason) == b"negative_stride"

    out = ctypes.c_void_p()
    status = C["dlshare_tensor_from_view"](ctypes.byref(view), ctypes.byref(share),
                                           ctypes.byref(out), ctypes.byref(decision))
    assert status == K["DLSHARE_ERR_CANNOT_SHARE"] and not out.value
    assert b"negative" in C["dlshare_last_error_message"]()
    assert C["dlshare_status_name"](status) == b"DLSHARE_ERR_CANNOT_SHARE"
    assert decision.reason == K["DLSHARE_REASON_NEGATIVE_STRIDE"]
    assert roots.released == []  # no callback on failure: DLShare unroots the id itself

    as_tensor = julia_options(K["DLSHARE_MODE_SHARE_OR_COPY"])
    status = C["dlshare_tensor_from_view"](ctypes.byref(view), ctypes.byref(as_tensor),
                                           ctypes.byref(out), ctypes.byref(decision))
    assert status == K["DLSHARE_OK"] and not decision.shared
    assert decision.reason == K["DLSHARE_REASON_NEGATIVE_STRIDE"]
    assert roots.released == [1]  # copied: released before the call returned
    dl, flags = info(out)
    assert flags & K["DLPACK_FLAG_BITMASK_IS_COPIED"]
    copied = host_array(dl.data + dl.byte_offset, (6,), np.float64, "C")
    assert copied.tolist() == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]

    f64 = S["DLDataType"](K["kDLFloat"], 64, 1)
    name = ctypes.create_string_buffer(64)
    assert C["dlshare_dtype_name"](f64, name, 64) == K["DLSHARE_OK"] and name.value == b"float64"
    assert C["dlshare_device_name"](S["DLDevice"](K["kDLCPU"], 0), name, 64) == K["DLSHARE_OK"]
    assert name.value == b"cpu"

    # convert / explain_tensor with a dtype (DLShare.as_tensor(t; dtype=Float32))
    to_f32 = julia_options(K["DLSHARE_MODE_SHARE_OR_COPY"], S["DLDataType"](K["kDLFloat"], 32, 1))
    assert C["dlshare_explain_tensor"](out, ctypes.byref(to_f32), ctypes.byref(decision)) == 0
    assert decision.reason == K["DLSHARE_REASON_DTYPE_CHANGE"]
    converted = ctypes.c_void_p()
    assert C["dlshare_tensor_convert"](out, ctypes.byref(to_f32), ctypes.byref(converted),
                                       ctypes.byref(decision)) == K["DLSHARE_OK"]
    same = ctypes.c_bool(True)
    assert C["dlshare_tensor_shares_memory"](out, converted, ctypes.byref(same)) == 0
    assert not same.value
    for t in (out, converted):
        assert C["dlshare_tensor_release"](t) == K["DLSHARE_OK"]

    # A released handle: INVALID_HANDLE, with a message.
    assert C["dlshare_tensor_retain"](out) == K["DLSHARE_ERR_INVALID_HANDLE"]
    assert C["dlshare_last_error_message"]()
    del keep


def test_replay_dlpack_import_and_legacy_export():
    array = np.arange(6.0, dtype=np.float64).reshape((2, 3), order="F")
    roots = Roots()
    view, keep = julia_view(array, roots)
    t = ctypes.c_void_p()
    share = julia_options(K["DLSHARE_MODE_SHARE"])
    assert C["dlshare_tensor_from_view"](ctypes.byref(view), ctypes.byref(share),
                                         ctypes.byref(t), None) == K["DLSHARE_OK"]

    legacy = ctypes.POINTER(S["DLManagedTensor"])()
    assert C["dlshare_tensor_to_dlpack_legacy"](t, ctypes.byref(legacy)) == K["DLSHARE_OK"]
    decision = S["dlshare_decision"]()
    assert C["dlshare_explain_dlpack_legacy"](legacy, ctypes.byref(share),
                                              ctypes.byref(decision)) == K["DLSHARE_OK"]
    assert decision.shared
    imported = ctypes.c_void_p()
    assert C["dlshare_tensor_from_dlpack_legacy"](legacy, ctypes.byref(share),
                                                  ctypes.byref(imported),
                                                  ctypes.byref(decision)) == K["DLSHARE_OK"]
    dl, _ = info(imported)
    assert dl.data + dl.byte_offset == array.__array_interface__["data"][0]

    versioned = ctypes.POINTER(S["DLManagedTensorVersioned"])()
    assert C["dlshare_tensor_to_dlpack"](t, ctypes.byref(versioned)) == K["DLSHARE_OK"]
    copy = julia_options(K["DLSHARE_MODE_COPY"])
    assert C["dlshare_explain_dlpack"](versioned, ctypes.byref(copy), ctypes.byref(decision)) == 0
    assert decision.reason == K["DLSHARE_REASON_COPY_REQUESTED"]
    again = ctypes.c_void_p()
    assert C["dlshare_tensor_from_dlpack"](versioned, ctypes.byref(share), ctypes.byref(again),
                                           ctypes.byref(decision)) == K["DLSHARE_OK"]
    assert decision.shared
    for handle in (t, imported, again):
        assert C["dlshare_tensor_release"](handle) == K["DLSHARE_OK"]
    assert roots.released == [1]
    del keep


def test_live_count_and_version_through_the_julia_declarations():
    assert C["dlshare_live_tensor_count"]() == dlshare.live_tensor_count()
    assert re.fullmatch(rb"\d+\.\d+\.\d+", C["dlshare_version"]())
