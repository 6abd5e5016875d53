"""Noise schedules: MLM (a fixed masking rate) and the diffusion kinds."""

import ctypes
import enum

from . import _lib
from ._core import Handle, check, enum_arg, float_arg, lib, make_record, new_handle, \
    set_fields, to_record


class ScheduleKind(enum.IntEnum):
    """td_schedule_kind."""

    LINEAR = 0       #: α = 1 − t
    LOGLINEAR = 1    #: α = 1 − (1 − ε)t (MDLM)
    COSINE = 2       #: α = cos(πt/2)
    POLYNOMIAL = 3   #: α = 1 − t^k
    FIXED_RATE = 4   #: masking rate r at every step (BERT's MLM)


ScheduleConfig = make_record("ScheduleConfig", _lib.td_schedule_config, """\
A schedule's configuration (td_schedule_config): kind, eps, power, rate,
t_min, bert_corruption.""")


class Schedule(Handle):
    """A noise schedule (td_schedule): α(t), its derivative and the ELBO
    weight. Immutable; may be shared by any number of trainers and samplers
    on any threads, which copy it.

    ``Schedule(kind, **params)`` starts from the library's defaults for
    `kind` (a ScheduleKind, its int or its name such as ``"cosine"``) and
    sets the given fields: ``eps``, ``power``, ``rate``, ``t_min``,
    ``bert_corruption``. ``Schedule.mlm()`` and ``Schedule.diffusion()`` are
    the two usual ones.
    """

    _kind = "schedule"
    _free = lib.td_schedule_free
    _errmsg = lib.td_schedule_errmsg

    def __init__(self, kind=ScheduleKind.LOGLINEAR, **params):
        """A schedule of `kind` with the library's defaults for it, changed
        by the td_schedule_config fields given as keyword arguments."""
        cfg = _lib.td_schedule_config()
        kind = enum_arg("kind", kind, ScheduleKind)
        check(lib.td_schedule_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg), kind))
        set_fields("schedule config", cfg, params)
        super().__init__(new_handle(_lib.P_schedule, lib.td_schedule_create,
                                    ctypes.byref(cfg), None))

    @classmethod
    def mlm(cls, rate=0.15, bert_corruption=False):
        """BERT's masked-language-model schedule: every step masks a
        fraction `rate` of the tokens (weight 1/rate); `bert_corruption`
        applies the 80/10/10 rule."""
        return cls(ScheduleKind.FIXED_RATE, rate=rate, bert_corruption=int(bool(bert_corruption)))

    @classmethod
    def diffusion(cls, kind=ScheduleKind.LOGLINEAR, **params):
        """A diffusion schedule: all masking rates, ELBO-weighted. `kind` is
        ``"loglinear"`` (MDLM, the default), ``"linear"``, ``"cosine"`` or
        ``"polynomial"``."""
        k = enum_arg("kind", kind, ScheduleKind)
        if k == ScheduleKind.FIXED_RATE:
            raise ValueError("kind: the fixed rate is Schedule.mlm(), not a diffusion schedule")
        return cls(k, **params)

    @property
    def config(self):
        """The schedule's ScheduleConfig."""
        cfg = _lib.td_schedule_config()
        cfg.struct_size = ctypes.sizeof(cfg)
        self._call(lib.td_schedule_get_config, ctypes.byref(cfg))
        return to_record(ScheduleConfig, cfg)

    @property
    def kind(self):
        """The ScheduleKind."""
        return ScheduleKind(self.config.kind)

    def _eval(self, fn, t):
        out = ctypes.c_double()
        self._call(fn, float_arg("t", t), ctypes.byref(out))
        return out.value

    def alpha(self, t):
        """α(t) for t in [0, 1]: the probability that a token is still itself."""
        return self._eval(lib.td_schedule_alpha, t)

    def alpha_deriv(self, t):
        """α′(t) for t in [0, 1]."""
        return self._eval(lib.td_schedule_alpha_deriv, t)

    def weight(self, t):
        """The training weight w(t) = −α′(t)/(1 − α(t)), evaluated at
        max(t, t_min) since it diverges at 0. The fixed rate's α is 1 − t,
        so its training weight is w(rate) = 1/rate."""
        return self._eval(lib.td_schedule_weight, t)
