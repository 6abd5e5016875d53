#!/work/venv/bin/python
"""Hugging Face model directories with their tokenizers, for `sample --hf`,
`train_diffusion --init DIR` and `--export-hf` (docs/bert-is-a-sampler.md).

    /work/venv/bin/python tools/reference/make_hf_lm.py
        writes tests/golden/hf-lm/bert and tests/golden/hf-lm/roberta: a small
        uncased WordPiece (BERT) and byte-level BPE (RoBERTa) vocabulary trained
        on the bundled corpus, saved as transformers saves them
        (tokenizer.json, tokenizer_config.json, special_tokens_map.json, ...),
        next to a tiny randomly initialised BertForMaskedLM /
        RobertaForMaskedLM of that vocabulary size (save_pretrained).

    /work/venv/bin/python tools/reference/make_hf_lm.py --check-export DIR [--like ORIG]
        loads DIR (an --export-hf output) with transformers' AutoTokenizer and
        AutoModelForMaskedLM, runs one framed sentence and prints the predicted
        tokens at the masked positions; with --like ORIG also the largest
        difference between the logits of DIR's and ORIG's models.

    /work/venv/bin/python tools/reference/make_hf_lm.py --base OUT
        writes OUT/bert-base and OUT/roberta-base: randomly initialised models
        of bert-base-uncased's and roberta-base's shapes (no download; no
        tokenizer), for bench/hf_bench.c.
"""

import argparse
import gzip
import os
import sys

import torch
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
from tokenizers.processors import BertProcessing, RobertaProcessing
from transformers import (AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM,
                          PreTrainedTokenizerFast, RobertaConfig, RobertaForMaskedLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "hf-lm")
D, L, H, FF, P = 24, 2, 3, 40, 64


def tiny():
    with gzip.open(os.path.join(ROOT, "data", "kjv.txt.gz"), "rb") as f:
        corpus = f.read(400_000).decode("utf-8", errors="replace")
    torch.manual_seed(0)

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator([corpus], vocab_size=300, min_frequency=2,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                           show_progress=False)
    wp._tokenizer.post_processor = BertProcessing(("[SEP]", wp.token_to_id("[SEP]")),
                                                  ("[CLS]", wp.token_to_id("[CLS]")))
    fast = PreTrainedTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", do_lower_case=True)
    d = os.path.join(OUT, "bert")
    fast.save_pretrained(d)
    cfg = BertConfig(vocab_size=len(fast), hidden_size=D, num_hidden_layers=L,
                     num_attention_heads=H, intermediate_size=FF, max_position_embeddings=P,
                     pad_token_id=fast.pad_token_id)
    BertForMaskedLM(cfg).save_pretrained(d)

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator([corpus], vocab_size=400, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    d = os.path.join(OUT, "roberta")
    fast.save_pretrained(d)
    cfg = RobertaConfig(vocab_size=len(fast), hidden_size=D, num_hidden_layers=L,
                        num_attention_heads=H, intermediate_size=FF,
                        max_position_embeddings=P + 2, type_vocab_size=1, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2)
    RobertaForMaskedLM(cfg).save_pretrained(d)
    print("wrote", os.path.join(OUT, "bert"), "and", d)


def check_export(path, like):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    enc = tok("In the beginning God created the heaven", return_tensors="pt")
    ids = enc["input_ids"].clone()
    assert ids[0, 0] == tok.cls_token_id and ids[0, -1] == tok.sep_token_id, "not framed"
    ids[0, 2:4] = tok.mask_token_id
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=enc["attention_mask"]).logits
    pred = logits[0, 2:4].argmax(-1).tolist()
    print(f"transformers loads {path}: {type(model).__name__}, {type(tok).__name__} "
          f"(vocab {len(tok)}), framed ids {ids[0].tolist()}, "
          f"predicted at the masks: {tok.convert_ids_to_tokens(pred)}")
    if like:
        orig = AutoModelForMaskedLM.from_pretrained(like).eval()
        with torch.no_grad():
            lo = orig(input_ids=ids, attention_mask=enc["attention_mask"]).logits
        print(f"largest logit difference from {like}: {(lo - logits).abs().max().item():.4g}")


def base(out):
    torch.manual_seed(0)
    bert = BertConfig()  # bert-base-uncased: V 30,522, d 768, 12 layers, 512 positions
    BertForMaskedLM(bert).save_pretrained(os.path.join(out, "bert-base"))
    roberta = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            layer_norm_eps=1e-5)  # roberta-base
    RobertaForMaskedLM(roberta).save_pretrained(os.path.join(out, "roberta-base"))
    print("wrote", os.path.join(out, "bert-base"), "and", os.path.join(out, "roberta-base"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-export")
    ap.add_argument("--like")
    ap.add_argument("--base")
    a = ap.parse_args()
    if a.check_export:
        check_export(a.check_export, a.like)
    elif a.base:
        base(a.base)
    else:
        tiny()


if __name__ == "__main__":
    sys.exit(main())
