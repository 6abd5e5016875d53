"""Sampler: canvases of every kind, the step callback (views, cancelling,
exceptions), seeds, statistics and errors."""

import array
import threading
import unittest

import support
from support import T, td

MASK = 256
PAD = 257


class Boom(Exception):
    pass


class TestSampler(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = support.tiny_model()
        cls.schedule = td.Schedule.diffusion()

    def sampler(self, **cfg):
        args = dict(steps=4)
        args.update(cfg)
        return td.Sampler(self.model, self.schedule, **args)

    def test_generate_a_list_in_place(self):
        s = self.sampler()
        prompt = [65, 66, 67]
        canvas = prompt + [MASK] * (T - 3)
        stats = s.generate(canvas)
        self.assertIsInstance(stats, td.SampleStats)
        self.assertEqual(canvas[:3], prompt)
        self.assertNotIn(MASK, canvas)
        self.assertTrue(all(0 <= x < 256 for x in canvas))  # never [MASK] or [PAD]
        self.assertEqual(stats.steps, 4)
        self.assertEqual(stats.tokens_revealed, T - 3)
        self.assertEqual(stats.model_calls + stats.cached_steps, 4)

    def test_batches_and_arrays(self):
        s = self.sampler(max_batch=2)
        rows = [[MASK] * T, [MASK] * T]
        s.generate(rows)
        self.assertFalse(any(MASK in r for r in rows))
        flat = array.array("i", [MASK] * (2 * T))
        s.generate(flat, batch=2)
        self.assertNotIn(MASK, flat)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            s.generate([[MASK] * T] * 3)
        self.assertIn("max_batch", cm.exception.message)

    def test_seeds(self):
        s = self.sampler(seed=11)
        a = [MASK] * T
        s.generate(a)
        b = [MASK] * T
        s.generate(b)
        self.assertNotEqual(a, b)  # each call continues the stream
        s.set_seed(11)
        c = [MASK] * T
        s.generate(c)
        self.assertEqual(c, a)
        with self.assertRaises(ValueError):
            s.set_seed(-1)

    def test_threads_share_a_model(self):
        def run(seed, out):
            canvas = [MASK] * T
            td.Sampler(self.model, self.schedule, steps=4, seed=seed).generate(canvas)
            out.append(canvas)
        alone = {}
        for seed in (1, 2, 3):
            got = []
            run(seed, got)
            alone[seed] = got[0]
        results = {seed: [] for seed in alone}
        threads = [threading.Thread(target=run, args=(seed, results[seed])) for seed in alone]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual({k: v[0] for k, v in results.items()}, alone)

    def test_config(self):
        s = self.sampler(strategy="max_prob", temperature=0.5, top_k=5)
        cfg = s.config
        self.assertEqual(cfg.strategy, td.Strategy.MAX_PROB)
        self.assertEqual((cfg.steps, cfg.top_k, cfg.temperature), (4, 5, 0.5))
        self.assertEqual(cfg.pad_id, -1)  # a library default
        with self.assertRaises(td.InvalidArgumentError) as cm:
            self.sampler(top_p=0.0)
        self.assertIn("top_p", cm.exception.message)
        with self.assertRaises(ValueError):
            self.sampler(strategy="best")

    def test_callback_sees_every_step(self):
        s = self.sampler(steps=5)
        canvas = [MASK] * T
        calls = []

        def callback(step, n_steps, view, changed):
            self.assertTrue(view.readonly)
            self.assertEqual(view.shape, (T,))
            for i in changed:
                self.assertNotEqual(view[i], MASK)
            calls.append((step, n_steps, list(changed), view.tolist().count(MASK)))
        s.generate(canvas, callback=callback)
        self.assertEqual([c[:2] for c in calls], [(k, 5) for k in range(5)])
        revealed = sorted(i for c in calls for i in c[2])
        self.assertEqual(revealed, list(range(T)))
        self.assertEqual(calls[-1][3], 0)

    def test_callback_view_of_rows(self):
        s = self.sampler(max_batch=2, steps=2)
        shapes = []
        s.generate([[MASK] * T, [MASK] * T],
                   callback=lambda step, n, view, changed: shapes.append(view.shape))
        self.assertEqual(shapes, [(2, T), (2, T)])

    def test_view_is_released_after_the_call(self):
        kept = []
        self.sampler().generate([MASK] * T, callback=lambda *a: kept.append(a[2]))
        with self.assertRaises(ValueError):
            kept[0][0]

    def test_returning_false_cancels(self):
        s = self.sampler(steps=8)
        canvas = [MASK] * T
        with self.assertRaises(td.CancelledError) as cm:
            s.generate(canvas, callback=lambda step, *rest: step < 2)
        e = cm.exception
        self.assertEqual(e.status, td.Status.ERR_CANCELLED)
        self.assertIn("cancelled by the callback after step 2", e.message)
        self.assertEqual(e.stats.steps, 3)
        self.assertEqual(canvas.count(MASK), T - e.stats.tokens_revealed)  # partial, copied back
        self.assertGreater(canvas.count(MASK), 0)
        s.generate(canvas)  # finishes it
        self.assertNotIn(MASK, canvas)

    def test_none_and_true_continue(self):
        for result in (None, True, 1):
            canvas = [MASK] * T
            self.sampler().generate(canvas, callback=lambda *a, r=result: r)
            self.assertNotIn(MASK, canvas)

    def test_exception_propagates(self):
        s = self.sampler(steps=8)
        canvas = [MASK] * T
        steps = []

        def callback(step, n, view, changed):
            steps.append(step)
            if step == 1:
                raise Boom("from the callback")
        with self.assertRaises(Boom) as cm:
            s.generate(canvas, callback=callback)
        self.assertEqual(str(cm.exception), "from the callback")
        self.assertEqual(steps, [0, 1])  # generation stopped there
        self.assertIn(MASK, canvas)
        with self.assertRaises(KeyboardInterrupt):  # not only Exception
            s.generate([MASK] * T, callback=lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))

    def test_reentry_from_the_callback(self):
        s = self.sampler()

        def callback(step, n, view, changed):
            s.generate([MASK] * T)
        with self.assertRaises(td.StateError) as cm:
            s.generate([MASK] * T, callback=callback)
        self.assertIn("callback", cm.exception.message)
        other = self.sampler()  # another sampler may run inside the callback
        inner = [MASK] * T
        s.generate([MASK] * T, callback=lambda *a: other.generate(inner))
        self.assertNotIn(MASK, inner)

    def test_toolbox_config_and_stats(self):
        s = self.sampler(strategy="MAX_PROB", steps=T, threshold=0.5, remask="CAP", eta=0.1,
                         guidance=1.0)
        self.assertEqual(s.config.remask, td.Remask.CAP)
        self.assertAlmostEqual(s.config.threshold, 0.5)
        canvas = [65, 66] + [MASK] * (T - 2)
        stats = s.generate(canvas)
        self.assertNotIn(MASK, canvas)
        self.assertEqual(stats.tokens_generated, T - 2)
        self.assertAlmostEqual(stats.calls_per_token, stats.model_calls / (T - 2))
        self.assertEqual(stats.tokens_revealed, T - 2 + stats.tokens_remasked)
        for bad in (dict(threshold=1.5), dict(eta=-1.0, remask="CAP"), dict(guidance=float("nan"))):
            with self.assertRaises(td.InvalidArgumentError):
                self.sampler(strategy="MAX_PROB", **bad)

    def test_approx_cache_and_end(self):
        s = self.sampler(strategy="MAX_PROB", steps=4, block_len=4, approx_cache="dual",
                         eos_id=66, pad_id=PAD)
        self.assertEqual(s.config.approx_cache, td.Approx.DUAL)
        self.assertEqual(s.config.eos_id, 66)
        canvas = [MASK] * T
        s.generate(canvas)
        self.assertNotIn(MASK, canvas)
        if 66 in canvas:  # after the end only [PAD]
            self.assertTrue(all(x == PAD for x in canvas[canvas.index(66) + 1:]))
        for bad in (dict(approx_cache="prefix"), dict(eos_id=100000, pad_id=PAD),
                    dict(eos_id=66)):
            with self.assertRaises(td.InvalidArgumentError):
                self.sampler(strategy="MAX_PROB", **bad)

    def test_token_lists(self):
        s = self.sampler(temperature=2.0)
        s.set_tokens(td.TokenList.ALLOW, [65, 66])
        canvas = [MASK] * T
        s.generate(canvas)
        self.assertTrue(set(canvas) <= {65, 66})
        s.set_tokens(td.TokenList.BAN, [65])
        canvas = [MASK] * T
        s.generate(canvas)
        self.assertNotIn(65, canvas)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            s.set_tokens(td.TokenList.ALLOW, [MASK])
        self.assertIn("[MASK]", cm.exception.message)
        s.set_tokens(td.TokenList.ALL)

    def test_stream_and_hook(self):
        s = self.sampler(block_len=4)
        seen = []
        s.set_stream(lambda b, prefix: seen.append(list(prefix)))
        rows = []
        s.set_logits_hook(lambda r, logits: rows.extend(r))
        canvas = [MASK] * T
        s.generate(canvas)
        self.assertEqual(seen[-1], canvas)
        for a, b in zip(seen, seen[1:]):
            self.assertEqual(b[:len(a)], a)  # never revised
        self.assertEqual(sorted(rows), list(range(T)))  # ancestral: each row draws once

        def boom(b, prefix):
            raise Boom()
        s.set_stream(boom)
        with self.assertRaises(Boom):
            s.generate([MASK] * T)
        s.set_stream(None)
        s.set_logits_hook(None)
        s.generate([MASK] * T)

    def test_bad_canvases(self):
        s = self.sampler()
        with self.assertRaises(TypeError):
            s.generate(tuple([MASK] * T))
        with self.assertRaises(ValueError) as cm:
            s.generate(memoryview(array.array("i", [MASK] * T)).toreadonly())
        self.assertIn("read-only", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            s.generate(array.array("d", [0.0] * T))
        self.assertIn("int32", str(cm.exception))
        with self.assertRaises(ValueError):
            s.generate([1.5] * T)
        with self.assertRaises(ValueError):
            s.generate([])
        with self.assertRaises(TypeError):
            s.generate({1: 2})
        with self.assertRaises(td.InvalidArgumentError) as cm:
            s.generate([MASK] * (T + 1))
        self.assertIn("max_seq_len", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError):
            s.generate([-1] * T)
        with self.assertRaises(TypeError):
            s.generate([MASK] * T, callback=5)
        with self.assertRaises(ValueError):
            s.generate([[MASK] * T, MASK])
        with self.assertRaises(TypeError):
            s.generate([(MASK,) * T])


if __name__ == "__main__":
    unittest.main()
