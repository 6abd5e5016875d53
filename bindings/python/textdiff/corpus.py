"""Corpora: a text tokenised once, split into training and validation."""

import ctypes
import enum

from . import _lib
from ._core import Handle, as_buffer, enum_arg, int_arg, lib, new_handle, new_output, \
    path_arg, text_arg, typed, use
from .tokenizer import Tokenizer


class Split(enum.IntEnum):
    """td_split."""

    TRAIN = 0
    VALID = 1


def _output(name, out, n):
    """`out` checked for n int32 elements, or a new array.array('i')."""
    if out is None:
        out = new_output("int32", (n,), False)
    return out, as_buffer(name, out, writable=True, size=n)


class Corpus(Handle):
    """A text (plain or gzip) tokenised once and split deterministically
    into training and validation (every 20th block of 8192 tokens is
    validation). Immutable; may be read by several threads at once.

    Methods that return token ids fill `out` when given (a writable,
    C-contiguous int32 buffer: a numpy array or an array.array('i') of the
    right size, filled in place, no copy) and otherwise return a new flat
    array.array('i') (``numpy.frombuffer(a, dtype=numpy.int32)`` views it
    without a copy). `split` is a Split, 0/1, or "train"/"valid".
    """

    _kind = "corpus"
    _free = lib.td_corpus_free
    _errmsg = lib.td_corpus_errmsg

    #: The Tokenizer the text was tokenised with.
    tokenizer = None

    def __init__(self):
        """Not called directly: use Corpus.load() or Corpus.from_text()."""
        raise TypeError("use Corpus.load(path, tokenizer) or Corpus.from_text(text, tokenizer)")

    @classmethod
    def _make(cls, ptr, tokenizer):
        obj = cls._wrap(ptr)
        obj.tokenizer = tokenizer
        return obj

    @classmethod
    def load(cls, path, tokenizer, separator=None):
        """Reads and tokenises a file (plain or gzip, at most 1 GiB of text).
        With a separator (e.g. "\\n"), documents end after each occurrence
        and each is followed by the tokenizer's end token
        (td_corpus_load_docs)."""
        typed("tokenizer", tokenizer, Tokenizer)
        with use(tokenizer) as tok:
            if separator is not None:
                return cls._make(new_handle(_lib.P_corpus, lib.td_corpus_load_docs,
                                            path_arg(path), text_arg("separator", separator),
                                            tok, None), tokenizer)
            return cls._make(new_handle(_lib.P_corpus, lib.td_corpus_load, path_arg(path), tok,
                                        None), tokenizer)

    @classmethod
    def from_text(cls, text, tokenizer, separator=None):
        """Tokenises `text` (str as UTF-8, or bytes), which is copied; with a
        separator as in load() (td_corpus_create_docs)."""
        data = text_arg("text", text)
        typed("tokenizer", tokenizer, Tokenizer)
        with use(tokenizer) as tok:
            if separator is not None:
                return cls._make(new_handle(_lib.P_corpus, lib.td_corpus_create_docs, data,
                                            len(data), text_arg("separator", separator), tok,
                                            None), tokenizer)
            return cls._make(new_handle(_lib.P_corpus, lib.td_corpus_create, data, len(data),
                                        tok, None), tokenizer)

    def num_tokens(self, split=Split.TRAIN):
        """The number of tokens of a split."""
        n = ctypes.c_uint64()
        self._call(lib.td_corpus_num_tokens, enum_arg("split", split, Split), ctypes.byref(n))
        return n.value

    def batch(self, batch, seq_len, index=0, seed=1, split=Split.TRAIN, out=None):
        """Batch number `index` of a run seeded with `seed`: `batch` windows
        of seq_len tokens at random offsets of the split, flat
        (row b·seq_len + i). Stateless: the same (seed, index) always gives
        the same batch (index a training run by its step)."""
        batch = int_arg("batch", batch)
        seq_len = int_arg("seq_len", seq_len)
        self._check_open()
        out, buf = _output("out", out, max(batch, 0) * max(seq_len, 0) or 1)
        self._call(lib.td_corpus_batch, enum_arg("split", split, Split),
                   int_arg("seed", seed, ctypes.c_uint64), int_arg("index", index, ctypes.c_uint64),
                   batch, seq_len, buf.ptr)
        return out

    def num_windows(self, seq_len, split=Split.VALID):
        """How many non-overlapping windows of seq_len tokens tile the split."""
        n = ctypes.c_uint64()
        self._call(lib.td_corpus_num_windows, enum_arg("split", split, Split),
                   int_arg("seq_len", seq_len), ctypes.byref(n))
        return n.value

    def window(self, seq_len, index, split=Split.VALID, out=None):
        """A copy of window `index` of the split (text order)."""
        seq_len = int_arg("seq_len", seq_len)
        self._check_open()
        out, buf = _output("out", out, max(seq_len, 1))
        self._call(lib.td_corpus_window, enum_arg("split", split, Split), seq_len,
                   int_arg("index", index, ctypes.c_uint64), buf.ptr)
        return out

    def windows(self, seq_len, count=None, split=Split.VALID, out=None):
        """The first `count` windows (all when None), one after another: a
        token stream for eval_nelbo() and eval_rates()."""
        seq_len = int_arg("seq_len", seq_len)
        total = self.num_windows(seq_len, split)
        count = total if count is None else min(int_arg("count", count, ctypes.c_uint64), total)
        if count == 0 and out is None:
            return new_output("int32", (0,), False)
        out, buf = _output("out", out, max(count * seq_len, 1))
        row = ctypes.cast(buf.ptr, ctypes.c_void_p).value
        s = enum_arg("split", split, Split)
        with use(self) as h:
            for k in range(count):
                ptr = ctypes.cast(row + 4 * k * seq_len, ctypes.POINTER(ctypes.c_int32))
                self._check(lib.td_corpus_window(h, s, seq_len, k, ptr))
        return out
