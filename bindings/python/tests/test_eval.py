"""Evaluation: the NELBO and the loss at each masking rate."""

import math
import unittest

import support
from support import T, td


class TestEval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = support.tiny_model()
        cls.tokens = support.corpus().windows(T, count=8, split="train")

    def test_nelbo(self):
        r = td.eval_nelbo(self.model, self.tokens, seq_len=T, bytes_per_token=1, n_times=4)
        self.assertIsInstance(r, td.EvalResult)
        self.assertEqual((r.n_sequences, r.n_tokens), (8, 8 * T))
        self.assertAlmostEqual(r.nelbo_bits, r.nelbo_nats / math.log(2))
        self.assertAlmostEqual(r.bits_per_byte, r.nelbo_bits)
        self.assertAlmostEqual(r.perplexity_bound, math.exp(r.nelbo_nats), places=5)
        self.assertGreater(r.std_error_nats, 0)
        again = td.eval_nelbo(self.model, list(self.tokens), seq_len=T, bytes_per_token=1,
                              n_times=4, n_threads=2)
        self.assertEqual(again, r)  # not the thread count
        batched = td.eval_nelbo(self.model, self.tokens, seq_len=T, n_times=4, batch_size=3)
        self.assertAlmostEqual(batched.nelbo_nats, r.nelbo_nats, places=6)  # same masks
        unknown = td.eval_nelbo(self.model, self.tokens, seq_len=T, n_times=4)
        self.assertTrue(math.isnan(unknown.bits_per_byte))

    def test_rates(self):
        curve = td.eval_rates(self.model, self.tokens, [0.15, 0.5, 1.0], seq_len=T)
        self.assertEqual([p.rate for p in curve], [0.15, 0.5, 1.0])
        for p in curve:
            self.assertIsInstance(p, td.RateLoss)
            self.assertGreater(p.loss_nats, 0)
            self.assertTrue(0 <= p.accuracy <= 1)
        self.assertEqual(td.eval_rates(self.model, self.tokens, [], seq_len=T), [])

    def test_errors(self):
        with self.assertRaises(td.InvalidArgumentError) as cm:
            td.eval_rates(self.model, self.tokens, [1.5], seq_len=T)
        self.assertIn("1.5", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            td.eval_nelbo(self.model, self.tokens)  # seq_len 128 > max_seq_len
        self.assertIn("seq_len", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError):
            td.eval_nelbo(self.model, [256] * T, seq_len=T)  # [MASK] in the data
        with self.assertRaises(ValueError):
            td.eval_nelbo(self.model, [], seq_len=T)
        with self.assertRaises(TypeError):
            td.eval_nelbo(self.model, self.tokens, seqlen=T)
        with self.assertRaises(TypeError):
            td.eval_rates(self.model, self.tokens, ["x"], seq_len=T)


class TestCausal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = support.tiny_model(causal=1)
        cls.tokens = support.corpus().windows(T, count=4, split="train")

    def test_exact_nll_and_gen_perplexity(self):
        self.assertEqual(self.model.config.causal, 1)
        r = td.eval_nelbo(self.model, self.tokens, seq_len=T, bytes_per_token=1)
        self.assertEqual((r.n_sequences, r.n_tokens), (4, 4 * T))
        g = td.eval_gen_perplexity(self.model, self.tokens, T, bytes_per_token=1)
        self.assertAlmostEqual(g.nelbo_nats, r.nelbo_nats, places=12)
        self.assertAlmostEqual(g.perplexity_bound, math.exp(g.nelbo_nats), places=6)
        with self.assertRaises(td.UnsupportedError):
            td.eval_rates(self.model, self.tokens, [0.5], seq_len=T)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            td.eval_gen_perplexity(support.tiny_model(), self.tokens, T)
        self.assertIn("causal", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError):
            td.eval_gen_perplexity(self.model, [256] * T, T)  # [MASK]

    def test_left_to_right(self):
        sch = td.Schedule("linear")
        s = td.Sampler(self.model, sch, strategy=td.Strategy.LEFT_TO_RIGHT, max_seq_len=T)
        canvas = [ord("a")] * 3 + [256] * (T - 3)
        stats = s.generate(canvas)
        self.assertEqual(canvas[:3], [ord("a")] * 3)
        self.assertNotIn(256, canvas)
        self.assertEqual(stats.model_calls, T)
        with self.assertRaises(td.InvalidArgumentError):
            td.Sampler(support.tiny_model(), sch, strategy="left_to_right")


class TestTextStats(unittest.TestCase):
    def test_counts(self):
        s = td.text_stats("the cat, The CAT; the dog.", reference=b"and the dog barked")
        self.assertIsInstance(s, td.TextStats)
        self.assertEqual((s.n_bytes, s.n_words), (26, 6))
        self.assertEqual((s.distinct_1, s.distinct_2, s.distinct_3), (0.5, 0.6, 0.75))
        self.assertEqual(s.known_words, 4 / 6)
        self.assertTrue(math.isnan(td.text_stats("a b").known_words))
        self.assertEqual(td.text_stats("naïve café").n_bytes, len("naïve café".encode()))

    def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            td.text_stats(42)
        with self.assertRaises(TypeError):
            td.text_stats("a", reference=3.5)


if __name__ == "__main__":
    unittest.main()
