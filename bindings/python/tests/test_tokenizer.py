"""Tokenizer: byte and character vocabularies, encode, decode, specials."""

import array
import gzip
import os
import unittest

from support import SOURCE_DIR, TEXT, td


class TestByte(unittest.TestCase):
    def setUp(self):
        self.tok = td.Tokenizer.byte()

    def test_vocabulary(self):
        self.assertEqual(self.tok.vocab_size, 258)
        self.assertEqual((self.tok.mask_id, self.tok.pad_id), (256, 257))
        self.assertIsNone(self.tok.unk_id)
        self.assertEqual(self.tok.special_id("mask"), 256)
        with self.assertRaises(td.InvalidArgumentError):
            self.tok.special_id(td.SpecialToken.UNK)

    def test_end_of_text(self):
        tok = td.Tokenizer.byte(eos=True)
        self.assertEqual(tok.vocab_size, 259)
        self.assertEqual(tok.special_id(td.SpecialToken.EOS), 258)
        self.assertEqual(tok.decode(tok.encode("ab") + [258, 65]), "ab")  # stops at [EOS]
        with self.assertRaises(td.InvalidArgumentError):
            self.tok.special_id("eos")

    def test_round_trip(self):
        text = "naïve café — ok"
        ids = self.tok.encode(text)
        self.assertEqual(ids, list(text.encode("utf-8")))
        self.assertEqual(self.tok.decode(ids), text)
        self.assertEqual(self.tok.encode(b"\x00\xff"), [0, 255])
        self.assertEqual(self.tok.decode_bytes([0, 255]), b"\x00\xff")
        self.assertEqual(self.tok.decode(array.array("i", ids)), text)
        self.assertEqual(self.tok.encode(""), [])
        self.assertEqual(self.tok.decode([]), "")

    def test_specials_in_decode(self):
        ids = self.tok.encode("ab") + [256, 256] + self.tok.encode("c") + [257, 65]
        self.assertEqual(self.tok.decode(ids), "ab__c")  # stops at [PAD]
        self.assertEqual(self.tok.decode(ids, mask_text="[MASK]"), "ab[MASK][MASK]c")
        self.assertEqual(self.tok.decode(ids, mask_text=""), "abc")
        self.assertEqual(self.tok.decode([0xC3]), "\ufffd")  # bytes.decode(errors="replace")

    def test_bad_ids(self):
        with self.assertRaises(td.InvalidArgumentError) as cm:
            self.tok.decode([65, 300])
        self.assertIn("300", cm.exception.message)
        with self.assertRaises(ValueError):
            self.tok.decode([2**40])
        with self.assertRaises(TypeError):
            self.tok.encode(12)


class TestChar(unittest.TestCase):
    def test_vocabulary_of_a_text(self):
        tok = td.Tokenizer.char(TEXT)
        chars = sorted(set(TEXT))
        self.assertEqual(tok.vocab_size, len(chars) + 2)
        self.assertEqual(tok.mask_id, len(chars))
        self.assertEqual(tok.encode("God"), [chars.index(c) for c in "God"])
        self.assertEqual(tok.decode(tok.encode(TEXT)), TEXT)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            tok.encode("God?")  # '?' is not in the vocabulary
        self.assertIn("U+003F", cm.exception.message)

    def test_capped(self):
        tok = td.Tokenizer.char(TEXT.encode("utf-8"), max_chars=10)
        self.assertEqual(tok.vocab_size, 13)
        self.assertEqual(tok.unk_id, 12)
        self.assertIn("\ufffd", tok.decode(tok.encode("zzz?")))


if __name__ == "__main__":
    unittest.main()


HF_DIR = os.path.join(SOURCE_DIR, "tests", "golden", "hf-tok")


class TestHuggingFace(unittest.TestCase):
    def test_bpe(self):
        tok = td.Tokenizer.load_hf(os.path.join(HF_DIR, "bpe"))
        self.assertEqual(tok.vocab_size, 3000)
        self.assertEqual((tok.mask_id, tok.pad_id, tok.unk_id), (4, 1, 3))
        self.assertEqual((tok.special_id("cls"), tok.special_id(td.SpecialToken.SEP)), (0, 2))
        with gzip.open(os.path.join(HF_DIR, "bpe-corpus.ids.gz"), "rt") as f:
            want = [int(x) for x in f.read().split()[1:]]
        text = "In the beginning God created the heaven and the earth."
        ids = tok.encode(text)
        self.assertEqual(ids, want[:len(ids)])
        self.assertEqual(tok.decode(ids), text)
        self.assertEqual(tok.encode(text, framed=True), [0] + ids + [2])
        self.assertEqual(tok.encode(b"\xff"), tok.encode("\ufffd"))

    def test_wordpiece(self):
        tok = td.Tokenizer.load_hf(os.path.join(HF_DIR, "wordpiece"))
        ids = tok.encode("And God SAID, Let there be light.")
        self.assertEqual(tok.decode(ids), "and god said, let there be light.")
        self.assertEqual(tok.encode("x", framed=True)[0], tok.special_id("cls"))

    def test_errors(self):
        with self.assertRaises(td.InputOutputError):
            td.Tokenizer.load_hf("/nonexistent-directory")
        with self.assertRaises(td.InvalidArgumentError):
            td.Tokenizer.byte().encode("ab", framed=True)
