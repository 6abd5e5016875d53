"""Shared machinery: the handle base class, errors, argument checks,
buffers of token ids and floats, and records made from result structs."""

import array
import collections
import contextlib
import ctypes
import enum
import os
import threading

from . import _lib
from .errors import StateError, Status, error_for

lib = _lib.lib


# --- errors ------------------------------------------------------------------
def _text(raw):
    return raw.decode("utf-8", "replace") if raw else ""


def last_error():
    """The calling thread's most recent libtextdiff error message."""
    return _text(lib.td_last_error_message())


def check(status):
    """Raises the exception for a failed call that takes no handle (its
    message is the calling thread's)."""
    if status != 0:
        raise error_for(status, last_error())


# --- handles -------------------------------------------------------------------
class Handle:
    """Owns one C handle. close() is idempotent; the C object is freed once
    it is closed (or collected) *and* no dependent object (a trainer or a
    sampler on a model) or running call still uses it, so Python code can
    never free a model under a live sampler."""

    _kind = "handle"   # for messages
    _free = None       # the td_*_free function
    _errmsg = None     # the td_*_errmsg function

    def __init__(self, ptr, parents=()):
        self._ptr = ptr
        self._closed = False
        self._users = 0    # dependent objects and running calls (use())
        self._busy = None  # the thread in an exclusive call
        self._lock = threading.Lock()
        self._parents = tuple(parents)
        for p in self._parents:
            p._acquire()

    @classmethod
    def _wrap(cls, ptr, parents=()):
        """An object for a handle made by another call (not by __init__)."""
        obj = cls.__new__(cls)
        Handle.__init__(obj, ptr, parents)
        return obj

    def _check_open(self):
        if self._closed or self._ptr is None:
            raise StateError(Status.ERR_STATE, "this %s is closed" % self._kind)

    @property
    def closed(self):
        """True once close() was called."""
        return self._closed

    def close(self):
        """Releases the C object (idempotent). Objects created from this one
        keep it alive until they are closed too; any further use of this
        object raises StateError."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ did not finish
            return
        with lock:
            if self._closed:
                return
            self._closed = True
            free_now = self._users == 0
        if free_now:
            self._destroy()

    def _enter(self, exclusive):
        """Marks a call on this handle as running (see use())."""
        me = threading.get_ident()
        with self._lock:
            if self._closed or self._ptr is None:
                raise StateError(Status.ERR_STATE, "this %s is closed" % self._kind)
            outer = self._busy
            if exclusive:
                if outer is not None and outer != me:
                    raise StateError(Status.ERR_STATE, "this %s is in use by another thread; "
                                     "use one per thread" % self._kind)
                self._busy = me
            self._users += 1
        return outer

    def _leave(self, exclusive, outer):
        if exclusive:
            with self._lock:
                self._busy = outer
        self._release()

    def _acquire(self):
        with self._lock:
            self._users += 1

    def _release(self):
        with self._lock:
            self._users -= 1
            free_now = self._closed and self._users == 0
        if free_now:
            self._destroy()

    def _destroy(self):
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            type(self)._free(ptr)
        parents, self._parents = self._parents, ()
        for p in parents:
            p._release()

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def _error(self, status):
        """The exception for a failed call whose first argument was this
        handle: the handle's own message, readable from any thread. Call it
        inside the use() block of the call."""
        message = ""
        if self._ptr is not None:
            cap = 1024
            while True:
                buf = ctypes.create_string_buffer(cap)
                n = type(self)._errmsg(self._ptr, buf, cap)
                if n < cap:
                    break
                cap = n + 1
            message = _text(buf.value)
        return error_for(status, message or last_error())

    def _check(self, status):
        if status != 0:
            raise self._error(status)

    # Trainers and samplers set this: one thread at a time (see use()).
    _exclusive = False

    def _call(self, fn, *args):
        """fn(handle, *args) under use(), raising on failure."""
        with use(self, exclusive=self._exclusive) as h:
            self._check(fn(h, *args))

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return "<textdiff.%s %s>" % (type(self).__name__, state)


@contextlib.contextmanager
def use(*handles, exclusive=False):
    """The C pointers of open `handles` for a call: each is kept alive until
    the block ends, so a close() meanwhile (from a callback or another
    thread) frees it only afterwards, and a closed one raises StateError.
    With `exclusive`, a call on the first handle from another thread
    meanwhile is a StateError too (trainers and samplers are used by one
    thread at a time); re-entry on the same thread is left to the library,
    which refuses what it must. Yields one pointer, or a tuple of them."""
    entered = []
    try:
        for i, h in enumerate(handles):
            ex = exclusive and i == 0
            entered.append((h, ex, h._enter(ex)))
        ptrs = tuple(h._ptr for h in handles)
        yield ptrs[0] if len(ptrs) == 1 else ptrs
    finally:
        for h, ex, outer in reversed(entered):
            h._leave(ex, outer)


def typed(name, obj, cls):
    """`obj`, which must be a `cls` (TypeError otherwise)."""
    if not isinstance(obj, cls):
        raise TypeError("%s must be a textdiff.%s, not %s"
                        % (name, cls.__name__, type(obj).__name__))
    return obj


def new_handle(pointer_type, create, *args):
    """Calls a constructor td_*(..., &out) and returns the handle pointer."""
    out = pointer_type()
    check(create(*args, ctypes.byref(out)))
    if not out:
        raise error_for(Status.ERR_INTERNAL, "constructor returned TD_OK and NULL")
    return out


# --- argument checks (ctypes silently wraps out-of-range integers) --------
_INT_RANGES = {
    ctypes.c_int32: (-2**31, 2**31 - 1, "int32_t"),
    ctypes.c_uint8: (0, 2**8 - 1, "uint8_t"),
    ctypes.c_uint32: (0, 2**32 - 1, "uint32_t"),
    ctypes.c_int64: (-2**63, 2**63 - 1, "int64_t"),
    ctypes.c_uint64: (0, 2**64 - 1, "uint64_t"),
    ctypes.c_size_t: (0, 2**(8 * ctypes.sizeof(ctypes.c_size_t)) - 1, "size_t"),
}


def int_arg(name, value, ctype=ctypes.c_int32):
    """`value` as an int that fits `ctype`, else ValueError/TypeError."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        v = value.__index__()
    except (AttributeError, TypeError):
        raise TypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    lo, hi, cname = _INT_RANGES[ctype]
    if not lo <= v <= hi:
        raise ValueError("%s = %d does not fit %s" % (name, v, cname))
    return v


def float_arg(name, value):
    """`value` as a float, else TypeError."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be a number, not %s" % (name, type(value).__name__)) from None


def enum_arg(name, value, enum_type):
    """An enum given as a member, an int, or a member name (any case)."""
    if isinstance(value, str):
        try:
            return enum_type[value.upper()].value
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum_type)
            raise ValueError("%s = %r is not one of: %s" % (name, value, names)) from None
    return int_arg(name, value)


def path_arg(path):
    """A str or os.PathLike as the bytes the C library wants."""
    return os.fsencode(path)


def text_arg(name, text):
    """str (encoded as UTF-8) or bytes-like, as bytes."""
    if isinstance(text, str):
        return text.encode("utf-8")
    try:
        return bytes(memoryview(text))
    except TypeError:
        raise TypeError("%s must be str or bytes, not %s" % (name, type(text).__name__)) from None


# --- config structs --------------------------------------------------------------
def _settable(struct_type):
    return [(n, t) for n, t in struct_type._fields_
            if n != "struct_size" and not n.startswith("reserved")]


def set_fields(what, cfg, values, enums=None):
    """Sets config fields from keyword arguments, with range checks; an
    unknown or reserved name is a TypeError. `enums` maps a field to its
    enum type, whose member names it then accepts too."""
    fields = dict(_settable(type(cfg)))
    for name, value in values.items():
        ctype = fields.get(name)
        if ctype is None:
            raise TypeError("%s has no field %r (fields: %s)"
                            % (what, name, ", ".join(fields)))
        if enums and name in enums:
            setattr(cfg, name, enum_arg(name, value, enums[name]))
        elif ctype in (ctypes.c_float, ctypes.c_double):
            setattr(cfg, name, float_arg(name, value))
        else:
            setattr(cfg, name, int_arg(name, value, ctype))


def make_record(name, struct_type, doc):
    """A namedtuple of the struct's fields (without struct_size and the
    reserved ones), documented with `doc`."""
    rec = collections.namedtuple(name, [n for n, _ in _settable(struct_type)])
    rec.__doc__ = doc
    rec.__module__ = "textdiff"
    rec._struct = struct_type
    return rec


def to_record(rec, s):
    """The record of a struct the library filled: fields beyond the
    struct_size it reports having written are None."""
    written = s.struct_size
    values = []
    for name, _ in _settable(type(s)):
        f = getattr(type(s), name)
        values.append(getattr(s, name) if f.offset + f.size <= written else None)
    return rec(*values)


def new_struct(struct_type):
    """A zeroed struct with struct_size set, for the library to fill."""
    s = struct_type()
    s.struct_size = ctypes.sizeof(struct_type)
    return s


# --- buffers -----------------------------------------------------------------------
class Buffer:
    """A C view of token ids or floats for one call.

    `ptr` is what the C function takes; `commit()` writes a copy back into a
    Python list after the call; `shape` is the caller's shape."""

    __slots__ = ("ptr", "n", "shape", "source", "_copy", "_rows")

    def commit(self):
        if self._copy is None:
            return
        values = list(self._copy)
        if self._rows is None:
            self.source[:] = values
        else:
            w = len(values) // max(len(self.source), 1)
            for b, row in enumerate(self.source):
                row[:] = values[b * w:(b + 1) * w]


def _is_numpy(obj):
    return type(obj).__module__ == "numpy" and hasattr(obj, "dtype")


_FORMATS = {"int32": ("i", "l", "=i", "<i", "@i", "=l", "<l", "@l"),
            "float32": ("f", "=f", "<f", "@f")}


def _element_ok(mv, kind):
    if kind == "int32" and mv.itemsize == 4:
        return mv.format in _FORMATS["int32"]
    if kind == "float32" and mv.itemsize == 4:
        return mv.format in _FORMATS["float32"]
    return False


def as_buffer(name, obj, kind="int32", writable=False, size=None, allow_empty=False):
    """A C pointer to `obj`'s elements.

    A C-contiguous buffer of the right element type (a numpy array, an
    array.array('i' or 'f'), a ctypes array) is used in place, without a
    copy. A list (flat, or a list of equal rows) is copied in, and with
    `writable` copied back by Buffer.commit(). Anything else is a
    ValueError/TypeError with the reason. `size` is the element count the
    call needs (None: any); an empty input is refused unless `allow_empty`
    (then `ptr` is NULL)."""
    ctype = ctypes.c_int32 if kind == "int32" else ctypes.c_float
    buf = Buffer()
    buf.source, buf._copy, buf._rows, buf.ptr = obj, None, None, None
    if isinstance(obj, (list, tuple)):
        if writable and isinstance(obj, tuple):
            raise TypeError("%s: a tuple cannot be written; pass a list or an array" % name)
        rows = bool(obj) and isinstance(obj[0], (list, tuple))
        if rows:
            if not all(isinstance(r, (list, tuple)) for r in obj):
                raise ValueError("%s: a mix of rows and numbers" % name)
            width = len(obj[0])
            if any(len(r) != width for r in obj):
                raise ValueError("%s: rows of different lengths" % name)
            if writable and any(isinstance(r, tuple) for r in obj):
                raise TypeError("%s: a tuple cannot be written; pass lists" % name)
            flat = [v for r in obj for v in r]
            buf.shape = (len(obj), width)
            buf._rows = True
        else:
            flat = list(obj)
            buf.shape = (len(flat),)
        typecode = "i" if kind == "int32" else "f"
        try:
            copy = array.array(typecode, flat)
        except (TypeError, OverflowError) as e:
            raise ValueError("%s: %s" % (name, e)) from None
        buf.n = len(copy)
        if buf.n:
            buf.ptr = (ctype * buf.n).from_buffer(copy)
        if writable:
            buf._copy = copy
        else:
            buf.source = copy  # keeps the copy alive with buf
    else:
        try:
            mv = memoryview(obj)
        except TypeError:
            raise TypeError("%s must be a list or a buffer of %s (numpy array, array.array), "
                            "not %s" % (name, kind, type(obj).__name__)) from None
        described = ("dtype %s" % obj.dtype) if _is_numpy(obj) else ("format %r" % mv.format)
        if not _element_ok(mv, kind):
            raise ValueError("%s must hold %s elements, not %s%s" % (
                name, kind, described,
                "; use numpy.ascontiguousarray(x, dtype=numpy.%s)" % kind if _is_numpy(obj)
                else ""))
        if not mv.c_contiguous:
            raise ValueError("%s must be C-contiguous%s" % (
                name, "; use numpy.ascontiguousarray(x)" if _is_numpy(obj) else ""))
        if writable and mv.readonly:
            raise ValueError("%s is read-only; it is written in place" % name)
        buf.shape = tuple(mv.shape) if mv.ndim else (1,)
        buf.n = mv.nbytes // 4
        if buf.n:
            if mv.readonly:
                copy = (ctype * buf.n).from_buffer_copy(mv)
                buf.ptr, buf.source = copy, copy
            else:
                buf.ptr = (ctype * buf.n).from_buffer(mv)
    if buf.n == 0:
        if allow_empty:
            return buf
        raise ValueError("%s is empty" % name)
    if size is not None and buf.n != size:
        raise ValueError("%s has %d elements, %d are needed" % (name, buf.n, size))
    buf.ptr = ctypes.cast(buf.ptr, ctypes.POINTER(ctype))
    return buf


def batch_shape(name, buf, batch=None):
    """(batch, seq_len) of a buffer: its two dimensions, or one row of a
    flat buffer, or `batch` equal rows of it."""
    if batch is not None:
        batch = int_arg("batch", batch)
        if batch < 1 or buf.n % batch:
            raise ValueError("%s: %d elements are not %s rows" % (name, buf.n, batch))
        return batch, buf.n // batch
    if len(buf.shape) == 2:
        return buf.shape
    if len(buf.shape) == 1:
        return 1, buf.n
    raise ValueError("%s must have 1 or 2 dimensions (batch, seq_len), not %d"
                     % (name, len(buf.shape)))


def new_output(kind, shape, like_numpy):
    """A new output buffer: a numpy array of `shape` when the input was one,
    else a flat array.array."""
    n = 1
    for d in shape:
        n *= d
    if like_numpy:
        import numpy
        return numpy.empty(shape, dtype=numpy.int32 if kind == "int32" else numpy.float32)
    return array.array("i" if kind == "int32" else "f", bytes(4 * n))
