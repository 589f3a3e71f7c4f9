"""Loads libdlshare through cffi in ABI mode. The declarations come from the C header itself
(`dlshare.h`, bundled next to this file or taken from the repository), reduced to what cffi's
parser accepts: preprocessor conditionals are evaluated for C (not C++, not Windows), includes
and non-integer macros are dropped. No C signature is written twice."""

from __future__ import annotations

import os
import pathlib
import re

import cffi

_HERE = pathlib.Path(__file__).resolve().parent
_REPO = _HERE.parents[2]


def _header_path() -> pathlib.Path:
    for candidate in (_HERE / "dlshare.h", _REPO / "include" / "dlshare.h"):
        if candidate.is_file():
            return candidate
    raise ImportError("dlshare.h not found next to the package or in the repository")


_INT_DEFINE = re.compile(r"#define\s+(\w+)\s+\(?\s*(\d+)U?L?\s*(?:<<\s*(\d+)U?L?\s*)?\)?\s*$")


def cdef_source(header: str) -> str:
    """The header as cffi's `cdef` wants it: C branch of every conditional, integer macros kept
    (shifts folded), everything else from the preprocessor dropped, comments removed."""
    header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    header = re.sub(r"//[^\n]*", "", header)
    defined: set[str] = set()
    active = [True]
    out = []
    for line in header.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            words = stripped[1:].split()
            directive = words[0] if words else ""
            if directive == "ifdef":
                active.append(active[-1] and words[1] in defined)
            elif directive == "ifndef":
                active.append(active[-1] and words[1] not in defined)
            elif directive == "if":
                active.append(False)
            elif directive == "elif":  # every #if/#elif counts as false: the #else is taken
                active.pop()
                active.append(False)
            elif directive == "else":
                top = active.pop()
                active.append(active[-1] and not top)
            elif directive == "endif":
                active.pop()
            elif directive == "define" and active[-1]:
                defined.add(words[1])
                m = _INT_DEFINE.match(stripped)
                if m:
                    value = int(m.group(2)) << int(m.group(3) or 0)
                    out.append(f"#define {m.group(1)} {value}")
            continue
        if active[-1]:
            out.append(line)
    # DLSHARE_API (the export macro before every function) means nothing to cffi.
    return re.sub(r"\bDLSHARE_API\b\s*", "", "\n".join(out))


def _library_path() -> str:
    override = os.environ.get("DLSHARE_LIBRARY")
    if override:
        return override
    for candidate in (
        _HERE / "libdlshare.so",
        _REPO / "target" / "release" / "libdlshare.so",
        _REPO / "target" / "debug" / "libdlshare.so",
    ):
        if candidate.is_file():
            return str(candidate)
    raise ImportError(
        "libdlshare.so not found: install the package with `pip install ./bindings/python`, "
        "or set DLSHARE_LIBRARY=/path/to/libdlshare.so"
    )


ffi = cffi.FFI()
ffi.cdef(cdef_source(_header_path().read_text()))
LIBRARY_PATH = _library_path()
lib = ffi.dlopen(LIBRARY_PATH)
