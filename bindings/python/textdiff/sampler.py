"""The sampler: a trained model as a generator of text by unmasking."""

import ctypes
import enum

from . import _lib
from ._core import Handle, as_buffer, batch_shape, check, int_arg, lib, make_record, \
    new_handle, new_struct, set_fields, to_record, typed, use
from .errors import Status
from .model import Model
from .schedule import Schedule


class Strategy(enum.IntEnum):
    """td_sampler_strategy."""

    ANCESTRAL = 0  #: MDLM: reveal with the schedule's probability, draw from the model
    MAX_PROB = 1   #: confidence-ordered: keep the most probable draws
    MARGIN = 2     #: ... the largest top-1 minus top-2 probability
    ENTROPY = 3    #: ... the lowest entropy
    LEFT_TO_RIGHT = 4  #: causal models: one position at a time, with a key/value cache


class Remask(enum.IntEnum):
    """td_sampler_remask: ReMDM remasking of generated tokens."""

    NONE = 0     #: no remasking
    RESCALE = 1  #: sigma = eta * sigma_max
    CAP = 2      #: sigma = min(eta, sigma_max)
    LOOP = 3     #: alpha held at remask_alpha_on in (t_off, t_on], sigma = min(eta, sigma_max)


class Approx(enum.IntEnum):
    """td_sampler_approx: approximate key/value caching for block decoding."""

    OFF = 0     #: every forward pass over the whole canvas
    PREFIX = 1  #: keep the keys and values before the block; run the block and what follows
    DUAL = 2    #: keep them before and after the block; run the block alone


class TokenList(enum.IntEnum):
    """td_sampler_tokens: what set_tokens' list means."""

    ALL = 0    #: every token may be drawn
    BAN = 1    #: the listed ids are never drawn
    ALLOW = 2  #: only the listed ids are drawn


SamplerConfig = make_record("SamplerConfig", _lib.td_sampler_config, """\
A sampler's configuration (td_sampler_config): strategy, steps,
temperature, top_k, top_p, seed, block_len, n_threads, alg_temperature,
pad_id, max_batch, max_seq_len, cache, threshold, factor, remask, eta,
remask_t_on, remask_t_off, remask_alpha_on, guidance, approx_cache,
eos_id.""")

SampleStats = make_record("SampleStats", _lib.td_sample_stats, """\
What a generate() call did (td_sample_stats): model_calls (forward
passes), steps (over all blocks), cached_steps (steps without a forward
pass), tokens_revealed (positions written), tokens_generated (positions
that were [MASK]), tokens_remasked, calls_per_token.""")


def _readonly_view(canvas, buf):
    """The canvas as the callback sees it: a read-only view of the same
    memory (a numpy array for a numpy canvas, else a memoryview of the
    canvas's shape)."""
    if type(canvas).__module__ == "numpy":
        view = canvas.view()
        view.flags.writeable = False
        return view
    mem = buf._copy if buf._copy is not None else canvas
    return memoryview(mem).toreadonly().cast("B").cast("i", buf.shape)


class Sampler(Handle):
    """Generates text with a trained model (td_sampler): the caller passes a
    canvas of ids in which [MASK] marks what to generate; every other id is
    kept (a prompt, a suffix, any spans: infilling).

    ``Sampler(model, schedule, **config)`` takes td_sampler_config fields
    (strategy — a Strategy or its name —, steps, temperature, top_k, top_p,
    seed, block_len, n_threads, alg_temperature, pad_id, max_batch,
    max_seq_len, cache, threshold, factor, remask — a Remask or its name —,
    eta, remask_t_on, remask_t_off, remask_alpha_on, guidance, approx_cache —
    an Approx or its name —, eos_id); the others keep the library's defaults. The sampler
    keeps its model alive and only reads it, so samplers on several threads
    may share one model; the schedule is copied. Use a sampler from one
    thread at a time.
    """

    _kind = "sampler"
    _exclusive = True
    _free = lib.td_sampler_free
    _errmsg = lib.td_sampler_errmsg

    def __init__(self, model, schedule, **config):
        """A sampler for `model` on the time grid of `schedule`, with
        td_sampler_config fields as keyword arguments; its scratch for
        max_batch sequences of max_seq_len tokens is allocated here."""
        cfg = _lib.td_sampler_config()
        check(lib.td_sampler_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)))
        set_fields("sampler config", cfg, config, {"strategy": Strategy, "remask": Remask,
                                                   "approx_cache": Approx})
        typed("model", model, Model)
        typed("schedule", schedule, Schedule)
        with use(model, schedule) as (m, s):
            ptr = new_handle(_lib.P_sampler, lib.td_sampler_create, m, s, ctypes.byref(cfg))
            super().__init__(ptr, parents=(model,))
        self.model = model  #: the Model this sampler reads
        self._cfg = cfg
        self._stream = self._hook = None  # the ctypes callbacks, kept alive
        self._hook_raised = []

    @property
    def config(self):
        """The SamplerConfig the sampler was created with (defaults filled in)."""
        return to_record(SamplerConfig, self._cfg)

    def set_seed(self, seed):
        """Restarts the random stream as if the sampler had been created with `seed`."""
        self._call(lib.td_sampler_set_seed, int_arg("seed", seed, ctypes.c_uint64))

    def _guarded(self, fn):
        """Calls fn; an exception is kept for generate() to re-raise and stops it."""
        def run(*args):
            try:
                go_on = fn(*args)
            except BaseException as e:  # noqa: B902 (re-raised by generate)
                self._hook_raised.append(e)
                return 1
            return 1 if go_on is not None and not go_on else 0
        return run

    def set_stream(self, fn):
        """After every step, `fn(b, prefix)` receives sequence b's stable
        prefix (a list of ids that no later step can change) whenever it
        grew; False stops generation. None removes it."""
        cb = _lib.SAMPLER_STREAM()
        if fn is not None:
            run = self._guarded(fn)
            cb = _lib.SAMPLER_STREAM(lambda user, b, prefix, n, n_new: run(b, prefix[:n]))
        self._call(lib.td_sampler_set_stream, cb, None)
        self._stream = cb

    def set_logits_hook(self, fn):
        """`fn(rows, logits)` sees the logits of the rows about to draw a
        token (`logits` a ctypes float array of len(rows) * vocab_size, which
        it may modify); False stops generation. None removes it."""
        cb = _lib.SAMPLER_LOGITS()
        if fn is not None:
            run = self._guarded(fn)

            def hook(user, rows, n_rows, logits, vocab):
                arr = (ctypes.c_float * (n_rows * vocab)).from_address(
                    ctypes.addressof(logits.contents))
                return run(rows[:n_rows], arr)
            cb = _lib.SAMPLER_LOGITS(hook)
        self._call(lib.td_sampler_set_logits_hook, cb, None)
        self._hook = cb

    def set_tokens(self, mode, ids=()):
        """Restricts the tokens drawn: TokenList.BAN or ALLOW with a list of
        ids, or TokenList.ALL (no list)."""
        ids = [int_arg("ids", i, ctypes.c_int32) for i in ids]
        arr = (ctypes.c_int32 * len(ids))(*ids) if ids else None
        self._call(lib.td_sampler_set_tokens, int(TokenList(mode)), arr, len(ids))

    def generate(self, canvas, callback=None, batch=None):
        """Fills every [MASK] of `canvas` in place and returns SampleStats.

        `canvas` is (batch, seq_len) or one sequence (seq_len,): a writable
        C-contiguous numpy int32 array or array.array('i'), written in place
        without a copy, or a list (of lists), whose items are replaced;
        `batch` splits a flat canvas into that many rows. Each call
        continues the random stream.

        `callback(step, n_steps, canvas_view, changed)`, if given, runs after
        every step: `canvas_view` is a read-only view of the canvas (numpy
        for a numpy canvas, else a memoryview; valid during the call only),
        `changed` the list of flat positions (b·seq_len + i) this step
        revealed (or, with remasking, masked again). Returning False stops generation with CancelledError; None
        or True continue. An exception raised by the callback also stops it
        and is re-raised here once the C call has returned. On
        CancelledError or NumericError the canvas holds the steps done so
        far (some positions still [MASK]); the error's ``stats`` counts them.
        """
        self._check_open()
        buf = as_buffer("canvas", canvas, writable=True)
        b, t = batch_shape("canvas", buf, batch)
        stats = new_struct(_lib.td_sample_stats)
        raised = []
        cb = _lib.SAMPLER_CALLBACK()  # NULL
        view = None
        if callback is not None:
            if not callable(callback):
                raise TypeError("callback must be callable")
            view = _readonly_view(canvas, buf)

            def trampoline(user, step, n_steps, canvas_p, batch_, seq_len, changed, n_changed):
                try:
                    go_on = callback(step, n_steps, view, changed[:n_changed])
                except BaseException as e:  # noqa: B902 (re-raised after the call)
                    raised.append(e)
                    return 1
                return 1 if go_on is not None and not go_on else 0

            cb = _lib.SAMPLER_CALLBACK(trampoline)
        try:
            with use(self, exclusive=True) as h:
                st = lib.td_sampler_generate(h, buf.ptr, b, t, cb, None, ctypes.byref(stats))
                err = self._error(st) if st != 0 else None
        finally:
            buf.commit()
            if isinstance(view, memoryview):
                try:
                    view.release()
                except BufferError:  # the callback kept an export of it
                    pass
        result = to_record(SampleStats, stats)
        raised += self._hook_raised
        self._hook_raised = []
        if raised:
            raise raised[0]
        if err is not None:
            if st in (Status.ERR_CANCELLED, Status.ERR_NUMERIC):
                err.stats = result
            raise err
        return result
