"""Builds the Rust library with cargo and ships it inside the package, next to the header that
cffi reads at import time. The wheel is tagged py3-none-<platform>: ABI-mode cffi does not tie
it to a CPython version, only the bundled shared library ties it to the platform.

Where the crate comes from:
- in a checkout, the repository root (two folders up);
- in an sdist, the `rust/` folder inside it: `setup.py sdist` puts the packaged crate there
  (the exact file set `cargo package` would publish, with its Cargo.lock), so the sdist builds
  from its own contents.

The version is the crate's (`[package] version` in Cargo.toml): the one version source.

`DLSHARE_PREBUILT_LIBRARY=/path/to/libdlshare.so` skips cargo and bundles that library instead
(scripts/build-wheel.sh uses it for the manylinux build made with cargo-zigbuild).
"""

import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = pathlib.Path(__file__).resolve().parent
BUNDLED_CRATE = "rust"


def crate_dir() -> pathlib.Path:
    for candidate in (HERE / BUNDLED_CRATE, HERE.parents[1]):
        if (candidate / "Cargo.toml").is_file() and (candidate / "src" / "lib.rs").is_file():
            return candidate
    raise SystemExit(
        f"the dlshare crate was found neither in {HERE / BUNDLED_CRATE} (an sdist) nor in "
        f"{HERE.parents[1]} (a checkout of the repository)"
    )


CRATE = crate_dir()
FROM_SDIST = CRATE == HERE / BUNDLED_CRATE


def crate_version(cargo_toml: pathlib.Path) -> str:
    """`version` of the [package] table (the same rule as cmake/CMakeLists.txt)."""
    text = cargo_toml.read_text(encoding="utf-8")
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    version = package and re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), flags=re.M)
    if not version:
        raise SystemExit(f'no `version = "..."` in the [package] table of {cargo_toml}')
    return version.group(1)


class BuildWithCargo(build_py):
    def run(self):
        super().run()
        dest = pathlib.Path(self.build_lib) / "dlshare"
        dest.mkdir(parents=True, exist_ok=True)
        prebuilt = os.environ.get("DLSHARE_PREBUILT_LIBRARY")
        if prebuilt:
            library = pathlib.Path(prebuilt)
        else:
            command = ["cargo", "build", "--release", "--lib"]
            if FROM_SDIST:
                command.append("--locked")  # the sdist carries the Cargo.lock it was tested with
            command += ["--manifest-path", str(CRATE / "Cargo.toml")]
            subprocess.run(command, check=True)
            target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", CRATE / "target"))
            library = target / "release" / "libdlshare.so"
        shutil.copy2(library, dest / "libdlshare.so")
        shutil.copy2(CRATE / "include" / "dlshare.h", dest / "dlshare.h")


class SdistWithCrate(sdist):
    """Adds the packaged crate under rust/: `cargo package` decides the file set (Cargo.toml's
    `include`), so the sdist carries exactly what a crates.io build gets, plus Cargo.lock."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if FROM_SDIST:  # an sdist made from an sdist: copy the bundled crate as it is
            shutil.copytree(CRATE, pathlib.Path(base_dir) / BUNDLED_CRATE)
            return
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["cargo", "package", "--no-verify", "--allow-dirty", "--quiet",
                 "--manifest-path", str(CRATE / "Cargo.toml"), "--target-dir", tmp],
                check=True,
            )
            name = f"dlshare-{crate_version(CRATE / 'Cargo.toml')}"
            with tarfile.open(pathlib.Path(tmp) / "package" / f"{name}.crate") as crate:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.12, and 3.9-3.11 updates
                    crate.extractall(tmp, filter="data")
                else:
                    crate.extractall(tmp)
            shutil.copytree(pathlib.Path(tmp) / name, pathlib.Path(base_dir) / BUNDLED_CRATE)


class BinaryDistribution(Distribution):
    """Has a platform library, so it installs to platlib and gets a platform tag."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    version=crate_version(CRATE / "Cargo.toml"),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildWithCargo, "sdist": SdistWithCrate, "bdist_wheel": PlatformWheel},
)
