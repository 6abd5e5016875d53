"""Tokenizers: byte-level, character-level, Hugging Face WordPiece and
byte-level BPE."""

import ctypes
import enum

from . import _lib
from ._core import Handle, as_buffer, enum_arg, int_arg, lib, new_handle, text_arg
from .errors import InvalidArgumentError


class SpecialToken(enum.IntEnum):
    """td_special_token."""

    MASK = 0  #: the absorbing [MASK]
    PAD = 1   #: [PAD]: ends variable-length output
    UNK = 2   #: [UNK] (<unk>): capped character vocabularies, WordPiece, some BPE
    CLS = 3   #: [CLS] or <s>: a Hugging Face sequence start
    SEP = 4   #: [SEP] or </s>: a Hugging Face sequence end
    EOS = 5   #: end of text: [EOS] (258) of Tokenizer.byte(eos=True); a Hugging Face [SEP] or </s>


class Tokenizer(Handle):
    """Text to token ids and back (td_tokenizer). Immutable; may be shared
    across threads.

    Make one with ``Tokenizer.byte()`` (ids 0..255 are bytes, [MASK] = 256,
    [PAD] = 257), ``Tokenizer.char(text, max_chars=0)`` or
    ``Tokenizer.load_hf(directory)`` (a Hugging Face WordPiece or byte-level
    BPE vocabulary), or get the one a model was saved with from
    ``Model.get_tokenizer()``.
    """

    _kind = "tokenizer"
    _free = lib.td_tokenizer_free
    _errmsg = lib.td_tokenizer_errmsg

    def __init__(self):
        """Not called directly: use Tokenizer.byte() or Tokenizer.char()."""
        raise TypeError("use Tokenizer.byte() or Tokenizer.char(text)")

    @classmethod
    def byte(cls, eos=False):
        """The byte-level tokenizer: every byte string round-trips exactly.
        With eos=True it has an end of text, [EOS] = 258 (vocabulary 259;
        td_tokenizer_create_byte_eos), at which decoding stops."""
        fn = lib.td_tokenizer_create_byte_eos if eos else lib.td_tokenizer_create_byte
        return cls._wrap(new_handle(_lib.P_tokenizer, fn, None))

    @classmethod
    def char(cls, text, max_chars=0):
        """The character vocabulary of `text` (str, or UTF-8 bytes): every
        code point it holds, or with max_chars > 0 the max_chars most
        frequent ones plus [UNK]."""
        data = text_arg("text", text)
        return cls._wrap(new_handle(_lib.P_tokenizer, lib.td_tokenizer_create_char, data, len(data),
                              int_arg("max_chars", max_chars, ctypes.c_uint32), None))

    @classmethod
    def load_hf(cls, directory):
        """A Hugging Face tokenizer from `directory`: its tokenizer.json, else
        vocab.json + merges.txt (byte-level BPE), else vocab.txt (WordPiece;
        do_lower_case from tokenizer_config.json). Ids are the vocabulary's."""
        path = text_arg("directory", directory)
        return cls._wrap(new_handle(_lib.P_tokenizer, lib.td_tokenizer_load_hf, path, None))

    @property
    def vocab_size(self):
        """The number of ids, special tokens included."""
        n = ctypes.c_int32()
        self._call(lib.td_tokenizer_vocab_size, ctypes.byref(n))
        return n.value

    def special_id(self, which):
        """The id of a SpecialToken (or its name: "mask", "pad", "unk");
        InvalidArgumentError if this tokenizer has none."""
        out = ctypes.c_int32()
        self._call(lib.td_tokenizer_special_id, enum_arg("which", which, SpecialToken),
                   ctypes.byref(out))
        return out.value

    @property
    def mask_id(self):
        """The [MASK] id."""
        return self.special_id(SpecialToken.MASK)

    @property
    def pad_id(self):
        """The [PAD] id."""
        return self.special_id(SpecialToken.PAD)

    @property
    def unk_id(self):
        """The [UNK] id, or None when the vocabulary has no [UNK]."""
        try:
            return self.special_id(SpecialToken.UNK)
        except InvalidArgumentError:
            return None

    def encode(self, text, framed=False):
        """The ids of `text` (str, encoded as UTF-8, or bytes), as a list;
        framed=True puts [CLS] ... [SEP] (<s> ... </s>) around them
        (td_tokenizer_encode_framed)."""
        data = text_arg("text", text)
        fn = lib.td_tokenizer_encode_framed if framed else lib.td_tokenizer_encode
        n = ctypes.c_size_t()
        self._call(fn, data, len(data), None, 0, ctypes.byref(n))
        ids = (ctypes.c_int32 * max(n.value, 1))()
        self._call(fn, data, len(data), ids, n.value, ctypes.byref(n))
        return ids[:n.value]

    def decode_bytes(self, ids, mask_text="_"):
        """The bytes of `ids` (a list, array or numpy int32 array), up to
        the first [PAD]; each [MASK] becomes `mask_text`. Byte-level output
        need not be valid UTF-8."""
        buf = as_buffer("ids", ids, allow_empty=True)
        if buf.n == 0:
            return b""
        mask = text_arg("mask_text", mask_text)
        need = ctypes.c_size_t()
        self._call(lib.td_tokenizer_decode, buf.ptr, buf.n, mask, None, 0, ctypes.byref(need))
        out = ctypes.create_string_buffer(need.value + 1)
        self._call(lib.td_tokenizer_decode, buf.ptr, buf.n, mask, out, len(out),
                   ctypes.byref(need))
        return out.raw[:need.value]

    def decode(self, ids, mask_text="_", errors="replace"):
        """The text of `ids` as str (see decode_bytes); invalid UTF-8 from a
        byte-level model is handled by `errors` as in bytes.decode."""
        return self.decode_bytes(ids, mask_text).decode("utf-8", errors)
