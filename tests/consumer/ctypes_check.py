"""Load the installed shared library with ctypes and check its version."""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.td_version_string.restype = ctypes.c_char_p
lib.td_version_number.restype = ctypes.c_uint32
lib.td_abi_version.restype = ctypes.c_uint32
lib.td_check_version.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
lib.td_check_version.restype = ctypes.c_int
lib.td_status_string.argtypes = [ctypes.c_int]
lib.td_status_string.restype = ctypes.c_char_p
lib.td_last_error_message.restype = ctypes.c_char_p

version = lib.td_version_string().decode()
major, minor, patch = (int(x) for x in version.split("."))
assert lib.td_version_number() == major * 10000 + minor * 100 + patch, version
expected = sys.argv[2]
assert version == expected, (version, expected)
abi = lib.td_abi_version()
assert lib.td_check_version(abi, lib.td_version_number()) == 0
assert lib.td_check_version(abi + 1, 0) == 6  # TD_ERR_VERSION
assert b"ABI" in lib.td_last_error_message()
assert lib.td_status_string(2) == b"out of memory"


class RuntimeInfo(ctypes.Structure):
    """td_runtime_info: integers and fixed-size strings only."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("cpu_features", ctypes.c_uint32),
                ("blas_name", ctypes.c_char * 16), ("blas_version", ctypes.c_char * 128),
                ("blas_core", ctypes.c_char * 32), ("blas_threads", ctypes.c_int32),
                ("blas_threading", ctypes.c_int32), ("lib_threading", ctypes.c_char * 32),
                ("blas_slow_kernel", ctypes.c_int32), ("reserved0", ctypes.c_int32),
                ("blas_advice", ctypes.c_char * 128)]


assert ctypes.sizeof(RuntimeInfo) == 360
lib.td_runtime_info_get.argtypes = [ctypes.POINTER(RuntimeInfo)]
lib.td_runtime_info_get.restype = ctypes.c_int
info = RuntimeInfo(struct_size=ctypes.sizeof(RuntimeInfo))
assert lib.td_runtime_info_get(ctypes.byref(info)) == 0
assert info.blas_name in (b"OpenBLAS", b"BLIS", b"reference"), info.blas_name
assert info.lib_threading, info.lib_threading
print("ctypes: libtextdiff", version, "ABI", abi, "on", info.blas_name.decode(),
      info.blas_core.decode() or "(core unknown)", "ok")
