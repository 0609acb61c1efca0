"""In-tree PEP 517 build backend of `pip install .` (see pyproject.toml): setuptools' own
backend, running the setup script python/pep517/setup.py (which drives the project's
CMake) instead of a setup.py at the repository root."""
import os

from setuptools import build_meta as _meta

SETUP_SCRIPT = os.path.join("python", "pep517", "setup.py")


class _Backend(_meta._BuildMetaBackend):
    def run_setup(self, setup_script=SETUP_SCRIPT):
        super().run_setup(setup_script=SETUP_SCRIPT)


_backend = _Backend()
get_requires_for_build_wheel = _backend.get_requires_for_build_wheel
get_requires_for_build_sdist = _backend.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = _backend.prepare_metadata_for_build_wheel
build_wheel = _backend.build_wheel
build_sdist = _backend.build_sdist
get_requires_for_build_editable = _backend.get_requires_for_build_editable
prepare_metadata_for_build_editable = _backend.prepare_metadata_for_build_editable
build_editable = _backend.build_editable
