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
print("ctypes: libtextdiff", version, "ABI", abi, "ok")
