"""Finding and checking the shared library: TEXTDIFF_LIBRARY, a copy in
the package directory, the system; refusal of another ABI generation or an
older release."""

import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import support
from support import td

from textdiff import _lib

LIB = os.environ.get("TEXTDIFF_LIBRARY") or td.library_path


def _run(code, env_update, unset=("TEXTDIFF_LIBRARY",), cwd=None):
    env = dict(os.environ)
    for k in unset:
        env.pop(k, None)
    env.update(env_update)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=cwd or tempfile.gettempdir())


class TestVersion(unittest.TestCase):
    def test_version_functions(self):
        v = td.version_info()
        self.assertEqual(td.version(), "%d.%d.%d" % v)
        self.assertEqual(td.abi_version(), td.ABI_VERSION)
        self.assertGreaterEqual(_lib.lib.td_version_number(), _lib.VERSION_NUMBER)

    def test_status_string(self):
        self.assertEqual(td.status_string(td.Status.ERR_NOMEM), "out of memory")
        self.assertEqual(td.status_string(1234), "unknown status")

    @unittest.skipUnless(os.environ.get("TEXTDIFF_LIBRARY"), "TEXTDIFF_LIBRARY is not set")
    def test_loaded_from_the_environment(self):
        self.assertEqual(td.library_path, os.environ["TEXTDIFF_LIBRARY"])
        self.assertEqual(_lib.find_library(), ([os.environ["TEXTDIFF_LIBRARY"]], True))


class TestRefusal(unittest.TestCase):
    def test_other_abi_generation(self):
        with mock.patch.object(_lib, "ABI_VERSION", td.ABI_VERSION + 1):
            with self.assertRaises(ImportError) as cm:
                _lib.load_library(LIB)
        msg = str(cm.exception)
        self.assertIn("ABI %d" % td.abi_version(), msg)
        self.assertIn("needs ABI %d" % (td.ABI_VERSION + 1), msg)

    def test_older_release(self):
        with mock.patch.object(_lib, "VERSION_NUMBER", _lib.VERSION_NUMBER + 10000):
            with self.assertRaises(ImportError) as cm:
                _lib.load_library(LIB)
        self.assertIn("or newer", str(cm.exception))

    def test_same_versions_load(self):
        lib, path = _lib.load_library(LIB)
        self.assertEqual(path, LIB)
        self.assertEqual(lib.td_abi_version(), td.ABI_VERSION)

    def test_missing_file(self):
        with self.assertRaises(ImportError) as cm:
            _lib.load_library("/nonexistent/libtextdiff.so.1")
        self.assertIn("/nonexistent/libtextdiff.so.1", str(cm.exception))

    def test_nothing_found(self):
        with mock.patch.object(_lib, "find_library",
                               return_value=(["/nope/libtextdiff.so.1", "libnope.so"], False)):
            with self.assertRaises(ImportError) as cm:
                _lib.load_library()
        msg = str(cm.exception)
        self.assertIn("not found", msg)
        self.assertIn("TEXTDIFF_LIBRARY", msg)
        self.assertIn("/nope/libtextdiff.so.1", msg)
        self.assertIn("libnope.so", msg)

    def test_search_order_without_the_variable(self):
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("TEXTDIFF_LIBRARY", None)
            candidates, from_env = _lib.find_library()
        self.assertFalse(from_env)
        self.assertIn("libtextdiff.so.%d" % td.ABI_VERSION, candidates)

    @unittest.skipUnless(ctypes.util.find_library("z"), "no libz to load")
    def test_not_libtextdiff(self):
        with self.assertRaises(ImportError) as cm:
            _lib.load_library(ctypes.util.find_library("z"))
        self.assertIn("does not export td_", str(cm.exception))


class TestSearchOrder(unittest.TestCase):
    """Each way of finding the library, in a fresh interpreter."""

    code = "import textdiff; print(textdiff.library_path)"

    def test_bad_environment_variable_is_an_import_error(self):
        r = _run(self.code, {"TEXTDIFF_LIBRARY": "/nonexistent/libtextdiff.so",
                             "PYTHONPATH": support.PACKAGE_ROOT})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("TEXTDIFF_LIBRARY=/nonexistent/libtextdiff.so", r.stderr)

    def test_system_dynamic_linker(self):
        soname = "libtextdiff.so.%d" % td.ABI_VERSION
        if not os.path.exists(os.path.join(os.path.dirname(LIB), soname)):
            self.skipTest("no %s next to %s" % (soname, LIB))
        r = _run(self.code, {"LD_LIBRARY_PATH": os.path.dirname(os.path.abspath(LIB)),
                             "PYTHONPATH": support.PACKAGE_ROOT})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), soname)

    def test_copy_in_the_package_directory(self):
        with tempfile.TemporaryDirectory() as tmp:
            pkg = os.path.join(tmp, "textdiff")
            shutil.copytree(os.path.join(support.PACKAGE_ROOT, "textdiff"), pkg,
                            ignore=shutil.ignore_patterns("__pycache__"))
            copy = os.path.join(pkg, "libtextdiff.so.%d" % td.ABI_VERSION)
            shutil.copy(LIB, copy)
            r = _run(self.code, {"PYTHONPATH": tmp, "LD_LIBRARY_PATH": ""})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), copy)


class TestRuntime(unittest.TestCase):
    def test_report(self):
        r = td.runtime_info()
        self.assertIsInstance(r, td.RuntimeInfo)
        self.assertIn(r.blas_name, ("OpenBLAS", "BLIS", "reference"))
        self.assertEqual(r.lib_threading, "pthread pool")
        self.assertIn(r.blas_threading, [t.value for t in td.BlasThreading])
        self.assertEqual(bool(r.blas_slow_kernel), bool(r.blas_advice))


if __name__ == "__main__":
    unittest.main()
