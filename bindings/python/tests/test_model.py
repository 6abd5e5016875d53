"""Model: configuration, logits, checkpoints, tokenizers."""

import array
import math
import os
import tempfile
import unittest

import support
from support import T, TEXT, td


class TestModel(unittest.TestCase):
    def test_config(self):
        m = support.tiny_model(pos_encoding=td.PosEncoding.LEARNED, norm_placement="post")
        cfg = m.config
        self.assertIsInstance(cfg, td.ModelConfig)
        self.assertEqual((cfg.d_model, cfg.n_layers, cfg.max_seq_len), (16, 1, T))
        self.assertEqual((cfg.vocab_size, cfg.mask_id), (258, 256))  # library defaults
        self.assertEqual(cfg.pos_encoding, td.PosEncoding.LEARNED)
        self.assertEqual(cfg.norm_placement, td.NormPlacement.POST)
        twin = td.Model(**cfg._asdict())
        self.assertEqual(twin.config, cfg)
        self.assertGreater(m.num_params, 0)
        self.assertEqual(twin.num_params, m.num_params)

    def test_logits(self):
        m = support.tiny_model()
        ids = support.td.Tokenizer.byte().encode("In the beginnin")[:T - 1] + [256]
        out = m.logits(ids)
        self.assertIsInstance(out, array.array)
        self.assertEqual(out.typecode, "f")
        self.assertEqual(len(out), T * 258)
        self.assertEqual(out[256], -math.inf)  # the [MASK] column
        self.assertEqual(m.logits(ids, n_threads=2), out)
        self.assertEqual(support.tiny_model().logits(ids), out)  # same seed
        self.assertNotEqual(support.tiny_model(seed=2).logits(ids), out)
        two = m.logits([ids, ids])
        self.assertEqual(two[:T * 258], out)
        self.assertEqual(two[T * 258:], out)
        self.assertEqual(m.logits(ids + ids, batch=2), two)
        buf = array.array("f", bytes(4 * T * 258))
        self.assertIs(m.logits(array.array("i", ids), out=buf), buf)
        self.assertEqual(buf, out)

    def test_logits_errors(self):
        m = support.tiny_model()
        with self.assertRaises(ValueError):
            m.logits([1] * T, out=array.array("f", [0.0] * 3))
        with self.assertRaises(ValueError):
            m.logits([1] * T, out=array.array("d", [0.0] * T * 258))
        with self.assertRaises(ValueError):
            m.logits([1] * 15, batch=2)
        with self.assertRaises(ValueError):
            m.logits([[1, 2], [3]])
        with self.assertRaises(td.InvalidArgumentError) as cm:
            m.logits([1] * (T + 1))
        self.assertIn("seq_len", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError):
            m.logits([1, 2, 999])
        with self.assertRaises(td.InvalidArgumentError):
            m.logits([1, 2], n_threads=0)

    def test_hugging_face(self):
        hf = os.path.join(support.SOURCE_DIR, "tests", "golden", "hf")
        m = td.Model.load_hf(os.path.join(hf, "distilbert"), mask_id=3)
        cfg = m.config
        self.assertEqual((cfg.vocab_size, cfg.mask_id, cfg.d_model, cfg.head_transform),
                         (99, 3, 24, 1))
        self.assertEqual(cfg.activation, td.Activation.GELU_ERF)
        self.assertAlmostEqual(cfg.layer_norm_eps, 1e-12, delta=1e-18)
        ids = list(range(10, 20))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "export")
            m.save_hf(out)
            self.assertEqual(sorted(os.listdir(out)), ["config.json", "model.safetensors"])
            self.assertEqual(td.Model.load_hf(out, mask_id=3).logits(ids), m.logits(ids))
            with self.assertRaises(td.InvalidArgumentError):  # no tokenizer.json
                td.Model.load_hf(out)
            with self.assertRaises(td.InputOutputError):
                td.Model.load_hf(os.path.join(tmp, "none"), mask_id=3)
            with self.assertRaises(td.UnsupportedError):  # RoPE, pre-LN
                support.tiny_model().save_hf(out)
        b = support.tiny_model(pos_encoding="learned", norm_placement="post",
                               activation=td.Activation.GELU_ERF, type_vocab_size=2,
                               head_transform=1, layer_norm_eps=1e-12)
        self.assertEqual(b.config.type_vocab_size, 2)

    def test_convert(self):
        m = support.tiny_model(d_model=32, n_heads=2, d_ff=64)
        self.assertEqual(m.dtype, td.DType.F32)
        ids = support.td.Tokenizer.byte().encode("In the beginnin")[:T]
        ref = m.logits(ids)
        for dtype in (td.DType.BF16, td.DType.Q8_0):
            q = m.convert(dtype)
            self.assertEqual(q.dtype, dtype)
            self.assertEqual(q.num_params, m.num_params)
            out = q.logits(ids)
            self.assertNotEqual(out, ref)
            spread = max(v for v in ref if v > -math.inf) - min(ref)
            worst = max(abs(a - b) for a, b in zip(out, ref) if b > -math.inf)
            self.assertLess(worst, 0.02 * spread)
            with self.assertRaises(td.StateError):
                q.convert(td.DType.Q8_0)
            with self.assertRaises(td.UnsupportedError):
                td.Trainer(q, td.Schedule.diffusion(), batch_size=2, seq_len=T)
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "q.tdm")
                q.save(path)
                back = td.Model.load(path)
                self.assertEqual(back.dtype, dtype)
                self.assertEqual(back.logits(ids), out)
        with self.assertRaises(td.InvalidArgumentError):
            m.convert(7)

    def test_save_and_load(self):
        m = support.tiny_model(seed=5)
        ids = list(range(60, 60 + T))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.tdm")
            m.save(path)
            self.assertEqual(td.Model.load(path).logits(ids), m.logits(ids))
            with open(path, "rb") as f:
                data = f.read()
            for blob in (data, bytearray(data), memoryview(data)):
                self.assertEqual(td.Model.load_memory(blob).logits(ids), m.logits(ids))
            with self.assertRaises(td.FormatError):
                td.Model.load_memory(b"not a checkpoint at all" * 4)
            with self.assertRaises((td.CorruptError, td.FormatError)) as cm:
                td.Model.load_memory(data[:len(data) // 2])
            self.assertTrue(cm.exception.message)
            flipped = bytearray(data)
            flipped[len(data) - 9] ^= 0x10
            with self.assertRaises(td.CorruptError):
                td.Model.load_memory(flipped)
            with self.assertRaises(td.InputOutputError):
                td.Model.load(os.path.join(tmp, "none.tdm"))
            with self.assertRaises(td.InputOutputError):
                m.save(os.path.join(tmp, "no", "such", "dir.tdm"))
            with self.assertRaises(TypeError):
                td.Model.load_memory(12)

    def test_tokenizer_travels_with_the_model(self):
        tok = td.Tokenizer.char(TEXT)
        m = support.tiny_model(tok)
        self.assertEqual((m.config.vocab_size, m.config.mask_id), (tok.vocab_size, tok.mask_id))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.tdm")
            m.save(path)
            back = td.Model.load(path).get_tokenizer()
        self.assertEqual(back.vocab_size, tok.vocab_size)
        self.assertEqual(back.encode("God"), tok.encode("God"))

    def test_tokenizer_errors(self):
        m = support.tiny_model()
        with self.assertRaises(td.StateError) as cm:
            m.get_tokenizer()
        self.assertIn("tokenizer", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError):
            m.set_tokenizer(td.Tokenizer.char(TEXT))  # another vocabulary size
        m.set_tokenizer(td.Tokenizer.byte())
        self.assertEqual(m.get_tokenizer().vocab_size, 258)
        with self.assertRaises(td.InvalidArgumentError):  # the model is freed again
            support.tiny_model(td.Tokenizer.byte(), vocab_size=300)


if __name__ == "__main__":
    unittest.main()
