"""Shared helpers of the binding's tests: paths and tiny objects."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)  # bindings/python
SOURCE_DIR = os.environ.get("TEXTDIFF_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(PACKAGE_ROOT)))
HEADER = os.path.join(SOURCE_DIR, "include", "textdiff", "textdiff.h")
LAYOUT_HELPER = os.environ.get("TEXTDIFF_LAYOUT_HELPER")

if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

import textdiff as td  # noqa: E402

TEXT = "\n".join([
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And the Spirit of God moved upon the face of the waters.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good: and God divided the light from the darkness.",
]) + "\n"

T = 16  # sequence length of the tiny models


def tiny_model(tokenizer=None, seed=1, **config):
    """A model small enough to train in milliseconds."""
    cfg = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=T)
    cfg.update(config)
    return td.Model(seed=seed, tokenizer=tokenizer, **cfg)


def corpus(tokenizer=None, repeat=40):
    """The few lines of TEXT, repeated, as a corpus."""
    return td.Corpus.from_text(TEXT * repeat, tokenizer or td.Tokenizer.byte())
