"""Exceptions (status, name, message), argument checks before the C call,
closed objects, and lifetimes: a parent is never freed under a child."""

import gc
import threading
import unittest
import weakref

import support
from support import T, td


class TestExceptions(unittest.TestCase):
    def test_every_status_has_its_class(self):
        classes = {
            td.Status.ERR_INVALID_ARG: td.InvalidArgumentError,
            td.Status.ERR_NOMEM: td.NoMemoryError,
            td.Status.ERR_IO: td.InputOutputError,
            td.Status.ERR_FORMAT: td.FormatError,
            td.Status.ERR_CORRUPT: td.CorruptError,
            td.Status.ERR_VERSION: td.VersionError,
            td.Status.ERR_NUMERIC: td.NumericError,
            td.Status.ERR_STATE: td.StateError,
            td.Status.ERR_CANCELLED: td.CancelledError,
            td.Status.ERR_UNSUPPORTED: td.UnsupportedError,
            td.Status.ERR_INTERNAL: td.InternalError,
        }
        self.assertEqual(set(classes), set(td.Status) - {td.Status.OK})
        for status, cls in classes.items():
            e = td.errors.error_for(status, "detail")
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, td.TextdiffError)
            self.assertEqual(e.status, status)
            self.assertEqual(e.status_name, "TD_" + status.name)
            self.assertEqual(e.message, "detail")
            self.assertEqual(str(e), "detail [TD_%s]" % status.name)
        self.assertIsInstance(td.InvalidArgumentError(1, ""), ValueError)
        self.assertIsInstance(td.NoMemoryError(2, ""), MemoryError)
        unknown = td.errors.error_for(99, "new")
        self.assertIs(type(unknown), td.TextdiffError)
        self.assertEqual(unknown.status_name, "TD_status_99")

    def test_call_on_a_handle(self):
        s = td.Schedule.diffusion()
        with self.assertRaises(td.InvalidArgumentError) as cm:
            s.alpha(1.5)
        e = cm.exception
        self.assertEqual((e.status, e.status_name), (1, "TD_ERR_INVALID_ARG"))
        self.assertIn("td_schedule_alpha: t = 1.5 is outside [0, 1]", e.message)

    def test_constructor(self):
        with self.assertRaises(td.InvalidArgumentError) as cm:
            support.tiny_model(d_model=30, n_heads=4)
        self.assertIn("n_heads", cm.exception.message)

    def test_handle_message_is_readable_from_another_thread(self):
        tok = td.Tokenizer.byte()
        failed = []

        def worker():
            try:
                tok.decode([5000])
            except td.InvalidArgumentError as e:
                failed.append(e.message)
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        self.assertTrue(failed and "5000" in failed[0], failed)
        self.assertEqual(tok._error(1).message, failed[0])  # this thread, the handle's slot


class TestArguments(unittest.TestCase):
    """Checks made before the C call, since ctypes would wrap or truncate."""

    def test_config_names(self):
        with self.assertRaises(TypeError) as cm:
            support.tiny_model(dmodel=16)
        self.assertIn("'dmodel'", str(cm.exception))
        self.assertIn("d_model", str(cm.exception))
        for reserved in ("reserved0", "struct_size"):
            with self.assertRaises(TypeError):
                support.tiny_model(**{reserved: 0})

    def test_integer_ranges(self):
        with self.assertRaises(ValueError) as cm:
            support.tiny_model(d_model=2**32 + 16)
        self.assertIn("does not fit int32_t", str(cm.exception))
        with self.assertRaises(ValueError):
            support.tiny_model(seed=-1)
        with self.assertRaises(ValueError):
            td.Tokenizer.char("abc", max_chars=-1)
        with self.assertRaises(TypeError):
            support.tiny_model(d_model=16.0)
        with self.assertRaises(TypeError):
            td.Schedule.diffusion(eps="small")

    def test_enum_names(self):
        self.assertEqual(td.Schedule("cosine").kind, td.ScheduleKind.COSINE)
        with self.assertRaises(ValueError) as cm:
            td.Schedule("wobbly")
        self.assertIn("loglinear", str(cm.exception))

    def test_handle_types(self):
        tok = td.Tokenizer.byte()
        with self.assertRaises(TypeError) as cm:
            td.Trainer(tok, td.Schedule.mlm())
        self.assertIn("textdiff.Model", str(cm.exception))
        with self.assertRaises(TypeError):
            td.Corpus.from_text("abc", "not a tokenizer")

    def test_direct_construction_is_refused(self):
        with self.assertRaises(TypeError):
            td.Tokenizer()
        with self.assertRaises(TypeError):
            td.Corpus()


class TestClose(unittest.TestCase):
    def test_use_after_close(self):
        tok = td.Tokenizer.byte()
        tok.close()
        tok.close()  # idempotent
        self.assertTrue(tok.closed)
        with self.assertRaises(td.StateError) as cm:
            tok.vocab_size
        self.assertEqual(cm.exception.status, td.Status.ERR_STATE)
        self.assertIn("closed", cm.exception.message)
        with self.assertRaises(td.StateError):
            with tok:
                pass
        with self.assertRaises(td.StateError):
            td.Corpus.from_text("abc", tok)

    def test_context_managers(self):
        with td.Schedule.mlm() as s, td.Tokenizer.byte() as tok, support.tiny_model() as m, \
                support.corpus(tok) as c, td.Trainer(m, s, batch_size=2, seq_len=T) as tr, \
                td.Sampler(m, s) as smp:
            pass
        for obj in (s, tok, m, c, tr, smp):
            self.assertTrue(obj.closed, obj)
            self.assertIsNone(obj._ptr, obj)
            self.assertIn("closed", repr(obj))

    def test_collected_objects_are_freed(self):
        m = support.tiny_model()
        ref = weakref.ref(m)
        del m
        gc.collect()
        self.assertIsNone(ref())


class TestLifetimes(unittest.TestCase):
    def test_sampler_keeps_its_model(self):
        m = support.tiny_model()
        s = td.Sampler(m, td.Schedule.diffusion(), steps=4)
        ref = weakref.ref(m)
        del m
        gc.collect()
        self.assertIsNotNone(ref())
        canvas = [256] * T
        s.generate(canvas)
        self.assertNotIn(256, canvas)

    def test_closing_a_model_in_use_defers_the_free(self):
        m = support.tiny_model()
        sched = td.Schedule.diffusion()
        tr = td.Trainer(m, sched, batch_size=1, seq_len=T)
        s = td.Sampler(m, sched, steps=4)
        m.close()
        self.assertTrue(m.closed)
        with self.assertRaises(td.StateError):
            m.num_params
        self.assertIsNotNone(m._ptr)  # still alive for tr and s
        tr.step([65] * T)
        s.generate([256] * T)
        tr.close()
        self.assertIsNotNone(m._ptr)
        s.close()
        self.assertIsNone(m._ptr)  # freed with its last user

    def test_closing_the_sampler_from_its_callback(self):
        s = td.Sampler(support.tiny_model(), td.Schedule.diffusion(), steps=4)
        canvas = [256] * T
        stats = s.generate(canvas, callback=lambda *a: s.close())
        self.assertEqual(stats.steps, 4)  # the call finished; then the sampler was freed
        self.assertNotIn(256, canvas)
        self.assertIsNone(s._ptr)
        with self.assertRaises(td.StateError):
            s.generate(canvas)

    def test_one_thread_at_a_time(self):
        s = td.Sampler(support.tiny_model(), td.Schedule.diffusion(), steps=2)
        seen = []

        def other_thread():
            try:
                s.set_seed(3)
            except td.StateError as e:
                seen.append(e.message)

        def callback(step, n, view, changed):
            if step == 0:
                t = threading.Thread(target=other_thread)
                t.start()
                t.join()
        s.generate([256] * T, callback=callback)
        self.assertEqual(len(seen), 1)
        self.assertIn("in use by another thread", seen[0])
        s.set_seed(3)  # free again


if __name__ == "__main__":
    unittest.main()
