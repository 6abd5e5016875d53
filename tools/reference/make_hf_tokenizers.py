#!/usr/bin/env python3
"""Golden files for the Hugging Face tokenizers (tests/golden/hf-tok/).

Trains, on the bundled corpus only (no download), an uncased WordPiece
vocabulary (BertWordPieceTokenizer) and a byte-level BPE vocabulary
(ByteLevelBPETokenizer), saves them in the files Hugging Face uses
(vocab.txt; vocab.json + merges.txt; tokenizer.json), writes an edge-case
text and the token ids the `tokenizers` library gives for it and for the
first 200 KB of the corpus. Input bytes are decoded with errors="replace"
(one U+FFFD per maximal ill-formed subpart, as the library does).

Also writes the fuzz targets' seeds (tests/fuzz/corpus/hf_*).

Usage: /work/venv/bin/python tools/reference/make_hf_tokenizers.py
"""
import gzip
import json
import os
import random
import sys

from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer, Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "hf-tok")
SLICE = 200 * 1024

EDGE = (
    b"Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xc3\x85ngstr\xc3\xb6m \xc3\x9cBER Stra\xc3\x9fe \xc4\xb0stanbul\n"
    + "中文字符测试，日本語のテキスト。한국어 텍스트\n".encode()
    + "emoji 😀👍🏽 👨‍👩‍👧 ❤️ flags 🇫🇷\n".encode()
    + b"ctrl:\x01\x02\x7f|\x0b|\x0c|\xc2\x85|tab\there\r\nzero\xe2\x80\x8bwidth soft\xc2\xadhyphen\n"
    + b"long " + b"a" * 150 + b" " + b"xyz" * 40 + b" end\n"
    + b"spaces:    four  two\t\ttabs   \n\n\n  lead and trail   \n"
    + "mixed Ελληνικά Русский עברית العربية हिन्दी ไทย\n".encode()
    + b"numbers 1234567 3.14159 1,000,000 42nd \xe2\x85\xa7 \xc2\xbd \xd9\xa3\n"
    + b"contractions: I'm you're he's it'd we've they'll don't can't O'Neil 'quoted' ''\n"
    + b"punct: (a) [b] {c} <d> a--b ... !? $5 #tag @user 50% a+b=c ~^`|\\\n"
    + b"invalid: \xff \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 trunc \x80 lone \xc3\n"
    + "accents: ÀÉÎÕÜ àéîõü ñ ç ǅ ﬁ Ⅻ ß ẞ Σσς\n".encode()
    + b"unicode space:\xc2\xa0nbsp\xe3\x80\x80ideographic\xe2\x80\x83em\xe2\x80\xa8ls\n"
    + "not space: \x1c\x1f\u180e\u200b; space: \u1680\u1680x \x85\x85y; "
      "CJK edges \U0002B81D\U0002B820\U0002B920\U0002CEA1\U0002CEB0 \u3400\u4dbf\n".encode()
    + b"final line without newline"
)


def write_ids(path, ids):
    with open(path, "w") as f:
        f.write("%d\n" % len(ids))
        for i in range(0, len(ids), 20):
            f.write(" ".join(str(x) for x in ids[i:i + 20]) + "\n")


def write_ids_gz(path, ids):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(("%d\n" % len(ids)).encode())
        for i in range(0, len(ids), 20):
            f.write((" ".join(str(x) for x in ids[i:i + 20]) + "\n").encode())


def main():
    with gzip.open(os.path.join(ROOT, "data", "kjv.txt.gz"), "rb") as f:
        corpus_bytes = f.read()
    corpus = corpus_bytes.decode("utf-8", errors="replace")
    os.makedirs(OUT, exist_ok=True)
    wp_dir = os.path.join(OUT, "wordpiece")
    bpe_dir = os.path.join(OUT, "bpe")
    os.makedirs(wp_dir, exist_ok=True)
    os.makedirs(bpe_dir, exist_ok=True)

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator([corpus], vocab_size=1500, min_frequency=2,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                           show_progress=False)
    wp.save_model(wp_dir)
    wp.save(os.path.join(wp_dir, "tokenizer.json"))
    with open(os.path.join(wp_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator([corpus], vocab_size=3000, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)
    bpe.save_model(bpe_dir)
    bpe.save(os.path.join(bpe_dir, "tokenizer.json"))

    with open(os.path.join(OUT, "edge.txt"), "wb") as f:
        f.write(EDGE)
    edge = EDGE.decode("utf-8", errors="replace")
    piece = corpus_bytes[:SLICE].decode("utf-8", errors="replace")

    for name, d in (("wordpiece", wp_dir), ("bpe", bpe_dir)):
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        e = tok.encode(edge, add_special_tokens=False).ids
        write_ids(os.path.join(OUT, name + "-edge.ids"), e)
        with open(os.path.join(OUT, name + "-edge.decoded"), "wb") as f:
            f.write(tok.decode(e, skip_special_tokens=False).encode())
        c = tok.encode(piece, add_special_tokens=False).ids
        write_ids_gz(os.path.join(OUT, name + "-corpus.ids.gz"), c)
        print(name, "vocab", tok.get_vocab_size(), "edge ids", len(e), "corpus ids", len(c))

    # The same with add_prefix_space (byte-level) from a tokenizer.json edited
    # accordingly: the option as configured.
    with open(os.path.join(bpe_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    tj["pre_tokenizer"]["add_prefix_space"] = True
    tj["decoder"]["add_prefix_space"] = True
    tok = Tokenizer.from_str(json.dumps(tj))
    e = tok.encode(edge, add_special_tokens=False).ids
    write_ids(os.path.join(OUT, "bpe-prefix-edge.ids"), e)
    # The same with do_lower_case false (cased WordPiece).
    with open(os.path.join(wp_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    tj["normalizer"]["lowercase"] = False
    tok = Tokenizer.from_str(json.dumps(tj))
    e = tok.encode(edge, add_special_tokens=False).ids
    write_ids(os.path.join(OUT, "wordpiece-cased-edge.ids"), e)
    multi = os.path.join(OUT, "wordpiece-multi")
    train_multilingual(multi)
    write_random([(n, Tokenizer.from_file(os.path.join(d, "tokenizer.json")))
                  for n, d in (("bpe", bpe_dir), ("wordpiece", wp_dir),
                               ("wordpiece-multi", multi))])
    fuzz_seeds(corpus_bytes)


# Random strings over pools of characters that exercise the pre-tokenizers and
# normalizers: letters of several scripts and cases, combining marks, digits,
# punctuation and symbols, controls, Unicode spaces and non-spaces.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r",
    "'sStTmMdDrReEvVlL", ".,;:!?-()[]{}\"'`~^|\\/@#$%&*+=<>_",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßẞİıǅǈǋ",
    "αβγδεζηθΣσςΩωάέήίόύώΆΈΉΊΌΎΏ", "абвгдеёжзийАБВГДЕЁЖЗИЙ", "一二三中文字日本語漢字テキストひらがなカタカナ한국어텍스트",
    "\u0300\u0301\u0308\u0327\u0303\u200b\u200c\u200d\u2060\ufeff\u00ad",
    "\x01\x07\x0b\x0c\x1b\x1c\x1f\x7f\x85\xa0\u1680\u2000\u2003\u2028\u2029\u202f\u205f\u3000",
    "😀👍🏽❤️🇫🇷👨‍👩‍👧✓★☆→←§¶©®™°±×÷€£¥¢",
    "٠١٢٣٤٥٦٧٨٩ⅠⅡⅢⅫ½¼¾²³¹₀₁",
    "،؛؟«»‹›„“”‘’—–…·•",
    "अआइईउऊकखगघ्ािीुूेैोौंः", "กขคงจฉชซฌญั่้๊๋", "אבגדהוזחטיכלמנסעפצקרשת",
    "ﬁﬂﬀﬃ①②③㈱㌔", "\U0001d400\U0001d401\U0001d7ce",
]


def random_texts(n, max_len, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(rng.choice(POOLS)) for _ in range(rng.randint(0, max_len)))
            for _ in range(n)]


def write_random(tokenizers):
    """random.txt (strings separated by NUL) and, per tokenizer, the ids of
    each string, one line each."""
    texts = random_texts(400, 120, 2)
    with open(os.path.join(OUT, "random.txt"), "wb") as f:
        f.write(b"\0".join(t.encode() for t in texts))
    # The whole file as one text too (with its NULs): a text long enough for
    # the library's cache of byte-level BPE pieces.
    whole = "\0".join(texts)
    for name, tok in tokenizers:
        write_ids_gz(os.path.join(OUT, name + "-random-whole.ids.gz"),
                     tok.encode(whole, add_special_tokens=False).ids)
        with gzip.GzipFile(os.path.join(OUT, name + "-random.ids.gz"), "wb", mtime=0) as f:
            for t in texts:
                ids = tok.encode(t, add_special_tokens=False).ids
                f.write((" ".join(str(i) for i in ids) + "\n").encode())


def train_multilingual(path):
    """A WordPiece vocabulary with tokens of many scripts, so that lowercasing
    and accent stripping show in the ids (the corpus's vocabulary is ASCII)."""
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(random_texts(20000, 30, 7), vocab_size=1000, min_frequency=1,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                           show_progress=False)
    os.makedirs(path, exist_ok=True)
    wp.save(os.path.join(path, "tokenizer.json"))


def fuzz_seeds(corpus_bytes):
    """Small seeds for the libFuzzer targets (tests/fuzz/corpus/hf_*), under
    the targets' 4096-byte input limit."""
    text = corpus_bytes[:20000].decode()
    fz = os.path.join(ROOT, "tests", "fuzz", "corpus")
    for d in ("hf_vocab_txt", "hf_vocab_json", "hf_tokenizer_json"):
        os.makedirs(os.path.join(fz, d), exist_ok=True)
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator([text], vocab_size=120, min_frequency=2,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
    vocab = sorted(wp.get_vocab().items(), key=lambda kv: kv[1])
    with open(os.path.join(fz, "hf_vocab_txt/uncased.txt"), "w") as f:
        f.write("".join(k + "\n" for k, _ in vocab))
    with open(os.path.join(fz, "hf_vocab_txt/cased-config.txt"), "w") as f:
        f.write("".join(k + "\n" for k, _ in vocab) + "\0" + '{"do_lower_case": false}')
    j = json.loads(wp.to_str())
    with open(os.path.join(fz, "hf_tokenizer_json/wordpiece.json"), "w") as f:
        f.write(json.dumps(j, separators=(",", ":"), ensure_ascii=False))
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=300, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    j = json.loads(bpe.to_str())
    with open(os.path.join(fz, "hf_tokenizer_json/bpe.json"), "w") as f:
        f.write(json.dumps(j, separators=(",", ":"), ensure_ascii=False))
    j["pre_tokenizer"]["add_prefix_space"] = True
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    with open(os.path.join(fz, "hf_tokenizer_json/bpe-prefix-old-merges.json"), "w") as f:
        f.write(json.dumps(j, separators=(",", ":"), ensure_ascii=False))
    v = json.dumps(j["model"]["vocab"], separators=(",", ":"), ensure_ascii=False)
    m = "#version: 0.2\n" + "".join(x + "\n" for x in j["model"]["merges"])
    with open(os.path.join(fz, "hf_vocab_json/bpe.txt"), "w") as f:
        f.write(v + "\0" + m)


if __name__ == "__main__":
    sys.exit(main())
