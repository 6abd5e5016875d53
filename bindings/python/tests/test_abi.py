"""The binding against the C header: struct layouts (from the compiler, via
tests/abi/layout.c), every function's prototype, every enum's values and
the version constants. A header change not made in the binding fails here."""

import ctypes
import json
import re
import subprocess
import unittest

import support
from support import td

from textdiff import _lib


def _header():
    with open(support.HEADER, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _split_params(params):
    params = " ".join(params.split())
    return [] if params in ("void", "") else [p.strip() for p in params.split(",")]


# C type spellings of the header -> the ctypes type the binding must use.
_SCALARS = {
    "uint32_t": ctypes.c_uint32, "int32_t": ctypes.c_int32, "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64, "size_t": ctypes.c_size_t, "double": ctypes.c_double,
    "float": ctypes.c_float, "uint8_t": ctypes.c_uint8, "td_sampler_callback": _lib.SAMPLER_CALLBACK,
    "td_sampler_stream_fn": _lib.SAMPLER_STREAM, "td_sampler_logits_fn": _lib.SAMPLER_LOGITS,
    "td_reduce_fn": _lib.REDUCE_FN,
}
_OPAQUE = {name: getattr(_lib, name) for name in
           ("td_schedule", "td_tokenizer", "td_corpus", "td_model", "td_trainer", "td_sampler",
            "td_latent_model", "td_latent_trainer")}


def _ctype(decl, enums):
    """The ctypes type for a C parameter or return declaration."""
    decl = decl.replace("const ", "").replace("*", " * ").split()
    stars = decl.count("*")
    words = [w for w in decl if w != "*"]
    base = words[0]
    if base in enums:
        t = ctypes.c_int
    elif base == "void":
        if stars == 0:
            return None
        t, stars = ctypes.c_void_p, stars - 1
    elif base == "char":
        t, stars = ctypes.c_char_p, stars - 1
    elif base in _SCALARS:
        t = _SCALARS[base]
    elif base in _OPAQUE:
        t, stars = ctypes.POINTER(_OPAQUE[base]), stars - 1
    elif base in _lib.STRUCTS:
        t = _lib.STRUCTS[base]
    else:
        raise AssertionError("no ctypes mapping for C type %r" % base)
    for _ in range(stars):
        t = ctypes.POINTER(t)
    return t


def _header_enums(text):
    enums = {}
    for body, name in re.findall(r"typedef enum \w+ \{(.*?)\}\s*(\w+);", text, flags=re.S):
        enums[name] = {k: int(v) << int(shift or 0) for k, v, shift in
                       re.findall(r"(TD_\w+)\s*=\s*(-?\d+)(?:\s*<<\s*(\d+))?", body)}
    return enums


class TestLayouts(unittest.TestCase):
    """Every ctypes.Structure has the size, field names, offsets and sizes the
    compiler gives the C struct."""

    @classmethod
    def setUpClass(cls):
        if not support.LAYOUT_HELPER:
            raise unittest.SkipTest("TEXTDIFF_LAYOUT_HELPER is not set (ctest sets it)")
        out = subprocess.run([support.LAYOUT_HELPER], check=True, capture_output=True, text=True)
        cls.layouts = json.loads(out.stdout)

    def test_same_structs(self):
        self.assertEqual(sorted(self.layouts), sorted(_lib.STRUCTS))

    def test_each_struct(self):
        for name, layout in self.layouts.items():
            cls = _lib.STRUCTS[name]
            with self.subTest(struct=name):
                self.assertEqual(ctypes.sizeof(cls), layout["size"])
                self.assertEqual([f[0] for f in cls._fields_],
                                 [f["name"] for f in layout["fields"]])
                for f in layout["fields"]:
                    desc = getattr(cls, f["name"])
                    self.assertEqual(desc.offset, f["offset"], f["name"])
                    self.assertEqual(desc.offset, f["pinned"], f["name"])
                    self.assertEqual(desc.size, f["size"], f["name"])


class TestHeader(unittest.TestCase):
    """Prototypes, enums and version numbers parsed from the header."""

    @classmethod
    def setUpClass(cls):
        cls.text = _header()
        cls.enums = _header_enums(cls.text)

    def test_every_function_declared_exactly(self):
        found = re.findall(r"\bTD_API\s+([^;(]*?)\b(td_\w+)\s*\(([^)]*)\)\s*;", self.text)
        self.assertGreater(len(found), 50)
        names = set()
        for ret, name, params in found:
            names.add(name)
            with self.subTest(function=name):
                self.assertIn(name, _lib.PROTOTYPES)
                restype, argtypes = _lib.PROTOTYPES[name]
                self.assertIs(restype, _ctype(ret, self.enums), "return type")
                want = [_ctype(re.match(r"(.*?)\w+$", p).group(1), self.enums)
                        for p in _split_params(params)]
                self.assertEqual(len(argtypes), len(want), "argument count")
                for i, (have, need) in enumerate(zip(argtypes, want)):
                    # const void *data is declared as char * (bytes without a copy)
                    if need is ctypes.c_void_p and have is ctypes.c_char_p:
                        continue
                    self.assertIs(have, need, "argument %d" % i)
        self.assertEqual(set(_lib.PROTOTYPES) - names, set(), "not in the header")

    def test_every_function_is_typed_in_the_library(self):
        for name, (restype, argtypes) in _lib.PROTOTYPES.items():
            fn = getattr(_lib.lib, name)
            self.assertEqual(fn.argtypes, argtypes, name)
            self.assertIs(fn.restype, restype, name)

    def test_enums(self):
        binding = {
            "td_status": (td.Status, "TD_"),
            "td_schedule_kind": (td.ScheduleKind, "TD_SCHEDULE_"),
            "td_special_token": (td.SpecialToken, "TD_TOKEN_"),
            "td_split": (td.Split, "TD_SPLIT_"),
            "td_pos_encoding": (td.PosEncoding, "TD_POS_"),
            "td_norm_placement": (td.NormPlacement, "TD_NORM_"),
            "td_activation": (td.Activation, "TD_ACT_"),
            "td_dtype": (td.DType, "TD_DTYPE_"),
            "td_sampler_strategy": (td.Strategy, "TD_SAMPLER_"),
            "td_sampler_remask": (td.Remask, "TD_SAMPLER_REMASK_"),
            "td_sampler_approx": (td.Approx, "TD_SAMPLER_APPROX_"),
            "td_sampler_tokens": (td.TokenList, "TD_SAMPLER_TOKENS_"),
            "td_resume_flags": (td.ResumeFlags, "TD_RESUME_"),
            "td_blas_threading": (td.BlasThreading, "TD_BLAS_"),
            "td_latent_schedule": (td.LatentSchedule, "TD_LATENT_SCHEDULE_"),
            "td_latent_prediction": (td.LatentPrediction, "TD_LATENT_PREDICT_"),
            "td_latent_stage": (td.LatentStage, "TD_LATENT_STAGE_"),
            "td_latent_sampler_kind": (td.LatentSampler, "TD_LATENT_SAMPLER_"),
        }
        self.assertEqual(sorted(self.enums), sorted(binding))
        for cname, (py, prefix) in binding.items():
            with self.subTest(enum=cname):
                want = {k[len(prefix):]: v for k, v in self.enums[cname].items()}
                self.assertEqual({k: m.value for k, m in py.__members__.items()}, want)

    def test_version_constants(self):
        defs = dict(re.findall(r"#define (TD_\w+) +(\d+)\s", self.text))
        self.assertEqual(_lib.ABI_VERSION, int(defs["TD_ABI_VERSION"]))
        number = (int(defs["TD_VERSION_MAJOR"]) * 10000 + int(defs["TD_VERSION_MINOR"]) * 100
                  + int(defs["TD_VERSION_PATCH"]))
        self.assertEqual(_lib.VERSION_NUMBER, number)
        self.assertEqual(td.__version__, "%s.%s.%s" % (
            defs["TD_VERSION_MAJOR"], defs["TD_VERSION_MINOR"], defs["TD_VERSION_PATCH"]))


class TestDocstrings(unittest.TestCase):
    def test_every_public_name_is_documented(self):
        missing = []
        for name in td.__all__:
            obj = getattr(td, name)
            if not callable(obj):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if not isinstance(obj, type):
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                if callable(member) or isinstance(member, property):
                    if not (member.__doc__ or "").strip():
                        missing.append("%s.%s" % (name, attr))
        self.assertEqual(missing, [])


if __name__ == "__main__":
    unittest.main()
