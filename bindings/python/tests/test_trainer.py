"""Trainer: steps and their statistics, checkpoints and exact resumption."""

import array
import math
import os
import tempfile
import unittest

import support
from support import T, td

B = 2


class TestTrainer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corpus = support.corpus()

    def trainer(self, model=None, schedule=None, **cfg):
        args = dict(batch_size=B, seq_len=T, warmup_steps=2, total_steps=20, lr=3e-3)
        args.update(cfg)
        return td.Trainer(model or support.tiny_model(), schedule or td.Schedule.diffusion(),
                          **args)

    def test_steps(self):
        tr = self.trainer()
        self.assertEqual(tr.step_count, 0)
        self.assertEqual(tr.tokens_per_step, B * T)
        cfg = tr.config
        self.assertEqual((cfg.batch_size, cfg.seq_len, cfg.warmup_steps), (B, T, 2))
        self.assertAlmostEqual(cfg.beta1, 0.9, places=6)  # a library default
        for k in range(3):
            st = tr.step(self.corpus.batch(B, T, index=k))
            self.assertIsInstance(st, td.TrainStats)
            self.assertEqual(st.step, k + 1)
            self.assertTrue(math.isfinite(st.loss) and st.loss > 0)
            self.assertGreater(st.n_masked, 0)
        self.assertEqual(tr.step_count, 3)
        # nested lists and flat arrays alike
        batch = list(self.corpus.batch(B, T, index=9))
        tr.step([batch[:T], batch[T:]])
        tr.step(array.array("i", batch))

    def test_protected_step(self):
        tokens = self.corpus.batch(B, T, index=0)
        a, b = self.trainer(), self.trainer()
        plain = a.step(tokens)
        same = b.step(tokens, protect=[0] * (B * T))
        self.assertEqual(plain, same)  # no protection: td_trainer_step
        c = self.trainer()
        st = c.step(tokens, protect=[[1] * T] * B)
        self.assertEqual(st.n_masked, 0)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            c.step(tokens, protect=[3] + [0] * (B * T - 1))
        self.assertIn("protect[0]", cm.exception.message)
        with self.assertRaises(ValueError):
            c.step(tokens, protect=[0])

    def test_mlm_and_diffusion_share_the_step(self):
        for sched in (td.Schedule.mlm(), td.Schedule.diffusion("cosine")):
            st = self.trainer(schedule=sched).step(self.corpus.batch(B, T))
            self.assertTrue(math.isfinite(st.loss))

    def test_bad_tokens(self):
        tr = self.trainer()
        with self.assertRaises(ValueError) as cm:
            tr.step([65] * (B * T - 1))
        self.assertIn("%d are needed" % (B * T), str(cm.exception))
        with self.assertRaises(td.InvalidArgumentError) as cm:
            tr.step([256] * (B * T))  # [MASK] is not data
        self.assertIn("256", cm.exception.message)
        self.assertEqual(tr.step_count, 0)

    def test_bad_config(self):
        with self.assertRaises(td.InvalidArgumentError) as cm:
            self.trainer(seq_len=T + 1)
        self.assertIn("seq_len", cm.exception.message)

    def test_save_and_resume_exactly(self):
        batches = [self.corpus.batch(B, T, index=k) for k in range(6)]
        tr = self.trainer(support.tiny_model())
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "run.tdc")
            for b in batches[:3]:
                tr.step(b)
            tr.save(path)
            straight = [tr.step(b).loss for b in batches[3:]]
            again = self.trainer(support.tiny_model(seed=99))
            again.resume(path)
            self.assertEqual(again.step_count, 3)
            self.assertEqual([again.step(b).loss for b in batches[3:]], straight)
            self.assertEqual(td.Model.load(path).num_params, tr.model.num_params)
            other = self.trainer(support.tiny_model(d_model=32))
            with self.assertRaises(td.TextdiffError) as cm:
                other.resume(path)
            self.assertTrue(cm.exception.message)
            self.assertEqual(other.step_count, 0)
            with self.assertRaises(td.InputOutputError):
                other.resume(os.path.join(tmp, "none.tdc"))
            # Another run's seed is refused unless allowed.
            reseeded = self.trainer(support.tiny_model(), seed=12345)
            with self.assertRaises(td.StateError) as cm:
                reseeded.resume(path)
            self.assertIn("seed", cm.exception.message)
            reseeded.resume(path, td.ResumeFlags.ALLOW_SEED)
            self.assertEqual(reseeded.step_count, 3)
            with self.assertRaises(td.InvalidArgumentError):
                reseeded.resume(path, 1 << 20)
            with self.assertRaises(ValueError):
                reseeded.resume(path, -1)
            with self.assertRaises(td.InputOutputError):
                tr.save(os.path.join(tmp, "no", "dir", "run.tdc"))


if __name__ == "__main__":
    unittest.main()
