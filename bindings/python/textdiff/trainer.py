"""The trainer: one step function for MLM and diffusion alike."""

import ctypes
import enum

from . import _lib
from ._core import Handle, as_buffer, check, int_arg, lib, make_record, new_handle, \
    new_struct, path_arg, set_fields, to_record, typed, use
from .model import Model
from .schedule import Schedule

TrainerConfig = make_record("TrainerConfig", _lib.td_trainer_config, """\
A trainer's configuration (td_trainer_config): batch_size, seq_len,
n_threads, seed, lr, min_lr, warmup_steps, total_steps, beta1, beta2, eps,
weight_decay, clip_norm, micro_batch.""")

TrainStats = make_record("TrainStats", _lib.td_train_stats, """\
What one training step did (td_train_stats): step (steps completed, this
one included), loss (the batch's NELBO estimate, nats per token),
grad_norm (before clipping), lr (the rate applied), n_masked (scored
positions).""")



def _flatten(items):
    """The scalars of nested iterables (a numpy array, lists of lists), in order."""
    for x in items:
        if hasattr(x, "__iter__"):
            yield from _flatten(x)
        else:
            yield x

class ResumeFlags(enum.IntFlag):
    """td_resume_flags: which differences Trainer.resume accepts."""

    STRICT = 0
    ALLOW_SCHEDULE = 1 << 0
    ALLOW_BATCH = 1 << 1
    ALLOW_SEQ_LEN = 1 << 2
    ALLOW_SEED = 1 << 3


class Trainer(Handle):
    """Trains `model` in place with `schedule` (td_trainer): each step draws
    a time per sequence from the schedule, masks the batch, runs forward and
    backward on the masked positions and applies AdamW. MLM and diffusion
    differ only in the schedule.

    ``Trainer(model, schedule, **config)`` takes td_trainer_config fields
    (batch_size, seq_len, n_threads, seed, lr, min_lr, warmup_steps,
    total_steps, beta1, beta2, eps, weight_decay, clip_norm, micro_batch);
    the others keep the library's defaults. The trainer keeps its model
    alive; the schedule is copied. Same seed, threads and data give
    bit-identical training.
    """

    _kind = "trainer"
    _exclusive = True
    _free = lib.td_trainer_free
    _errmsg = lib.td_trainer_errmsg

    def __init__(self, model, schedule, **config):
        """A trainer of `model` with `schedule` (copied), with
        td_trainer_config fields as keyword arguments."""
        cfg = _lib.td_trainer_config()
        check(lib.td_trainer_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)))
        set_fields("trainer config", cfg, config)
        typed("model", model, Model)
        typed("schedule", schedule, Schedule)
        with use(model, schedule) as (m, s):
            ptr = new_handle(_lib.P_trainer, lib.td_trainer_create, m, s, ctypes.byref(cfg))
            super().__init__(ptr, parents=(model,))
        self.model = model  #: the Model this trainer updates
        self._cfg = cfg

    @property
    def config(self):
        """The TrainerConfig the trainer was created with (defaults filled in)."""
        return to_record(TrainerConfig, self._cfg)

    @property
    def tokens_per_step(self):
        """batch_size · seq_len: the length of step()'s `tokens`."""
        return self._cfg.batch_size * self._cfg.seq_len

    def step(self, tokens, protect=None):
        """One training step on batch_size·seq_len token ids (any shape with
        that many elements: a numpy int32 array or array.array('i') used in
        place, or lists; ids in [0, vocab_size), never [MASK]). Returns the
        step's TrainStats. A non-finite loss or gradient raises NumericError
        and changes nothing. `protect`, as many flags (any iterable),
        marks positions never scored: 1 kept (a prompt), 2 masked (a
        dropped prompt, for guidance), 0 trained as usual
        (td_trainer_step_protected)."""
        self._check_open()
        buf = as_buffer("tokens", tokens, size=self.tokens_per_step)
        stats = new_struct(_lib.td_train_stats)
        if protect is None:
            self._call(lib.td_trainer_step, buf.ptr, ctypes.byref(stats))
        else:
            flags = [int_arg("protect", f, ctypes.c_uint8) for f in _flatten(protect)]
            if len(flags) != self.tokens_per_step:
                raise ValueError("protect has %d flags, the step takes %d"
                                 % (len(flags), self.tokens_per_step))
            arr = (ctypes.c_uint8 * len(flags))(*flags)
            self._call(lib.td_trainer_step_protected, buf.ptr, arr, ctypes.byref(stats))
        return to_record(TrainStats, stats)

    @property
    def step_count(self):
        """Steps completed so far (restored by resume())."""
        n = ctypes.c_int64()
        self._call(lib.td_trainer_get_step, ctypes.byref(n))
        return n.value

    def save(self, path):
        """Writes a resumable checkpoint: the model (loadable with
        Model.load) plus the optimizer state, step count and generator."""
        self._call(lib.td_trainer_save, path_arg(path))

    def resume(self, path, flags=0):
        """Restores a save() checkpoint into this trainer, whose model must
        have the same configuration: parameters, optimizer state, step and
        generator. Continuing with the same data (e.g. Corpus.batch indexed
        by step_count) repeats the uninterrupted run bit for bit. A
        checkpoint of another run (schedule, batch size, sequence length or
        seed) raises StateError unless `flags` (ResumeFlags) allows the
        difference; the model's configuration must always match. On any
        error the trainer and its model are unchanged."""
        self._call(lib.td_trainer_resume, path_arg(path),
                   int_arg("flags", flags, ctypes.c_uint32))
