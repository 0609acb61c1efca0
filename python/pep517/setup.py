"""setuptools driving the project's CMake for `pip install .` (see pyproject.toml; run by
the in-tree backend ckpt_build.py next to it, from the repository root).

The extension ckpt._ckpt is built by CMake (python/CMakeLists.txt, target ckpt_python) with
libckpt linked in statically, so the installed package is one self-contained module next to
the pure-Python sources. Settings from the environment:
  CKPT_CMAKE_ARGS   extra CMake arguments (split on spaces), e.g. -DCMAKE_BUILD_TYPE=Debug
  CMAKE_BUILD_PARALLEL_LEVEL   build jobs (default: 2)
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_dir, exist_ok=True)
        config = ["cmake", "-S", ROOT, "-B", build_dir,
                  "-DCMAKE_BUILD_TYPE=Release",
                  f"-DPython3_EXECUTABLE={sys.executable}",
                  "-DCKPT_BUILD_PYTHON=ON", "-DCKPT_BUILD_TESTS=OFF", "-DCKPT_BUILD_APPS=OFF",
                  "-DCKPT_SHARED=OFF"]
        config += os.environ.get("CKPT_CMAKE_ARGS", "").split()
        subprocess.run(config, check=True)
        env = dict(os.environ)
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")
        subprocess.run(["cmake", "--build", build_dir, "--target", "ckpt_python"],
                       check=True, env=env)
        built = os.path.join(build_dir, "python", "ckpt")
        names = [n for n in os.listdir(built) if n.startswith("_ckpt") and n.endswith(".so")]
        if len(names) != 1:
            raise RuntimeError(f"ckpt: expected one _ckpt*.so in {built}, found {names}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(built, names[0]), dest)


# setuptools' own build folders go under build/pip, apart from a CMake build in build/.
setup(ext_modules=[CMakeExtension("ckpt._ckpt")], cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": os.path.join("build", "pip")}})
