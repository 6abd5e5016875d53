"""Evaluation: one estimator for every model, MLM- or diffusion-trained."""

import collections
import ctypes

from . import _lib
from ._core import as_buffer, check, float_arg, lib, make_record, new_struct, set_fields, \
    to_record, typed
from ._core import int_arg as _int_arg
from .model import Model

EvalConfig = make_record("EvalConfig", _lib.td_eval_config, """\
An evaluation's configuration (td_eval_config): seq_len, batch_size,
n_threads, n_times, seed, max_sequences, bytes_per_token.""")

EvalResult = make_record("EvalResult", _lib.td_eval_result, """\
The NELBO of a model on a token stream (td_eval_result): nelbo_nats and
nelbo_bits per token (upper bounds on −log p(x)/seq_len), bits_per_byte
(NaN when bytes_per_token is unknown), perplexity_bound, std_error_nats
(NaN for one window), n_sequences and n_tokens evaluated.""")

RateLoss = collections.namedtuple("RateLoss", ["rate", "loss_nats", "accuracy"])
RateLoss.__doc__ = """\
One point of eval_rates(): the masking rate, the mean cross-entropy per
hidden token (nats) and the fraction of hidden tokens predicted right (NaN
for both when no token was hidden)."""
RateLoss.__module__ = "textdiff"


def _config(config):
    cfg = _lib.td_eval_config()
    check(lib.td_eval_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)))
    set_fields("eval config", cfg, config)
    return cfg


def eval_nelbo(model, tokens, **config):
    """The NELBO of `model` on the token stream `tokens` (a numpy int32
    array or array.array('i') used in place, or a list), cut into windows of
    seq_len tokens (a shorter tail is left out). Keyword arguments are
    td_eval_config fields (seq_len, batch_size, n_threads, n_times, seed,
    max_sequences, bytes_per_token). The masks depend only on the seed, the
    window and the time, so every model is scored on identical masks.
    Returns an EvalResult."""
    typed("model", model, Model)
    cfg = _config(config)
    buf = as_buffer("tokens", tokens)
    out = new_struct(_lib.td_eval_result)
    model._call(lib.td_eval_nelbo, buf.ptr, buf.n, ctypes.byref(cfg), ctypes.byref(out))
    return to_record(EvalResult, out)


def eval_gen_perplexity(scorer, samples, seq_len, **config):
    """Generative perplexity: the exact NLL per token of the sequences
    `samples` (n_seqs x seq_len tokens, flat: a numpy int32 array or
    array.array('i') used in place, or a list) under the causal model
    `scorer`. Keyword arguments are td_eval_config fields (batch_size,
    n_threads, bytes_per_token; seq_len and max_sequences are not used).
    Returns an EvalResult: nelbo_bits is the NLL in bits per token,
    perplexity_bound the perplexity itself."""
    typed("scorer", scorer, Model)
    cfg = _config(config)
    buf = as_buffer("samples", samples)
    n = _int_arg("seq_len", seq_len)
    if n <= 0 or buf.n % n != 0:
        raise ValueError("samples must hold a whole number of sequences of seq_len = %d"
                         % n)
    out = new_struct(_lib.td_eval_result)
    scorer._call(lib.td_eval_gen_perplexity, buf.ptr, buf.n // n, n, ctypes.byref(cfg),
                 ctypes.byref(out))
    return to_record(EvalResult, out)


def eval_rates(model, tokens, rates, **config):
    """The loss curve over masking rates: for each rate in `rates` (each in
    (0, 1]) every window masked once at that rate. Keyword arguments as for
    eval_nelbo (n_times is not used). Returns a list of RateLoss."""
    typed("model", model, Model)
    cfg = _config(config)
    buf = as_buffer("tokens", tokens)
    r = [float_arg("rates[%d]" % i, x) for i, x in enumerate(rates)]
    if not r:
        return []
    n = len(r)
    c_rates = (ctypes.c_double * n)(*r)
    loss = (ctypes.c_double * n)()
    acc = (ctypes.c_double * n)()
    model._call(lib.td_eval_rates, buf.ptr, buf.n, c_rates, n, ctypes.byref(cfg), loss, acc)
    return [RateLoss(r[j], loss[j], acc[j]) for j in range(n)]


TextStats = make_record("TextStats", _lib.td_text_stats, """\
How a text reads, without a model (td_text_stats): n_bytes, n_words,
distinct_1/2/3 (distinct word n-grams over word n-grams), repetition (share
of bytes covered by the 10 most frequent byte 4-grams), word_entropy_bits,
known_words (share of words found in the reference; NaN without one).""")


def _text_bytes(name, text):
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError("%s must be str or bytes, not %s" % (name, type(text).__name__))


def text_stats(text, reference=None):
    """Statistics of a text (str, encoded as UTF-8, or bytes): distinct word
    n-grams, repetition, word entropy and, given a reference text (e.g. the
    training corpus), the share of its words the reference also uses.
    Returns a TextStats."""
    t = _text_bytes("text", text)
    r = None if reference is None else _text_bytes("reference", reference)
    out = new_struct(_lib.td_text_stats)
    check(lib.td_text_stats_compute(t, len(t), r, 0 if r is None else len(r), None,
                                    ctypes.byref(out)))
    return to_record(TextStats, out)
