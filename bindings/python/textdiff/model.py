"""The transformer: create, load, save, logits."""

import ctypes
import enum

from . import _lib
from ._core import Handle, as_buffer, batch_shape, check, int_arg, lib, make_record, \
    new_handle, new_output, path_arg, set_fields, to_record, typed, use
from .tokenizer import Tokenizer


class PosEncoding(enum.IntEnum):
    """td_pos_encoding."""

    ROPE = 0     #: rotary embeddings inside attention (default)
    LEARNED = 1  #: learned absolute position embeddings (BERT)


class Activation(enum.IntEnum):
    """td_activation."""

    GELU_TANH = 0  #: GELU, tanh approximation (GPT-2; Hugging Face "gelu_new") (default)
    GELU_ERF = 1   #: GELU, exact erf form (BERT; Hugging Face "gelu")


class NormPlacement(enum.IntEnum):
    """td_norm_placement."""

    PRE = 0   #: LayerNorm before each sub-layer, and at the end
    POST = 1  #: LayerNorm after each residual sum (BERT)


class DType(enum.IntEnum):
    """td_dtype: how a model's weights are stored (Model.convert)."""

    F32 = 0   #: float32: every model that convert() did not make
    BF16 = 1  #: bfloat16 weights, float32 arithmetic
    Q8_0 = 2  #: 8-bit weights in blocks of 32 with a float32 scale


ModelConfig = make_record("ModelConfig", _lib.td_model_config, """\
A model's configuration (td_model_config): vocab_size, mask_id,
max_seq_len, d_model, n_layers, n_heads, d_ff, pos_encoding,
norm_placement, tie_embeddings, causal, activation, layer_norm_eps,
type_vocab_size, pos_offset, head_transform. ``Model(**cfg._asdict())`` makes
another model like it.""")


class Model(Handle):
    """A bidirectional transformer encoder (td_model).

    ``Model(seed=1, tokenizer=None, **config)`` creates one from the
    library's defaults with the given td_model_config fields (vocab_size,
    mask_id, max_seq_len, d_model, n_layers, n_heads, d_ff, pos_encoding —
    a PosEncoding or "rope"/"learned" —, norm_placement — a NormPlacement
    or "pre"/"post" —, tie_embeddings, causal — 1 for an autoregressive
    model trained on next-token prediction —, activation — an Activation —,
    layer_norm_eps, type_vocab_size, pos_offset, head_transform: the options
    of docs/model.md), its parameters initialised from
    `seed`. With a `tokenizer`, vocab_size and mask_id default to its own
    and the tokenizer travels with the model's checkpoints.
    ``Model.load(path)`` and ``Model.load_memory(data)`` read a checkpoint;
    ``Model.load_hf(directory)`` a Hugging Face model (docs/hf.md).

    Sampling and evaluation only read a model, so samplers on several
    threads may share it; a Trainer updates it in place. A model is kept
    alive (even after close()) while a Trainer or Sampler made on it is open.
    """

    _kind = "model"
    _free = lib.td_model_free
    _errmsg = lib.td_model_errmsg

    def __init__(self, seed=1, tokenizer=None, **config):
        """A new model: td_model_config fields as keyword arguments, the
        parameters initialised from `seed`, `tokenizer` (optional) stored in
        it and giving vocab_size and mask_id their defaults."""
        cfg = _lib.td_model_config()
        check(lib.td_model_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)))
        if tokenizer is not None:
            typed("tokenizer", tokenizer, Tokenizer)
            config.setdefault("vocab_size", tokenizer.vocab_size)
            config.setdefault("mask_id", tokenizer.mask_id)
        set_fields("model config", cfg, config,
                   {"pos_encoding": PosEncoding, "norm_placement": NormPlacement,
                    "activation": Activation})
        ptr = new_handle(_lib.P_model, lib.td_model_create, ctypes.byref(cfg),
                         int_arg("seed", seed, ctypes.c_uint64), None)
        super().__init__(ptr)
        if tokenizer is not None:
            try:
                self.set_tokenizer(tokenizer)
            except BaseException:
                self.close()
                raise

    @classmethod
    def load(cls, path):
        """Reads a checkpoint written by save() or Trainer.save(); raises
        FormatError, CorruptError, VersionError or InputOutputError with the
        reason."""
        return cls._wrap(new_handle(_lib.P_model, lib.td_model_load, path_arg(path), None))

    @classmethod
    def load_memory(cls, data):
        """Reads a checkpoint from a bytes-like object (not kept)."""
        if not isinstance(data, bytes):
            try:
                data = memoryview(data).tobytes()
            except TypeError:
                raise TypeError("data must be bytes-like, not %s"
                                % type(data).__name__) from None
        return cls._wrap(new_handle(_lib.P_model, lib.td_model_load_memory, data, len(data),
                                    None))

    @classmethod
    def load_hf(cls, directory, mask_id=-1):
        """Reads a Hugging Face BertForMaskedLM, RobertaForMaskedLM or
        DistilBertForMaskedLM directory (config.json + model.safetensors;
        docs/hf.md). mask_id: the [MASK] token's id, or -1 to take it from
        the directory's tokenizer.json."""
        return cls._wrap(new_handle(_lib.P_model, lib.td_model_load_hf, path_arg(directory),
                                    mask_id, 0, None))

    def save(self, path):
        """Writes a checkpoint atomically (temporary file, fsync, rename)."""
        self._call(lib.td_model_save, path_arg(path))

    def convert(self, dtype):
        """A new inference-only Model whose weight matrices and token
        embedding are stored as `dtype` (DType.BF16 or DType.Q8_0;
        docs/quantization.md). It samples, evaluates and saves like any
        model; Trainer and save_hf refuse it (UnsupportedError). StateError
        when this model is converted already."""
        out = _lib.P_model()
        self._call(lib.td_model_convert, int_arg("dtype", dtype), None, ctypes.byref(out))
        return Model._wrap(out)

    @property
    def dtype(self):
        """The DType its weights are stored in."""
        d = ctypes.c_int32()
        self._call(lib.td_model_get_dtype, ctypes.byref(d))
        return DType(d.value)

    def save_hf(self, directory):
        """Writes config.json and model.safetensors (F32) of the matching
        Hugging Face architecture into directory (created if missing), each
        file atomically; UnsupportedError for a model with none."""
        self._call(lib.td_model_save_hf, path_arg(directory), 0)

    @property
    def config(self):
        """The model's ModelConfig."""
        cfg = _lib.td_model_config()
        cfg.struct_size = ctypes.sizeof(cfg)
        self._call(lib.td_model_get_config, ctypes.byref(cfg))
        return to_record(ModelConfig, cfg)

    @property
    def num_params(self):
        """The number of parameters."""
        n = ctypes.c_uint64()
        self._call(lib.td_model_num_params, ctypes.byref(n))
        return n.value

    def logits(self, ids, n_threads=1, batch=None, out=None):
        """The logits of every position of `ids` (the [MASK] column is −inf).

        `ids` is (batch, seq_len) or one sequence (seq_len,) — a numpy
        int32 array or array.array('i') used in place, or lists (copied);
        `batch` splits a flat buffer into that many rows. The result has
        batch·seq_len·vocab_size float32 values: `out` when given (a
        writable C-contiguous float32 buffer of that size, filled in place),
        else a new numpy array shaped ids.shape + (vocab_size,) when `ids`
        is a numpy array, else a flat array.array('f')."""
        n_threads = int_arg("n_threads", n_threads)
        v = self.config.vocab_size
        buf = as_buffer("ids", ids)
        b, t = batch_shape("ids", buf, batch)
        if out is None:
            out = new_output("float32", tuple(buf.shape) + (v,),
                             type(ids).__module__ == "numpy")
        obuf = as_buffer("out", out, kind="float32", writable=True, size=b * t * v)
        self._call(lib.td_model_logits, buf.ptr, b, t, n_threads, obuf.ptr)
        obuf.commit()
        return out

    def set_tokenizer(self, tokenizer):
        """Stores a copy of `tokenizer`'s description in the model (its
        vocab_size and [MASK] id must match), to travel with checkpoints."""
        typed("tokenizer", tokenizer, Tokenizer)
        with use(self, tokenizer) as (h, tok):
            self._check(lib.td_model_set_tokenizer(h, tok))

    def get_tokenizer(self):
        """A new Tokenizer from the model's description; StateError when the
        model has none."""
        out = _lib.P_tokenizer()
        self._call(lib.td_model_get_tokenizer, None, ctypes.byref(out))
        return Tokenizer._wrap(out)
