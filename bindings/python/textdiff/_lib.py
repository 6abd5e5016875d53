"""The C ABI as ctypes sees it: struct mirrors, prototypes, and the loader.

Everything here follows include/textdiff/textdiff.h; the struct mirrors are
compared with the compiler's layout by the tests (tests/abi/layout.c), so a
header change that is not made here too fails the build's tests.

Adding a function is one line in PROTOTYPES; adding a struct is one class
plus its entry in STRUCTS.
"""

import ctypes
import ctypes.util
import os
import sys

# The header this binding was written against (TD_ABI_VERSION and
# TD_VERSION_NUMBER). The loaded library must have the same ABI generation
# and be at least this new.
ABI_VERSION = 1
VERSION_NUMBER = 10000  # 1.0.0

LIBRARY_ENV = "TEXTDIFF_LIBRARY"

c_status = ctypes.c_int  # td_status and every other enum parameter
c_enum = ctypes.c_int


# --- opaque handles: typed pointers, so a handle is never truncated to an
# --- int and a tokenizer cannot be passed where a model is expected ---------
class td_schedule(ctypes.Structure):
    """Opaque td_schedule."""


class td_tokenizer(ctypes.Structure):
    """Opaque td_tokenizer."""


class td_corpus(ctypes.Structure):
    """Opaque td_corpus."""


class td_model(ctypes.Structure):
    """Opaque td_model."""


class td_trainer(ctypes.Structure):
    """Opaque td_trainer."""


class td_sampler(ctypes.Structure):
    """Opaque td_sampler."""


class td_latent_model(ctypes.Structure):
    """Opaque td_latent_model."""


class td_latent_trainer(ctypes.Structure):
    """Opaque td_latent_trainer."""


P_schedule = ctypes.POINTER(td_schedule)
P_tokenizer = ctypes.POINTER(td_tokenizer)
P_corpus = ctypes.POINTER(td_corpus)
P_model = ctypes.POINTER(td_model)
P_trainer = ctypes.POINTER(td_trainer)
P_sampler = ctypes.POINTER(td_sampler)
P_latent_model = ctypes.POINTER(td_latent_model)
P_latent_trainer = ctypes.POINTER(td_latent_trainer)


# --- public structs, field for field (reserved ones included) -------------
class td_allocator(ctypes.Structure):
    """Mirror of td_allocator (the binding always passes NULL)."""

    _fields_ = [
        ("malloc_fn", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)),
        ("realloc_fn", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_size_t)),
        ("free_fn", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)),
        ("user", ctypes.c_void_p),
    ]


class td_schedule_config(ctypes.Structure):
    """Mirror of td_schedule_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_int32),
        ("eps", ctypes.c_double),
        ("power", ctypes.c_double),
        ("rate", ctypes.c_double),
        ("t_min", ctypes.c_double),
        ("bert_corruption", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
    ]


class td_model_config(ctypes.Structure):
    """Mirror of td_model_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("vocab_size", ctypes.c_int32),
        ("mask_id", ctypes.c_int32),
        ("max_seq_len", ctypes.c_int32),
        ("d_model", ctypes.c_int32),
        ("n_layers", ctypes.c_int32),
        ("n_heads", ctypes.c_int32),
        ("d_ff", ctypes.c_int32),
        ("pos_encoding", ctypes.c_int32),
        ("norm_placement", ctypes.c_int32),
        ("tie_embeddings", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
        ("causal", ctypes.c_int32),
        ("reserved1", ctypes.c_int32),
        ("activation", ctypes.c_int32),
        ("layer_norm_eps", ctypes.c_float),
        ("type_vocab_size", ctypes.c_int32),
        ("pos_offset", ctypes.c_int32),
        ("head_transform", ctypes.c_int32),
        ("reserved2", ctypes.c_int32),
    ]


class td_trainer_config(ctypes.Structure):
    """Mirror of td_trainer_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("batch_size", ctypes.c_int32),
        ("seq_len", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("lr", ctypes.c_float),
        ("min_lr", ctypes.c_float),
        ("warmup_steps", ctypes.c_int64),
        ("total_steps", ctypes.c_int64),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("clip_norm", ctypes.c_float),
        ("micro_batch", ctypes.c_int32),
    ]


class td_train_stats(ctypes.Structure):
    """Mirror of td_train_stats."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("step", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("grad_norm", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("n_masked", ctypes.c_int64),
    ]


class td_sampler_config(ctypes.Structure):
    """Mirror of td_sampler_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("strategy", ctypes.c_int32),
        ("steps", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("block_len", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("alg_temperature", ctypes.c_float),
        ("pad_id", ctypes.c_int32),
        ("max_batch", ctypes.c_int32),
        ("max_seq_len", ctypes.c_int32),
        ("cache", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
        ("threshold", ctypes.c_float),
        ("factor", ctypes.c_float),
        ("remask", ctypes.c_int32),
        ("eta", ctypes.c_float),
        ("remask_t_on", ctypes.c_float),
        ("remask_t_off", ctypes.c_float),
        ("remask_alpha_on", ctypes.c_float),
        ("guidance", ctypes.c_float),
        ("approx_cache", ctypes.c_int32),
        ("eos_id", ctypes.c_int32),
    ]


class td_sample_stats(ctypes.Structure):
    """Mirror of td_sample_stats."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("model_calls", ctypes.c_int64),
        ("steps", ctypes.c_int64),
        ("cached_steps", ctypes.c_int64),
        ("tokens_revealed", ctypes.c_int64),
        ("tokens_generated", ctypes.c_int64),
        ("tokens_remasked", ctypes.c_int64),
        ("calls_per_token", ctypes.c_double),
    ]


class td_eval_config(ctypes.Structure):
    """Mirror of td_eval_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("seq_len", ctypes.c_int32),
        ("batch_size", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("n_times", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("max_sequences", ctypes.c_int64),
        ("bytes_per_token", ctypes.c_double),
    ]


class td_eval_result(ctypes.Structure):
    """Mirror of td_eval_result."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("nelbo_nats", ctypes.c_double),
        ("nelbo_bits", ctypes.c_double),
        ("bits_per_byte", ctypes.c_double),
        ("perplexity_bound", ctypes.c_double),
        ("std_error_nats", ctypes.c_double),
        ("n_sequences", ctypes.c_int64),
        ("n_tokens", ctypes.c_int64),
    ]


class td_text_stats(ctypes.Structure):
    """Mirror of td_text_stats."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("n_bytes", ctypes.c_int64),
        ("n_words", ctypes.c_int64),
        ("distinct_1", ctypes.c_double),
        ("distinct_2", ctypes.c_double),
        ("distinct_3", ctypes.c_double),
        ("repetition", ctypes.c_double),
        ("word_entropy_bits", ctypes.c_double),
        ("known_words", ctypes.c_double),
    ]


class td_runtime_info(ctypes.Structure):
    """Mirror of td_runtime_info."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("cpu_features", ctypes.c_uint32),
        ("blas_name", ctypes.c_char * 16),
        ("blas_version", ctypes.c_char * 128),
        ("blas_core", ctypes.c_char * 32),
        ("blas_threads", ctypes.c_int32),
        ("blas_threading", ctypes.c_int32),
        ("lib_threading", ctypes.c_char * 32),
        ("blas_slow_kernel", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
        ("blas_advice", ctypes.c_char * 128),
    ]


class td_latent_config(ctypes.Structure):
    """Mirror of td_latent_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("seq_len", ctypes.c_int32),
        ("n_latents", ctypes.c_int32),
        ("d_latent", ctypes.c_int32),
        ("n_heads", ctypes.c_int32),
        ("n_enc_layers", ctypes.c_int32),
        ("n_dec_layers", ctypes.c_int32),
        ("d_ff", ctypes.c_int32),
        ("n_den_layers", ctypes.c_int32),
        ("schedule", ctypes.c_int32),
        ("prediction", ctypes.c_int32),
        ("self_cond", ctypes.c_int32),
        ("tan_d", ctypes.c_double),
    ]


class td_latent_train_config(ctypes.Structure):
    """Mirror of td_latent_train_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("batch_size", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("stage", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("lr", ctypes.c_float),
        ("min_lr", ctypes.c_float),
        ("warmup_steps", ctypes.c_int64),
        ("total_steps", ctypes.c_int64),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("clip_norm", ctypes.c_float),
        ("mse_weight", ctypes.c_float),
        ("mask_prob", ctypes.c_float),
        ("noise_std", ctypes.c_float),
        ("latent_dropout", ctypes.c_float),
        ("reserved1", ctypes.c_int32),
    ]


class td_latent_train_stats(ctypes.Structure):
    """Mirror of td_latent_train_stats."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("step", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("ce", ctypes.c_double),
        ("mse", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("grad_norm", ctypes.c_double),
        ("lr", ctypes.c_double),
    ]


class td_latent_sample_config(ctypes.Structure):
    """Mirror of td_latent_sample_config."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("sampler", ctypes.c_int32),
        ("steps", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("noise_scale", ctypes.c_float),
        ("reserved0", ctypes.c_int32),
    ]


# Every public struct of the header, by its C name (checked by the tests
# against tests/common/layouts.h's TD_LAYOUT_STRUCTS).
STRUCTS = {cls.__name__: cls for cls in (
    td_allocator, td_schedule_config, td_model_config, td_trainer_config, td_train_stats,
    td_sampler_config, td_sample_stats, td_eval_config, td_eval_result, td_text_stats,
    td_runtime_info, td_latent_config, td_latent_train_config, td_latent_train_stats,
    td_latent_sample_config)}

# td_reduce_fn: (user, grads, n_grads, values, n_values) -> td_status.
REDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_double), ctypes.c_size_t)

# td_sampler_callback
SAMPLER_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
    ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_int32,
    ctypes.POINTER(ctypes.c_int32), ctypes.c_int32)

# td_sampler_stream_fn
SAMPLER_STREAM = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
    ctypes.c_int32, ctypes.c_int32)

# td_sampler_logits_fn
SAMPLER_LOGITS = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int32,
    ctypes.POINTER(ctypes.c_float), ctypes.c_int32)

_p = ctypes.POINTER
_i32p = _p(ctypes.c_int32)
_alloc = _p(td_allocator)
_char = ctypes.c_char_p
_size = ctypes.c_size_t

# name: (restype, argtypes) of every exported function, in header order.
PROTOTYPES = {
    # version and errors
    "td_version_number": (ctypes.c_uint32, []),
    "td_version_string": (_char, []),
    "td_abi_version": (ctypes.c_uint32, []),
    "td_check_version": (c_status, [ctypes.c_uint32, ctypes.c_uint32]),
    "td_status_string": (_char, [c_status]),
    "td_last_error_message": (_char, []),
    # schedule
    "td_schedule_config_init": (c_status, [_p(td_schedule_config), _size, c_enum]),
    "td_schedule_create": (c_status, [_p(td_schedule_config), _alloc, _p(P_schedule)]),
    "td_schedule_free": (None, [P_schedule]),
    "td_schedule_errmsg": (_size, [P_schedule, _char, _size]),
    "td_schedule_get_config": (c_status, [P_schedule, _p(td_schedule_config)]),
    "td_schedule_alpha": (c_status, [P_schedule, ctypes.c_double, _p(ctypes.c_double)]),
    "td_schedule_alpha_deriv": (c_status, [P_schedule, ctypes.c_double, _p(ctypes.c_double)]),
    "td_schedule_weight": (c_status, [P_schedule, ctypes.c_double, _p(ctypes.c_double)]),
    # tokenizer
    "td_tokenizer_create_byte": (c_status, [_alloc, _p(P_tokenizer)]),
    "td_tokenizer_create_byte_eos": (c_status, [_alloc, _p(P_tokenizer)]),
    "td_tokenizer_create_char": (c_status, [_char, _size, ctypes.c_uint32, _alloc,
                                            _p(P_tokenizer)]),
    "td_tokenizer_load_hf": (c_status, [_char, _alloc, _p(P_tokenizer)]),
    "td_tokenizer_free": (None, [P_tokenizer]),
    "td_tokenizer_errmsg": (_size, [P_tokenizer, _char, _size]),
    "td_tokenizer_vocab_size": (c_status, [P_tokenizer, _i32p]),
    "td_tokenizer_special_id": (c_status, [P_tokenizer, c_enum, _i32p]),
    "td_tokenizer_encode": (c_status, [P_tokenizer, _char, _size, _i32p, _size, _p(_size)]),
    "td_tokenizer_encode_framed": (c_status, [P_tokenizer, _char, _size, _i32p, _size,
                                              _p(_size)]),
    "td_tokenizer_decode": (c_status, [P_tokenizer, _i32p, _size, _char, _char, _size,
                                       _p(_size)]),
    # corpus
    "td_corpus_load": (c_status, [_char, P_tokenizer, _alloc, _p(P_corpus)]),
    "td_corpus_create": (c_status, [_char, _size, P_tokenizer, _alloc, _p(P_corpus)]),
    "td_corpus_create_docs": (c_status, [_char, _size, _char, P_tokenizer, _alloc,
                                         _p(P_corpus)]),
    "td_corpus_load_docs": (c_status, [_char, _char, P_tokenizer, _alloc, _p(P_corpus)]),
    "td_corpus_free": (None, [P_corpus]),
    "td_corpus_errmsg": (_size, [P_corpus, _char, _size]),
    "td_corpus_num_tokens": (c_status, [P_corpus, c_enum, _p(ctypes.c_uint64)]),
    "td_corpus_batch": (c_status, [P_corpus, c_enum, ctypes.c_uint64, ctypes.c_uint64,
                                   ctypes.c_int32, ctypes.c_int32, _i32p]),
    "td_corpus_num_windows": (c_status, [P_corpus, c_enum, ctypes.c_int32,
                                         _p(ctypes.c_uint64)]),
    "td_corpus_window": (c_status, [P_corpus, c_enum, ctypes.c_int32, ctypes.c_uint64, _i32p]),
    # model
    "td_model_config_init": (c_status, [_p(td_model_config), _size]),
    "td_model_create": (c_status, [_p(td_model_config), ctypes.c_uint64, _alloc, _p(P_model)]),
    "td_model_free": (None, [P_model]),
    "td_model_errmsg": (_size, [P_model, _char, _size]),
    "td_model_get_config": (c_status, [P_model, _p(td_model_config)]),
    "td_model_num_params": (c_status, [P_model, _p(ctypes.c_uint64)]),
    "td_model_checksum": (c_status, [P_model, _p(ctypes.c_uint32)]),
    "td_model_logits": (c_status, [P_model, _i32p, ctypes.c_int32, ctypes.c_int32,
                                   ctypes.c_int32, _p(ctypes.c_float)]),
    "td_model_save": (c_status, [P_model, _char]),
    "td_model_load": (c_status, [_char, _alloc, _p(P_model)]),
    # const void *data as char *: bytes pass without a copy
    "td_model_load_memory": (c_status, [_char, _size, _alloc, _p(P_model)]),
    "td_model_load_hf": (c_status, [_char, ctypes.c_int32, ctypes.c_uint32, _alloc,
                                    _p(P_model)]),
    "td_model_save_hf": (c_status, [P_model, _char, ctypes.c_uint32]),
    "td_model_convert": (c_status, [P_model, ctypes.c_int32, _alloc, _p(P_model)]),
    "td_model_get_dtype": (c_status, [P_model, _p(ctypes.c_int32)]),
    "td_model_set_tokenizer": (c_status, [P_model, P_tokenizer]),
    "td_model_get_tokenizer": (c_status, [P_model, _alloc, _p(P_tokenizer)]),
    # trainer
    "td_trainer_config_init": (c_status, [_p(td_trainer_config), _size]),
    "td_trainer_create": (c_status, [P_model, P_schedule, _p(td_trainer_config),
                                     _p(P_trainer)]),
    "td_trainer_free": (None, [P_trainer]),
    "td_trainer_errmsg": (_size, [P_trainer, _char, _size]),
    "td_trainer_step": (c_status, [P_trainer, _i32p, _p(td_train_stats)]),
    "td_trainer_step_protected": (c_status, [P_trainer, _i32p, _p(ctypes.c_uint8),
                                             _p(td_train_stats)]),
    "td_trainer_get_step": (c_status, [P_trainer, _p(ctypes.c_int64)]),
    "td_trainer_save": (c_status, [P_trainer, _char]),
    "td_trainer_resume": (c_status, [P_trainer, _char, ctypes.c_uint32]),
    "td_trainer_get_config": (c_status, [P_trainer, _p(td_trainer_config)]),
    "td_trainer_set_data_parallel": (c_status, [P_trainer, ctypes.c_int32, ctypes.c_int32,
                                                REDUCE_FN, ctypes.c_void_p]),
    # sampler
    "td_sampler_config_init": (c_status, [_p(td_sampler_config), _size]),
    "td_sampler_create": (c_status, [P_model, P_schedule, _p(td_sampler_config),
                                     _p(P_sampler)]),
    "td_sampler_free": (None, [P_sampler]),
    "td_sampler_errmsg": (_size, [P_sampler, _char, _size]),
    "td_sampler_set_seed": (c_status, [P_sampler, ctypes.c_uint64]),
    "td_sampler_generate": (c_status, [P_sampler, _i32p, ctypes.c_int32, ctypes.c_int32,
                                       SAMPLER_CALLBACK, ctypes.c_void_p,
                                       _p(td_sample_stats)]),
    "td_sampler_set_stream": (c_status, [P_sampler, SAMPLER_STREAM, ctypes.c_void_p]),
    "td_sampler_set_logits_hook": (c_status, [P_sampler, SAMPLER_LOGITS, ctypes.c_void_p]),
    "td_sampler_set_tokens": (c_status, [P_sampler, ctypes.c_int32, _i32p, ctypes.c_int32]),
    # evaluation
    "td_eval_config_init": (c_status, [_p(td_eval_config), _size]),
    "td_eval_nelbo": (c_status, [P_model, _i32p, ctypes.c_int64, _p(td_eval_config),
                                 _p(td_eval_result)]),
    "td_eval_gen_perplexity": (c_status, [P_model, _i32p, ctypes.c_int32, ctypes.c_int32,
                                          _p(td_eval_config), _p(td_eval_result)]),
    "td_eval_rates": (c_status, [P_model, _i32p, ctypes.c_int64, _p(ctypes.c_double),
                                 ctypes.c_int32, _p(td_eval_config), _p(ctypes.c_double),
                                 _p(ctypes.c_double)]),
    # latent autoencoder
    "td_latent_config_init": (c_status, [_p(td_latent_config), _size]),
    "td_latent_model_create": (c_status, [P_model, _p(td_latent_config), ctypes.c_uint64,
                                          _alloc, _p(P_latent_model)]),
    "td_latent_model_free": (None, [P_latent_model]),
    "td_latent_model_errmsg": (_size, [P_latent_model, _char, _size]),
    "td_latent_model_get_config": (c_status, [P_latent_model, _p(td_latent_config)]),
    "td_latent_model_num_params": (c_status, [P_latent_model, _p(ctypes.c_uint64)]),
    "td_latent_model_save": (c_status, [P_latent_model, _char]),
    "td_latent_model_load": (c_status, [_char, P_model, _alloc, _p(P_latent_model)]),
    "td_latent_model_encode": (c_status, [P_latent_model, _i32p, ctypes.c_int32,
                                          ctypes.c_int32, _p(ctypes.c_float)]),
    "td_latent_model_decode": (c_status, [P_latent_model, _p(ctypes.c_float), ctypes.c_int32,
                                          ctypes.c_int32, _i32p, _p(ctypes.c_float)]),
    "td_latent_train_config_init": (c_status, [_p(td_latent_train_config), _size]),
    "td_latent_trainer_create": (c_status, [P_latent_model, _p(td_latent_train_config),
                                            _p(P_latent_trainer)]),
    "td_latent_trainer_free": (None, [P_latent_trainer]),
    "td_latent_trainer_errmsg": (_size, [P_latent_trainer, _char, _size]),
    "td_latent_trainer_step": (c_status, [P_latent_trainer, _i32p,
                                          _p(td_latent_train_stats)]),
    "td_latent_trainer_save": (c_status, [P_latent_trainer, _char]),
    "td_latent_trainer_resume": (c_status, [P_latent_trainer, _char]),
    "td_latent_sample_config_init": (c_status, [_p(td_latent_sample_config), _size]),
    "td_latent_model_generate": (c_status, [P_latent_model, _p(td_latent_sample_config),
                                            ctypes.c_int32, _i32p, _p(ctypes.c_float)]),
    # runtime report
    "td_runtime_info_get": (c_status, [_p(td_runtime_info)]),
    # text statistics
    "td_text_stats_compute": (c_status, [_char, _size, _char, _size, _p(td_allocator),
                                         _p(td_text_stats)]),
}


def _package_candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    names = ["libtextdiff.so.%d" % ABI_VERSION, "libtextdiff.so",
             "libtextdiff.%d.dylib" % ABI_VERSION, "libtextdiff.dylib", "textdiff.dll"]
    return [os.path.join(here, n) for n in names]


def _system_candidates():
    if sys.platform == "darwin":
        names = ["libtextdiff.%d.dylib" % ABI_VERSION]
    elif sys.platform == "win32":
        names = ["textdiff.dll"]
    else:
        names = ["libtextdiff.so.%d" % ABI_VERSION]
    found = ctypes.util.find_library("textdiff")
    if found and found not in names:
        names.append(found)
    return names


def find_library():
    """The candidate paths or names, in the order they are tried, and
    whether the first came from TEXTDIFF_LIBRARY (which is then the only
    one)."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return [env], True
    return [p for p in _package_candidates() if os.path.exists(p)] + _system_candidates(), False


_VERSION_FUNCTIONS = ("td_version_number", "td_version_string", "td_abi_version",
                      "td_check_version", "td_last_error_message")


def _declare(lib, names):
    for name in names:
        restype, argtypes = PROTOTYPES[name]
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("textdiff: the library %s does not export %s; it is older than "
                              "this binding or not libtextdiff" % (lib._name, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes


def check_version(lib, path):
    """Refuses a library of another ABI generation or older than the
    header this binding follows (ImportError)."""
    abi = lib.td_abi_version()
    version = lib.td_version_string().decode("utf-8", "replace")
    if abi != ABI_VERSION:
        raise ImportError("textdiff: %s is libtextdiff %s with ABI %d; this binding needs ABI %d "
                          "(libtextdiff.so.%d)" % (path, version, abi, ABI_VERSION, ABI_VERSION))
    if lib.td_check_version(ABI_VERSION, VERSION_NUMBER) != 0:
        detail = lib.td_last_error_message().decode("utf-8", "replace")
        raise ImportError("textdiff: %s is libtextdiff %s; this binding needs %d.%d.%d or newer "
                          "with ABI %d: %s" % (path, version, VERSION_NUMBER // 10000,
                                               VERSION_NUMBER // 100 % 100, VERSION_NUMBER % 100,
                                               ABI_VERSION, detail))


def load_library(path=None):
    """Loads libtextdiff (from `path`, or else as find_library() says),
    declares every prototype and checks the version. Returns (lib, path)."""
    if path is not None:
        candidates, from_env = [os.fspath(path)], True
    else:
        candidates, from_env = find_library()
    errors = []
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as e:
            errors.append((candidate, str(e)))
            continue
        # The version first: an older library may lack later functions.
        _declare(lib, _VERSION_FUNCTIONS)
        check_version(lib, candidate)
        _declare(lib, PROTOTYPES)
        return lib, candidate
    if from_env:
        raise ImportError("textdiff: cannot load %s%s: %s"
                          % ("" if path is not None else LIBRARY_ENV + "=", candidates[0],
                             errors[0][1]))
    raise ImportError("textdiff: libtextdiff.so.%d not found. Set %s to its full path, copy it "
                      "into the package directory, or install it where the dynamic linker "
                      "finds it. Tried: %s"
                      % (ABI_VERSION, LIBRARY_ENV, "; ".join("%s (%s)" % e for e in errors)))


lib, path = load_library()
