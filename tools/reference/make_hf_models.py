#!/work/venv/bin/python
"""Tiny Hugging Face masked language models and their reference outputs.

Creates small, randomly initialised BertForMaskedLM, RobertaForMaskedLM and
DistilBertForMaskedLM models with the `transformers` package, saves each with
save_pretrained() into tests/golden/hf/<name>/ (config.json +
model.safetensors), and writes tests/golden/hf/<name>.tdgv (the TDGV format
of tests/golden/README.md) with the logits and the gradients of a weighted
cross-entropy loss for fixed inputs, computed by the transformers model
itself in float64. tests/unit/test_hf.c loads the directories with
td_model_load_hf and compares (docs/hf.md).

    /work/venv/bin/python tools/reference/make_hf_models.py            # (re)write
    /work/venv/bin/python tools/reference/make_hf_models.py --roundtrip build/libtextdiff.so

--roundtrip LIB: for every model, loads the directory with the library (through
the Python binding in bindings/python), exports it with td_model_save_hf into a
temporary directory, loads that with transformers' from_pretrained, and checks
that its logits equal the original model's (and the library's).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM,
                          RobertaConfig, RobertaForMaskedLM)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from make_vectors import pack  # noqa: E402  (the TDGV writer)

OUT = os.path.join(ROOT, "tests", "golden", "hf")
V, D, L, H, FF, P = 99, 24, 2, 3, 40, 20
MASK_ID, PAD_ID = 3, 1
B, T = 2, 7


def configs():
    common = dict(vocab_size=V, num_hidden_layers=L, num_attention_heads=H, hidden_size=D,
                  intermediate_size=FF, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, pad_token_id=PAD_ID)
    return [
        ("bert", BertForMaskedLM,
         BertConfig(max_position_embeddings=P, type_vocab_size=2, hidden_act="gelu", **common),
         torch.float32),
        # the same architecture with the tanh GELU, stored as bfloat16
        ("bert_bf16", BertForMaskedLM,
         BertConfig(max_position_embeddings=P, type_vocab_size=2, hidden_act="gelu_new",
                    layer_norm_eps=1e-6, **common),
         torch.bfloat16),
        ("roberta", RobertaForMaskedLM,
         RobertaConfig(max_position_embeddings=P + PAD_ID + 1, type_vocab_size=1,
                       hidden_act="gelu", layer_norm_eps=1e-5, **common),
         torch.float16),
        ("distilbert", DistilBertForMaskedLM,
         DistilBertConfig(vocab_size=V, n_layers=L, n_heads=H, dim=D, hidden_dim=FF,
                          max_position_embeddings=P, dropout=0.0, attention_dropout=0.0,
                          activation="gelu", pad_token_id=PAD_ID),
         torch.float32),
    ]


def hf_to_lib(kind, model):
    """(library tensor name, HF tensor or list of HF tensors to concatenate) for each
    parameter of the library's model (docs/hf.md, "Tensor names")."""
    p = dict(model.named_parameters())
    out = []
    if kind == "distilbert":
        e, enc = "distilbert.embeddings.", "distilbert.transformer.layer."
        out += [("tok_emb", [e + "word_embeddings.weight"]),
                ("pos_emb", [e + "position_embeddings.weight"])]
        for l in range(L):
            a = f"{enc}{l}."
            out += [(f"{l}.ln1.w", [a + "sa_layer_norm.weight"]),
                    (f"{l}.ln1.b", [a + "sa_layer_norm.bias"]),
                    (f"{l}.qkv.w", [a + f"attention.{x}_lin.weight" for x in "qkv"]),
                    (f"{l}.qkv.b", [a + f"attention.{x}_lin.bias" for x in "qkv"]),
                    (f"{l}.proj.w", [a + "attention.out_lin.weight"]),
                    (f"{l}.proj.b", [a + "attention.out_lin.bias"]),
                    (f"{l}.ln2.w", [a + "output_layer_norm.weight"]),
                    (f"{l}.ln2.b", [a + "output_layer_norm.bias"]),
                    (f"{l}.fc.w", [a + "ffn.lin1.weight"]), (f"{l}.fc.b", [a + "ffn.lin1.bias"]),
                    (f"{l}.fc2.w", [a + "ffn.lin2.weight"]), (f"{l}.fc2.b", [a + "ffn.lin2.bias"])]
        out += [("lnf.w", [e + "LayerNorm.weight"]), ("lnf.b", [e + "LayerNorm.bias"]),
                ("head.w", ["vocab_transform.weight"]), ("head.b", ["vocab_transform.bias"]),
                ("head_ln.w", ["vocab_layer_norm.weight"]),
                ("head_ln.b", ["vocab_layer_norm.bias"]),
                ("out.b", ["vocab_projector.bias"])]
    else:
        base = "bert." if kind.startswith("bert") else "roberta."
        e, enc = base + "embeddings.", base + "encoder.layer."
        out += [("tok_emb", [e + "word_embeddings.weight"]),
                ("pos_emb", [e + "position_embeddings.weight"]),
                ("type_emb", [e + "token_type_embeddings.weight"])]
        for l in range(L):
            a = f"{enc}{l}."
            out += [(f"{l}.ln1.w", [a + "attention.output.LayerNorm.weight"]),
                    (f"{l}.ln1.b", [a + "attention.output.LayerNorm.bias"]),
                    (f"{l}.qkv.w", [a + f"attention.self.{x}.weight"
                                    for x in ("query", "key", "value")]),
                    (f"{l}.qkv.b", [a + f"attention.self.{x}.bias"
                                    for x in ("query", "key", "value")]),
                    (f"{l}.proj.w", [a + "attention.output.dense.weight"]),
                    (f"{l}.proj.b", [a + "attention.output.dense.bias"]),
                    (f"{l}.ln2.w", [a + "output.LayerNorm.weight"]),
                    (f"{l}.ln2.b", [a + "output.LayerNorm.bias"]),
                    (f"{l}.fc.w", [a + "intermediate.dense.weight"]),
                    (f"{l}.fc.b", [a + "intermediate.dense.bias"]),
                    (f"{l}.fc2.w", [a + "output.dense.weight"]),
                    (f"{l}.fc2.b", [a + "output.dense.bias"])]
        out += [("lnf.w", [e + "LayerNorm.weight"]), ("lnf.b", [e + "LayerNorm.bias"])]
        if kind.startswith("bert"):
            h = "cls.predictions."
            out += [("head.w", [h + "transform.dense.weight"]),
                    ("head.b", [h + "transform.dense.bias"]),
                    ("head_ln.w", [h + "transform.LayerNorm.weight"]),
                    ("head_ln.b", [h + "transform.LayerNorm.bias"]),
                    ("out.b", [h + "bias" if h + "bias" in p else h + "decoder.bias"])]
        else:
            out += [("head.w", ["lm_head.dense.weight"]), ("head.b", ["lm_head.dense.bias"]),
                    ("head_ln.w", ["lm_head.layer_norm.weight"]),
                    ("head_ln.b", ["lm_head.layer_norm.bias"]),
                    ("out.b", ["lm_head.bias" if "lm_head.bias" in p else "lm_head.decoder.bias"])]
    return [(name, [p[k] for k in keys]) for name, keys in out]


def inputs(rng):
    ids = rng.randint(5, V, size=(B, T)).astype(np.int64)
    ids[0, 2] = ids[1, 1] = MASK_ID
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, T - 2:] = 0  # sequence 1 is padded at its end
    ids[1, T - 2:] = PAD_ID
    rows = np.array([1, 2, 5, T + 1, T + 3, T + 4], dtype=np.int32)
    targets = rng.randint(5, V, size=rows.shape).astype(np.int32)
    weights = (0.5 + rng.rand(*rows.shape)).astype(np.float32)
    return ids, mask, rows, targets, weights


def run(model, ids, mask, rows, targets, weights):
    """Logits of every position, and the loss of docs/hf.md: Σ w·CE over `rows`
    with the [MASK] logit at −∞ (the library never predicts [MASK])."""
    model.zero_grad()
    logits = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    flat = logits.reshape(B * T, V)[torch.tensor(rows, dtype=torch.long)]
    flat = flat.masked_fill(torch.arange(V) == MASK_ID, float("-inf"))
    ce = torch.nn.functional.cross_entropy(flat, torch.tensor(targets, dtype=torch.long),
                                           reduction="none")
    loss = (ce * torch.tensor(weights, dtype=ce.dtype)).sum()
    loss.backward()
    return logits.detach(), loss.detach()


def build(name, cls, cfg, dtype, seed):
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    with torch.no_grad():  # away from the initialisation, so that every term matters
        for pname, prm in model.named_parameters():
            if "LayerNorm" in pname or "layer_norm" in pname:
                prm.copy_((1.0 if pname.endswith("weight") else 0.0) +
                          0.1 * torch.randn_like(prm))
            elif pname.endswith("bias"):
                prm.copy_(0.1 * torch.randn_like(prm))
            else:
                prm.copy_(0.2 * torch.randn_like(prm))
        # the stored weights are what both sides use: round them to the file's dtype
        for prm in model.parameters():
            prm.copy_(prm.to(dtype).to(torch.float32))
    path = os.path.join(OUT, name)
    model.to(dtype).save_pretrained(path, safe_serialization=True)
    model.to(torch.float64)

    rng = np.random.RandomState(seed)
    ids, mask, rows, targets, weights = inputs(rng)
    logits, loss = run(model, ids, mask, rows, targets, weights)
    arrays = [("mask_id", np.array([MASK_ID], np.int32)),
              ("ids", ids.astype(np.int32)), ("key_mask", mask.astype(np.int32)),
              ("logits", logits.numpy().reshape(B * T, V)),
              ("rows", rows), ("targets", targets), ("row_weights", weights),
              ("loss", np.array([loss.item()]))]
    kind = name.split("_")[0]
    for lib_name, prms in hf_to_lib(kind, model):
        g = torch.cat([q.grad if q.grad is not None else torch.zeros_like(q) for q in prms])
        arrays.append(("grad." + lib_name, g.numpy().astype(np.float32)))
    with open(os.path.join(OUT, name + ".tdgv"), "wb") as f:
        f.write(pack(arrays))
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"{name}: {cls.__name__}, stored as {str(dtype)[6:]}, {size} bytes; "
          f"loss {loss.item():.6f}")
    return model, (ids, mask)


def roundtrip(lib, name, model, ids, mask):
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    os.environ["TEXTDIFF_LIBRARY"] = os.path.abspath(lib)
    import textdiff
    m = textdiff.Model.load_hf(os.path.join(OUT, name), mask_id=MASK_ID)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "export")
        m.save_hf(out)
        cfg = json.load(open(os.path.join(out, "config.json")))
        back = type(model).from_pretrained(out).eval().to(torch.float64)
        with torch.no_grad():
            ref = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
            got = back(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    # td_model_logits takes no key mask: each sequence alone, its padding cut off
    keep = np.ones(V, bool)
    keep[MASK_ID] = False
    valid = mask.astype(bool)
    err_lib = 0.0
    for b in range(B):
        n = int(mask[b].sum())
        lib_logits = m.logits(np.ascontiguousarray(ids[b, :n], dtype=np.int32))
        err_lib = max(err_lib, np.abs(lib_logits.astype(np.float64)
                                      - got[b, :n].numpy())[:, keep].max())
    err_hf = (got - ref).abs()[torch.tensor(valid)].max().item()
    scale = ref.abs().max().item()
    print(f"round trip {name}: model_type {cfg['model_type']}, transformers reloads the export; "
          f"logits differ from the original by {err_hf:.3g}, from the library's by "
          f"{err_lib:.3g} (largest logit {scale:.3g})")
    assert err_hf <= 1e-4 * scale and err_lib <= 1e-4 * scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roundtrip", metavar="LIB", help="the built libtextdiff.so")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for i, (name, cls, cfg, dtype) in enumerate(configs()):
        model, (ids, mask) = build(name, cls, cfg, dtype, 1000 + i)
        if args.roundtrip:
            roundtrip(args.roundtrip, name, model, ids, mask)


if __name__ == "__main__":
    main()
