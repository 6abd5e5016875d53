"""numpy arrays: used in place without copies where the dtype, contiguity
and size allow it, refused with a clear ValueError otherwise. Skipped
without numpy (the other tests cover lists and array.array)."""

import unittest

import support
from support import T, td

try:
    import numpy as np
except ImportError:
    np = None

MASK = 256


@unittest.skipIf(np is None, "numpy is not installed")
class TestNumpy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = support.tiny_model()
        cls.schedule = td.Schedule.diffusion()
        cls.corpus = support.corpus()

    def test_canvas_in_place(self):
        s = td.Sampler(self.model, self.schedule, steps=4, max_batch=2)
        canvas = np.full((2, T), MASK, dtype=np.int32)
        canvas[:, :2] = [65, 66]
        addr = canvas.ctypes.data
        views = []

        def callback(step, n, view, changed):
            self.assertIsInstance(view, np.ndarray)
            self.assertFalse(view.flags.writeable)
            self.assertEqual(view.ctypes.data, addr)  # the caller's memory, no copy
            self.assertTrue(np.all(view.flat[changed] != MASK))
            views.append(view.shape)
        s.generate(canvas, callback=callback)
        self.assertEqual(canvas.ctypes.data, addr)
        self.assertFalse((canvas == MASK).any())
        self.assertTrue((canvas[:, :2] == [65, 66]).all())
        self.assertEqual(views, [(2, T)] * 4)
        flat = np.full(2 * T, MASK, dtype=np.int32)
        s.generate(flat, batch=2)
        self.assertFalse((flat == MASK).any())

    def test_refused_arrays(self):
        s = td.Sampler(self.model, self.schedule, steps=2)
        with self.assertRaises(ValueError) as cm:
            s.generate(np.full(T, MASK, dtype=np.int64))
        self.assertIn("dtype int64", str(cm.exception))
        self.assertIn("ascontiguousarray", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            s.generate(np.full((T, 2), MASK, dtype=np.int32)[:, 0])
        self.assertIn("C-contiguous", str(cm.exception))
        ro = np.full(T, MASK, dtype=np.int32)
        ro.flags.writeable = False
        with self.assertRaises(ValueError) as cm:
            s.generate(ro)
        self.assertIn("read-only", str(cm.exception))
        with self.assertRaises(ValueError):
            s.generate(np.full((1, 1, T), MASK, dtype=np.int32))
        with self.assertRaises(ValueError):
            self.model.logits(np.zeros(T, np.int32), out=np.zeros((T, 258), np.float64))

    def test_logits(self):
        ids = np.arange(60, 60 + 2 * T, dtype=np.int32).reshape(2, T)
        out = self.model.logits(ids)
        self.assertEqual((out.dtype, out.shape), (np.float32, (2, T, 258)))
        self.assertEqual(out[0, 0, MASK], -np.inf)
        self.assertEqual(list(out.ravel()), list(self.model.logits(ids.tolist())))
        mine = np.empty((2 * T, 258), dtype=np.float32)
        self.assertIs(self.model.logits(ids, out=mine), mine)
        self.assertTrue(np.array_equal(mine.reshape(out.shape), out))

    def test_read_only_inputs_are_fine(self):
        tokens = np.frombuffer(self.corpus.batch(2, T), dtype=np.int32)  # a view
        tokens = tokens.reshape(2, T).copy()
        tokens.flags.writeable = False
        tr = td.Trainer(support.tiny_model(), self.schedule, batch_size=2, seq_len=T)
        self.assertEqual(tr.step(tokens).step, 1)
        r = td.eval_nelbo(self.model, tokens, seq_len=T, n_times=2)
        self.assertEqual(r.n_tokens, 2 * T)

    def test_corpus_into_numpy(self):
        out = np.zeros((4, T), dtype=np.int32)
        self.assertIs(self.corpus.batch(4, T, index=2, out=out), out)
        self.assertEqual(out.ravel().tolist(), list(self.corpus.batch(4, T, index=2)))
        win = np.zeros(T, dtype=np.int32)
        self.corpus.window(T, 0, "train", out=win)
        self.assertEqual(win.tolist(), list(self.corpus.window(T, 0, "train")))
        self.assertEqual(self.model.config.vocab_size,
                         td.Tokenizer.byte().vocab_size)
        decoded = td.Tokenizer.byte().decode(win)
        self.assertEqual(len(decoded), T)


if __name__ == "__main__":
    unittest.main()
