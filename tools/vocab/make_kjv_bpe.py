#!/usr/bin/env python3
"""Trains the byte-level BPE vocabulary of the shipped models on the bundled
corpus's training text and writes it as models/kjv-bpe/vocab.json +
merges.txt (the files a RoBERTa tokenizer reads; td_tokenizer_load_hf).

The corpus split is made on tokens (docs/corpus.md), so it is not known
before the vocabulary is. The vocabulary is learnt from the same split made
on bytes: blocks of 8,192 bytes, every 20th left out. Needs the Python
package `tokenizers`:  python3 tools/vocab/make_kjv_bpe.py [--vocab 4096]
"""
import argparse
import gzip
import os

from tokenizers import ByteLevelBPETokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "kjv-bpe"))
    args = ap.parse_args()
    with gzip.open(os.path.join(ROOT, "data", "kjv.txt.gz"), "rb") as f:
        data = f.read()
    block, every = 8192, 20
    train = b"".join(data[i:i + block] for i in range(0, len(data), block)
                     if (i // block) % every != every - 1)
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator([train.decode("ascii")], vocab_size=args.vocab, min_frequency=2,
                            special_tokens=SPECIALS, show_progress=False)
    os.makedirs(args.out, exist_ok=True)
    tok.save_model(args.out)
    n = len(tok.encode(data.decode("ascii")).ids)
    print(f"{args.out}: {tok.get_vocab_size()} tokens; the corpus is {n} tokens, "
          f"{len(data) / n:.3f} bytes per token")


if __name__ == "__main__":
    main()
