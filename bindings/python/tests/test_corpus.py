"""Corpus: from text and from files (plain, gzip), splits, batches, windows."""

import array
import gzip
import os
import tempfile
import unittest

import support
from support import TEXT, td

# Enough text for a validation split: every 20th block of 8192 tokens.
BIG = TEXT * 500


class TestCorpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = td.Tokenizer.byte()
        cls.corpus = td.Corpus.from_text(BIG, cls.tok)

    def test_splits(self):
        c = self.corpus
        n = len(BIG.encode("utf-8"))
        self.assertEqual(c.num_tokens(td.Split.TRAIN) + c.num_tokens("valid"), n)
        self.assertEqual(c.num_tokens("VALID"), 8192)
        self.assertIs(c.tokenizer, self.tok)
        with self.assertRaises(ValueError):
            c.num_tokens("test")
        with self.assertRaises(td.InvalidArgumentError):
            c.num_tokens(7)

    def test_documents_with_end_token(self):
        tok = td.Tokenizer.byte(eos=True)
        c = td.Corpus.from_text("ab\ncd", tok, separator="\n")
        self.assertEqual(list(c.window(6, 0, split=td.Split.TRAIN)),
                         [97, 98, 10, 258, 99, 100][:6])
        self.assertEqual(c.num_tokens(), 7)
        with self.assertRaises(td.InvalidArgumentError):
            td.Corpus.from_text("ab", self.tok, separator="\n")  # no end token

    def test_batch(self):
        c = self.corpus
        a = c.batch(4, 32, index=3, seed=9)
        self.assertIsInstance(a, array.array)
        self.assertEqual(len(a), 4 * 32)
        self.assertEqual(a, c.batch(4, 32, index=3, seed=9))  # stateless
        self.assertNotEqual(a, c.batch(4, 32, index=4, seed=9))
        out = array.array("i", [0] * 128)
        self.assertIs(c.batch(4, 32, index=3, seed=9, out=out), out)
        self.assertEqual(out, a)
        text = self.tok.decode(a[:32])
        self.assertIn(text[5:15], BIG)
        with self.assertRaises(ValueError) as cm:
            c.batch(4, 32, out=array.array("i", [0] * 100))
        self.assertIn("100 elements, 128 are needed", str(cm.exception))
        with self.assertRaises(td.InvalidArgumentError) as cm:
            c.batch(0, 32)
        self.assertIn("batch", cm.exception.message)

    def test_windows(self):
        c = self.corpus
        self.assertEqual(c.num_windows(64), 8192 // 64)
        self.assertEqual(c.num_windows(64, "train"), c.num_tokens("train") // 64)
        w1 = c.window(64, 1)
        stream = c.windows(64, count=3)
        self.assertEqual(len(stream), 3 * 64)
        self.assertEqual(stream[64:128], w1)
        self.assertEqual(len(c.windows(64)), 8192)
        self.assertEqual(len(c.windows(64, count=0)), 0)
        with self.assertRaises(td.InvalidArgumentError):
            c.window(64, 10**6)

    def test_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            plain = os.path.join(tmp, "a.txt")
            with open(plain, "w", encoding="utf-8") as f:
                f.write(TEXT)
            packed = os.path.join(tmp, "a.txt.gz")
            with gzip.open(packed, "wt", encoding="utf-8") as f:
                f.write(TEXT)
            a = td.Corpus.load(plain, self.tok)
            b = td.Corpus.load(packed, self.tok)  # gzip detected by content
            self.assertEqual(a.num_tokens("train"), len(TEXT.encode("utf-8")))
            self.assertEqual(a.window(40, 0, "train"), b.window(40, 0, "train"))
            with self.assertRaises(td.InputOutputError) as cm:
                td.Corpus.load(os.path.join(tmp, "missing.txt"), self.tok)
            self.assertIn("missing.txt", cm.exception.message)

    def test_bundled_corpus(self):
        path = os.path.join(support.SOURCE_DIR, "data", "kjv.txt.gz")
        if not os.path.exists(path):
            self.skipTest("no data/kjv.txt.gz")
        c = td.Corpus.load(path, self.tok)
        self.assertGreater(c.num_tokens("train"), 3_000_000)


if __name__ == "__main__":
    unittest.main()
