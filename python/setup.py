"""Builds libdf11.so with CMake from the repository this folder sits in and
bundles it into the package: `pip install ./python` from the repository root.

Environment:
  DF11_CMAKE_ARGS   extra CMake arguments, e.g. "-DDF11_CUDA=OFF" (CUDA is
                    built when nvcc is found, as for the rest of the project)
  DF11_BUILD_JOBS   parallel build jobs (default: all cores)
  DF11_PREBUILT_LIBRARY  bundle this libdf11.so instead of building one
The wheel is tagged py3-none-<platform>: ctypes ties it to no Python ABI.
"""
import glob
import os
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def build_library(build_dir):
    prebuilt = os.environ.get("DF11_PREBUILT_LIBRARY")
    if prebuilt:
        return prebuilt
    if not os.path.isfile(os.path.join(REPO, "formats", "df11_c.h")):
        raise RuntimeError(f"df11: {REPO} is not the df11 repository (pip install ./python from its root)")
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("df11: cmake not found (bash scripts/setup.sh installs the build dependencies)")
    args = [cmake, "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DDF11_TESTS=OFF"]
    args += shlex.split(os.environ.get("DF11_CMAKE_ARGS", ""))
    subprocess.check_call(args)
    jobs = os.environ.get("DF11_BUILD_JOBS", str(os.cpu_count() or 1))
    subprocess.check_call([cmake, "--build", build_dir, "--target", "df11", "-j", jobs])
    found = sorted(glob.glob(os.path.join(build_dir, "**", "libdf11.so*"), recursive=True))
    if not found:
        raise RuntimeError(f"df11: the build in {build_dir} made no libdf11.so")
    # libdf11.so is a link to the versioned file; bundle the file itself.
    return os.path.realpath(found[0])


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        build_dir = os.path.join(HERE, "build", "cmake")
        lib = build_library(build_dir)
        dst_dir = os.path.join(self.build_lib, "df11")
        os.makedirs(dst_dir, exist_ok=True)
        shutil.copyfile(lib, os.path.join(dst_dir, "libdf11.so"))


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
