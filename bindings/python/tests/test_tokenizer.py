"""Tokenizer: byte and character vocabularies, encode, decode, specials."""

import array
import unittest

from support import TEXT, td


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
