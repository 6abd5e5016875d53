"""textdiff: Python bindings for libtextdiff, masked discrete text diffusion
(and BERT's MLM as its fixed-rate special case) trained and sampled on the
CPU.

A pure-ctypes package over the library's stable C ABI. The shared library
is found through the TEXTDIFF_LIBRARY environment variable (a full path),
then a copy inside this package's directory, then the system's dynamic
linker (libtextdiff.so.<ABI>); importing the package fails with ImportError
when none is usable or its ABI generation differs from this binding's.

    import textdiff as td

    tok = td.Tokenizer.byte()
    corpus = td.Corpus.from_text(open("book.txt").read(), tok)
    model = td.Model(tokenizer=tok, d_model=64, n_layers=2, n_heads=4, max_seq_len=64)
    trainer = td.Trainer(model, td.Schedule.diffusion(), batch_size=8, seq_len=64)
    for step in range(200):
        stats = trainer.step(corpus.batch(8, 64, index=step))
    sampler = td.Sampler(model, td.Schedule.diffusion(), steps=32)
    canvas = [tok.mask_id] * 64
    sampler.generate(canvas)
    print(tok.decode(canvas))

See docs/python.md in the libtextdiff sources.
"""

import collections

from . import _lib
from ._core import int_arg as _int_arg
from ._core import lib as _c
from .corpus import Corpus, Split
from .errors import CancelledError, CorruptError, FormatError, InputOutputError, \
    InternalError, InvalidArgumentError, NoMemoryError, NumericError, StateError, Status, \
    TextdiffError, UnsupportedError, VersionError
from .evaluation import EvalConfig, EvalResult, RateLoss, TextStats, eval_gen_perplexity, \
    eval_nelbo, eval_rates, text_stats
from .latent import LatentPrediction, LatentSampler, LatentSchedule, LatentStage
from .model import Activation, DType, Model, ModelConfig, NormPlacement, PosEncoding
from .runtime import BlasThreading, RuntimeInfo, runtime_info
from .sampler import Approx, Remask, SampleStats, Sampler, SamplerConfig, Strategy, TokenList
from .schedule import Schedule, ScheduleConfig, ScheduleKind
from .tokenizer import SpecialToken, Tokenizer
from .trainer import ResumeFlags, Trainer, TrainerConfig, TrainStats

#: The binding's own version: the libtextdiff release it was written for.
__version__ = "%d.%d.%d" % (_lib.VERSION_NUMBER // 10000, _lib.VERSION_NUMBER // 100 % 100,
                            _lib.VERSION_NUMBER % 100)

#: TD_ABI_VERSION of the header this binding follows; the loaded library's
#: td_abi_version() equals it.
ABI_VERSION = _lib.ABI_VERSION

#: The path or name the shared library was loaded from.
library_path = _lib.path

VersionInfo = collections.namedtuple("VersionInfo", ["major", "minor", "patch"])
VersionInfo.__doc__ = "A libtextdiff release number."


def version():
    """The loaded library's release, e.g. "1.0.0" (td_version_string)."""
    return _c.td_version_string().decode("ascii")


def version_info():
    """The loaded library's release as VersionInfo(major, minor, patch)."""
    n = _c.td_version_number()
    return VersionInfo(n // 10000, n // 100 % 100, n % 100)


def abi_version():
    """The loaded library's ABI generation (its SONAME number)."""
    return _c.td_abi_version()


def status_string(status):
    """The library's static English text for a status code."""
    return _c.td_status_string(_int_arg("status", status)).decode("utf-8", "replace")


__all__ = [
    "ABI_VERSION", "Activation", "BlasThreading", "CancelledError", "Corpus", "CorruptError",
    "DType",
    "EvalConfig", "EvalResult", "FormatError", "InputOutputError", "InternalError",
    "InvalidArgumentError", "LatentPrediction", "LatentSampler", "LatentSchedule",
    "LatentStage", "Model", "ModelConfig", "NoMemoryError", "NormPlacement",
    "NumericError", "PosEncoding",
    "Approx", "RateLoss", "Remask", "ResumeFlags", "RuntimeInfo", "SampleStats", "Sampler", "SamplerConfig",
    "Schedule", "ScheduleConfig", "ScheduleKind", "SpecialToken", "Split", "StateError",
    "Status", "Strategy", "TextStats", "TextdiffError", "TokenList", "Tokenizer", "TrainStats", "Trainer",
    "TrainerConfig", "UnsupportedError", "VersionError", "VersionInfo", "abi_version",
    "eval_gen_perplexity", "eval_nelbo", "eval_rates", "library_path", "runtime_info",
    "status_string", "text_stats", "version", "version_info",
]
