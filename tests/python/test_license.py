"""The license, MIT OR Apache-2.0, is in the repository (LICENSE-MIT, LICENSE-APACHE) and
declared the same way by every package: the crate (Cargo.toml), the installed Python package's
metadata (and its license files), the Julia package (Project.toml) and pkg-config (dlshare.pc)."""

import importlib.metadata
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
SPDX = "MIT OR Apache-2.0"


def test_license_files():
    mit = (REPO / "LICENSE-MIT").read_text()
    apache = (REPO / "LICENSE-APACHE").read_text()
    assert mit.startswith("MIT License") and "Permission is hereby granted" in mit
    assert "Apache License" in apache and "Version 2.0, January 2004" in apache
    assert "END OF TERMS AND CONDITIONS" in apache


def test_crate_julia_and_pkgconfig_declare_it():
    cargo = (REPO / "Cargo.toml").read_text()
    assert re.search(rf'^license = "{SPDX}"$', cargo, flags=re.M)
    julia = (REPO / "bindings" / "julia" / "DLShare" / "Project.toml").read_text()
    assert re.search(rf'^license = "{SPDX}"$', julia, flags=re.M)
    pc = (REPO / "cmake" / "dlshare.pc.in").read_text()
    assert re.search(rf"^License: {SPDX}$", pc, flags=re.M)


def test_installed_python_package_declares_it():
    metadata = importlib.metadata.metadata("dlshare")
    assert metadata["License-Expression"] == SPDX
    files = {pathlib.PurePath(str(f)).name for f in importlib.metadata.files("dlshare")
             if "licenses" in str(f)}
    assert {"LICENSE-MIT", "LICENSE-APACHE"} <= files
