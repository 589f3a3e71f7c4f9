"""The ABI baseline check (tests/abi/check_abi.py, docs/abi.md) passes for the header and library
this package loaded (the installed wheel's, or the checkout's), and it does catch what it is
there to catch: a removed function, a changed signature, a moved field, a renumbered code, a
wrong SONAME. Additions pass."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import dlshare
from dlshare import _ffi

REPO = pathlib.Path(__file__).resolve().parents[2]
CHECK = REPO / "tests" / "abi" / "check_abi.py"

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("nm") is None or shutil.which("readelf") is None,
    reason="skipped: the ABI check needs cc, nm and readelf (scripts/setup.sh installs them)")


def loaded_header():
    return _ffi._header_path()


def loaded_library():
    return pathlib.Path(_ffi.LIBRARY_PATH)


def check(header, library=None):
    return subprocess.run(
        [sys.executable, str(CHECK), "--header", str(header),
         "--library", str(library or loaded_library())],
        capture_output=True, text=True)


def mutated(tmp_path, old, new, count=1):
    text = loaded_header().read_text()
    assert text.count(old) >= 1, f"{old!r} not in the header: update this test"
    path = tmp_path / "dlshare.h"
    path.write_text(text.replace(old, new, count))
    return path


def test_loaded_library_matches_the_baseline():
    result = check(loaded_header())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ABI matches the baseline" in result.stdout
    soname = f"libdlshare.so.0.{dlshare.__version__.split('.')[1]}"
    assert soname in result.stdout


def test_removed_function_fails(tmp_path):
    header = mutated(tmp_path, "uint64_t dlshare_cached_bytes(void);", "")
    result = check(header)
    assert result.returncode == 1
    assert "function dlshare_cached_bytes is no longer declared" in result.stderr


def test_changed_signature_fails(tmp_path):
    text = loaded_header().read_text()
    decl = re.search(r"dlshare_set_num_threads\(int32_t (\w+)\)", text)
    header = mutated(tmp_path, decl.group(0), f"dlshare_set_num_threads(int64_t {decl.group(1)})")
    result = check(header)
    assert result.returncode == 1
    assert "dlshare_set_num_threads" in result.stderr and "type changed" in result.stderr


def test_renamed_parameter_passes(tmp_path):
    text = loaded_header().read_text()
    decl = re.search(r"dlshare_set_num_threads\(int32_t (\w+)\)", text)
    header = mutated(tmp_path, decl.group(0), "dlshare_set_num_threads(int32_t renamed)")
    result = check(header)
    assert result.returncode == 0, result.stderr


def test_moved_field_fails(tmp_path):
    # dlshare_view: `DLDataType dtype; int32_t ndim;` -> ndim widened, every later field moves.
    header = mutated(tmp_path, "  DLDataType dtype;\n  int32_t ndim;",
                     "  DLDataType dtype;\n  int64_t ndim;")
    result = check(header)
    assert result.returncode == 1
    assert re.search(r"dlshare_view\.ndim: offset/size \d+/4 -> \d+/8", result.stderr)
    assert re.search(r"dlshare_view\.shape: offset/size (\d+)/8 -> (?!\1/)\d+/8", result.stderr)
    assert "dlshare_view: size" in result.stderr


def test_renumbered_status_fails(tmp_path):
    header = mutated(tmp_path, "DLSHARE_ERR_PANIC = 14", "DLSHARE_ERR_PANIC = 15")
    result = check(header)
    assert result.returncode == 1
    assert "DLSHARE_ERR_PANIC: 14 -> 15" in result.stderr


def test_additions_pass(tmp_path):
    header = mutated(
        tmp_path, "#endif  /* DLSHARE_H */",
        "typedef struct dlshare_new_thing { int32_t a; } dlshare_new_thing;\n"
        "enum { DLSHARE_NEW_CONSTANT = 99 };\n"
        "DLSHARE_API int32_t dlshare_new_function(void);\n#endif  /* DLSHARE_H */")
    result = check(header)
    assert result.returncode == 0, result.stderr
    assert "dlshare_new_function" in result.stdout and "dlshare_new_thing" in result.stdout


def test_wrong_soname_fails(tmp_path):
    # The same library with a 1.x version in the header: the SONAME must then be libdlshare.so.1.
    header = mutated(tmp_path, "#define DLSHARE_VERSION_MAJOR 0", "#define DLSHARE_VERSION_MAJOR 1")
    result = check(header)
    assert result.returncode == 1
    assert "expected libdlshare.so.1" in result.stderr
