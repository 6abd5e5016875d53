"""Status codes and the exceptions they become.

Every failing call raises a subclass of TextdiffError that carries the
pinned status number, its name and the library's message (which argument,
which file and offset, which limit).
"""

import enum


class Status(enum.IntEnum):
    """td_status: the pinned result codes of the C API."""

    OK = 0
    ERR_INVALID_ARG = 1
    ERR_NOMEM = 2
    ERR_IO = 3
    ERR_FORMAT = 4
    ERR_CORRUPT = 5
    ERR_VERSION = 6
    ERR_NUMERIC = 7
    ERR_STATE = 8
    ERR_CANCELLED = 9
    ERR_UNSUPPORTED = 10
    ERR_INTERNAL = 11


class TextdiffError(Exception):
    """A libtextdiff call failed.

    Attributes: ``status`` (the int code), ``status_name`` (e.g.
    ``"TD_ERR_INVALID_ARG"``), ``message`` (the library's detail).
    """

    status = None

    def __init__(self, status, message):
        """An error of status code `status` with the library's `message`."""
        self.status = int(status)
        try:
            self.status_name = "TD_" + Status(self.status).name
        except ValueError:
            self.status_name = "TD_status_%d" % self.status
        self.message = message
        super().__init__(status, message)

    def __str__(self):
        return "%s [%s]" % (self.message or "(no message)", self.status_name)


class InvalidArgumentError(TextdiffError, ValueError):
    """TD_ERR_INVALID_ARG: a bad size, a value out of range, a bad id."""


class NoMemoryError(TextdiffError, MemoryError):
    """TD_ERR_NOMEM: an allocation failed (nothing was leaked)."""


class InputOutputError(TextdiffError):
    """TD_ERR_IO: open, read, write, fsync or rename failed."""


class FormatError(TextdiffError):
    """TD_ERR_FORMAT: a file is not in the expected format."""


class CorruptError(TextdiffError):
    """TD_ERR_CORRUPT: a file is damaged (checksum, truncation)."""


class VersionError(TextdiffError):
    """TD_ERR_VERSION: an unsupported file version or an ABI mismatch."""


class NumericError(TextdiffError):
    """TD_ERR_NUMERIC: a non-finite loss, gradient or logit."""


class StateError(TextdiffError):
    """TD_ERR_STATE: the call is not valid in the handle's state (this
    includes any use of a closed object)."""


class CancelledError(TextdiffError):
    """TD_ERR_CANCELLED: a callback asked to stop.

    From Sampler.generate it carries ``stats`` (the steps completed)."""

    stats = None


class UnsupportedError(TextdiffError):
    """TD_ERR_UNSUPPORTED: the feature is not available in this build."""


class InternalError(TextdiffError):
    """TD_ERR_INTERNAL: a bug in libtextdiff; please report it."""


_BY_STATUS = {
    Status.ERR_INVALID_ARG: InvalidArgumentError,
    Status.ERR_NOMEM: NoMemoryError,
    Status.ERR_IO: InputOutputError,
    Status.ERR_FORMAT: FormatError,
    Status.ERR_CORRUPT: CorruptError,
    Status.ERR_VERSION: VersionError,
    Status.ERR_NUMERIC: NumericError,
    Status.ERR_STATE: StateError,
    Status.ERR_CANCELLED: CancelledError,
    Status.ERR_UNSUPPORTED: UnsupportedError,
    Status.ERR_INTERNAL: InternalError,
}


def error_for(status, message):
    """The exception for a non-zero status (TextdiffError for a code this
    binding does not know)."""
    return _BY_STATUS.get(status, TextdiffError)(status, message)
