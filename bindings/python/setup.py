"""Builds the Rust library with cargo and ships it inside the package, next to the header that
cffi reads at import time. The wheel is tagged py3-none-<platform>: ABI-mode cffi does not tie
it to a CPython version, only the bundled shared library ties it to the platform."""

import os
import pathlib
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class BuildWithCargo(build_py):
    def run(self):
        super().run()
        subprocess.run(
            ["cargo", "build", "--release", "--manifest-path", str(ROOT / "Cargo.toml")],
            check=True,
        )
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        dest = pathlib.Path(self.build_lib) / "dlshare"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target / "release" / "libdlshare.so", dest / "libdlshare.so")
        shutil.copy2(ROOT / "include" / "dlshare.h", dest / "dlshare.h")


class BinaryDistribution(Distribution):
    """Has a platform library, so it installs to platlib and gets a platform tag."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildWithCargo, "bdist_wheel": PlatformWheel})
