"""`pip install ./bindings/python` works offline: into a fresh virtual
environment, with no index and no build isolation (setuptools as the
system has it), and the installed package finds a library copied into it."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import support
from support import td


def _can_build_offline():
    """pip and setuptools (and, before setuptools 70.1, wheel) are there;
    found without importing them, which would disturb distutils."""
    from importlib import metadata, util
    if util.find_spec("pip") is None:
        return False
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return False
    major_minor = tuple(int(x) for x in version.split(".")[:2])
    return major_minor >= (70, 1) or util.find_spec("wheel") is not None


@unittest.skipUnless(_can_build_offline(), "no pip, setuptools (and wheel) to build with offline")
class TestInstall(unittest.TestCase):
    def test_pip_install_offline(self):
        lib = os.environ.get("TEXTDIFF_LIBRARY") or td.library_path
        with tempfile.TemporaryDirectory() as tmp:
            # Build from a copy: setuptools writes build/ and *.egg-info next
            # to the sources. The library copied into the package is found
            # by the installed package without TEXTDIFF_LIBRARY.
            src = os.path.join(tmp, "src")
            shutil.copytree(support.PACKAGE_ROOT, src,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
            copy = "libtextdiff.so.%d" % td.ABI_VERSION
            shutil.copy(lib, os.path.join(src, "textdiff", copy))
            venv = os.path.join(tmp, "venv")
            # System site packages give the venv the system's setuptools and pip.
            subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                            "--system-site-packages", venv], check=True)
            python = os.path.join(venv, "bin", "python")
            env = {k: v for k, v in os.environ.items()
                   if k not in ("TEXTDIFF_LIBRARY", "PYTHONPATH")}
            env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
            r = subprocess.run([python, "-m", "pip", "install", "--no-index",
                                "--no-build-isolation", src], env=env, cwd=tmp,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            code = ("import textdiff, sys; print(textdiff.__file__); "
                    "print(textdiff.library_path); print(textdiff.version())")
            r = subprocess.run([python, "-c", code], env=env, cwd=tmp, capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            where, path, version = r.stdout.split()
            self.assertTrue(where.startswith(venv), where)
            self.assertEqual(path, os.path.join(os.path.dirname(where), copy))
            self.assertEqual(version, td.version())


if __name__ == "__main__":
    unittest.main()
