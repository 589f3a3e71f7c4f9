"""One version source: Cargo.toml's [package] version is the Python package's version (its
metadata and dlshare.__version__), the library's dlshare_version(), the header's
DLSHARE_VERSION_* macros and the Julia package's version. (The CMake package version and
dlshare.pc are checked against the library by the C test `version` and `pkgconfig_consumer`,
tests/c.)"""

import importlib.metadata
import pathlib
import re

import dlshare
from dlshare import _ffi

REPO = pathlib.Path(__file__).resolve().parents[2]


def cargo_version():
    text = (REPO / "Cargo.toml").read_text()
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S).group(1)
    return re.search(r'^version\s*=\s*"([^"]+)"', package, flags=re.M).group(1)


def test_crate_version_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", cargo_version())


def test_python_package_version_is_the_crate_version():
    assert dlshare.__version__ == cargo_version()
    assert importlib.metadata.version("dlshare") == cargo_version()


def test_library_version_is_the_crate_version():
    assert _ffi.ffi.string(_ffi.lib.dlshare_version()).decode() == cargo_version()


def test_header_macros_are_the_crate_version():
    major, minor, patch = (int(x) for x in cargo_version().split("."))
    assert (_ffi.lib.DLSHARE_VERSION_MAJOR, _ffi.lib.DLSHARE_VERSION_MINOR,
            _ffi.lib.DLSHARE_VERSION_PATCH) == (major, minor, patch)
    committed = (REPO / "include" / "dlshare.h").read_text()
    for name, value in (("MAJOR", major), ("MINOR", minor), ("PATCH", patch)):
        assert re.search(rf"^#define DLSHARE_VERSION_{name} {value}$", committed, flags=re.M)


def test_julia_package_version_is_the_crate_version():
    project = (REPO / "bindings" / "julia" / "DLShare" / "Project.toml").read_text()
    assert re.search(r'^version\s*=\s*"([^"]+)"', project, flags=re.M).group(1) == cargo_version()


def test_python_metadata_has_no_second_version():
    pyproject = (REPO / "bindings" / "python" / "pyproject.toml").read_text()
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', pyproject, flags=re.M)
    assert not re.search(r"^version\s*=", pyproject, flags=re.M)


def test_package_and_library_come_from_the_expected_install():
    """scripts/test-dist.sh sets DLSHARE_EXPECT_PREFIX to the virtual environment it installed
    the wheel or sdist into: the package, its header and the loaded library must all be that
    install's, not the checkout's (and no DLSHARE_LIBRARY override may be set)."""
    import os
    import sys

    import pytest

    prefix = os.environ.get("DLSHARE_EXPECT_PREFIX")
    if not prefix:
        pytest.skip("skipped: DLSHARE_EXPECT_PREFIX not set (only scripts/test-dist.sh sets it)")
    prefix = pathlib.Path(prefix).resolve()
    assert pathlib.Path(sys.prefix).resolve() == prefix
    assert "DLSHARE_LIBRARY" not in os.environ
    package = pathlib.Path(dlshare.__file__).resolve()
    assert prefix in package.parents, package
    assert REPO / "bindings" not in package.parents, package
    library = pathlib.Path(_ffi.LIBRARY_PATH).resolve()
    assert library == package.parent / "libdlshare.so"
    assert _ffi._header_path().resolve() == package.parent / "dlshare.h"
    with open("/proc/self/maps") as maps:
        mapped = {pathlib.Path(line.split()[-1]).resolve() for line in maps
                  if line.rstrip().endswith(".so") and "libdlshare" in line}
    assert mapped == {library}, mapped
