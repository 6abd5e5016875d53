"""The runtime report: which BLAS, which of its kernels, how many threads."""

import enum

from . import _lib
from ._core import check, lib, make_record, new_struct, to_record


class BlasThreading(enum.IntEnum):
    """td_blas_threading: how the BLAS runs its own threads."""

    THREADING_UNKNOWN = -1
    SERIAL = 0
    PTHREADS = 1
    OPENMP = 2


RuntimeInfo = make_record("RuntimeInfo", _lib.td_runtime_info, """\
What the library runs on (td_runtime_info): cpu_features (TD_CPU_* bits),
blas_name, blas_version, blas_core (the kernels it runs), blas_threads,
blas_threading, lib_threading, and blas_slow_kernel with blas_advice when
the BLAS runs kernels far below what the CPU supports.""")


def runtime_info():
    """The runtime report (td_runtime_info_get): print it next to any speed
    figure. Returns a RuntimeInfo whose strings are str."""
    out = new_struct(_lib.td_runtime_info)
    check(lib.td_runtime_info_get(out))
    rec = to_record(RuntimeInfo, out)
    return rec._replace(**{k: v.decode("utf-8", "replace") for k, v in rec._asdict().items()
                           if isinstance(v, bytes)})
