#!/usr/bin/python3
"""Reference vectors for the transformer encoder of docs/model.md.

Builds small models with fixed, deliberately non-trivial weights and fixed
inputs, runs them in plain PyTorch in float64 (the reference) and in float32
(to measure how far an honest float32 implementation lands from it), and
writes one TDGV file per case into tests/golden/ (format: tests/golden/README.md).

    /usr/bin/python3 tools/reference/make_vectors.py            # (re)write the files
    /usr/bin/python3 tools/reference/make_vectors.py --check    # compare with them

The model is written out here operation by operation from docs/model.md; no
torch.nn module with its own semantics is used. Before anything is written the
script checks itself: the float64 forward against a second, loop-by-loop NumPy
implementation, each building block against torch's own version, RoPE against
its complex-number form, the key-padding mask against a changed padding, and
every autograd gradient against central finite differences.
"""

import argparse
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch

FORMAT_VERSION = 1
DTYPE_F32, DTYPE_F64, DTYPE_I32 = 1, 2, 3
LN_EPS = 1e-5
ROPE_BASE = 10000.0

# Field names and order of tdi_model_config; stored as "config.<field>".
CONFIG_FIELDS = ("vocab_size", "mask_id", "max_seq_len", "d_model", "n_layers",
                 "n_heads", "d_ff", "pos_encoding", "norm_placement", "tie_embeddings")
POS_ROPE, POS_LEARNED = 0, 1
NORM_PRE, NORM_POST = 0, 1

SMALL = dict(vocab_size=20, mask_id=18, max_seq_len=8, d_model=16, n_layers=2,
             n_heads=2, d_ff=24)
PAD_ID = 19
B, T = 2, 7


def case(name, seed, pos, norm, tied, padded, causal=False):
    """causal: the model's causal mode (attention sees no later position) and
    its next-token objective: the input is the clean batch shifted right
    behind [MASK], every position is scored with weight 1/(T*B)."""
    cfg = dict(SMALL, pos_encoding=pos, norm_placement=norm, tie_embeddings=tied)
    if causal:
        cfg["causal"] = 1
    return dict(name=name, seed=seed, cfg=cfg, padded=padded)


# Each option value appears in two cases, and each case changes several, so a
# mistake in any one path shows up in at least two files.
CASES = (
    case("rope_pre_tied", 1001, POS_ROPE, NORM_PRE, 1, False),
    case("learned_post_untied", 1002, POS_LEARNED, NORM_POST, 0, False),
    case("rope_post_tied_keymask", 1003, POS_ROPE, NORM_POST, 1, True),
    case("learned_pre_untied_keymask", 1004, POS_LEARNED, NORM_PRE, 0, True),
    case("rope_pre_tied_causal", 1005, POS_ROPE, NORM_PRE, 1, False, causal=True),
    case("learned_post_untied_causal", 1006, POS_LEARNED, NORM_POST, 0, False, causal=True),
)


# --- parameters ---------------------------------------------------------------

def param_shapes(cfg):
    """(name, shape) in the order of docs/model.md, i.e. the buffer layout."""
    V, d, f = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"]
    out = [("tok_emb", (V, d))]
    if cfg["pos_encoding"] == POS_LEARNED:
        out.append(("pos_emb", (cfg["max_seq_len"], d)))
    for l in range(cfg["n_layers"]):
        out += [(f"{l}.ln1.w", (d,)), (f"{l}.ln1.b", (d,)),
                (f"{l}.qkv.w", (3 * d, d)), (f"{l}.qkv.b", (3 * d,)),
                (f"{l}.proj.w", (d, d)), (f"{l}.proj.b", (d,)),
                (f"{l}.ln2.w", (d,)), (f"{l}.ln2.b", (d,)),
                (f"{l}.fc.w", (f, d)), (f"{l}.fc.b", (f,)),
                (f"{l}.fc2.w", (d, f)), (f"{l}.fc2.b", (d,))]
    out += [("lnf.w", (d,)), ("lnf.b", (d,))]
    if not cfg["tie_embeddings"]:
        out.append(("out.w", (V, d)))
    out.append(("out.b", (V,)))
    return out


def make_params(cfg, rng):
    """Float32 values far from the library's init, so that no term vanishes:
    weights N(0, 0.2^2), LayerNorm gains 1 + N(0, 0.1^2), biases N(0, 0.1^2)."""
    params = {}
    for name, shape in param_shapes(cfg):
        if name.endswith((".ln1.w", ".ln2.w")) or name == "lnf.w":
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".b"):
            x = 0.1 * rng.standard_normal(shape)
        else:
            x = 0.2 * rng.standard_normal(shape)
        params[name] = x.astype(np.float32)
    return params


def make_inputs(c, rng):
    """ids [B,T], key_mask [B,T] (1 = attend), the masked rows (flat indices
    into B*T), their clean targets and their loss weights w(t)/L (linear
    schedule, w(t) = 1/t, L = the sequence's unpadded length)."""
    cfg = c["cfg"]
    n_plain = cfg["mask_id"]  # ids 0 .. mask_id-1 are ordinary tokens
    clean = rng.randint(0, n_plain, size=(B, T)).astype(np.int32)
    key_mask = np.ones((B, T), np.int32)
    if cfg.get("causal"):
        ids = np.full((B, T), cfg["mask_id"], np.int32)
        ids[:, 1:] = clean[:, :-1]
        return (ids, key_mask, np.arange(B * T, dtype=np.int32), clean.reshape(-1),
                np.full(B * T, 1.0 / (T * B), np.float32))
    if c["padded"]:
        key_mask[1, 5:] = 0
    masked = np.zeros((B, T), bool)
    masked[0, [1, 4, 5]] = True
    masked[1, [0, 2, 3] if c["padded"] else [0, 2, 3, 6]] = True
    t_seq = (0.45, 0.8)
    ids = np.where(masked, cfg["mask_id"], clean).astype(np.int32)
    ids[key_mask == 0] = PAD_ID
    rows, targets, weights = [], [], []
    for b in range(B):
        length = int(key_mask[b].sum())
        for i in range(T):
            if masked[b, i]:
                rows.append(b * T + i)
                targets.append(clean[b, i])
                weights.append((1.0 / t_seq[b]) / length)
    return (ids, key_mask, np.array(rows, np.int32), np.array(targets, np.int32),
            np.array(weights, np.float32))


# --- the model in torch ---------------------------------------------------------

def layer_norm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased
    return (x - mean) / torch.sqrt(var + LN_EPS) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope_tables(T_, hd, dtype):
    """cos, sin [T, hd/2] of p * theta_i, computed in float64 then rounded."""
    i = np.arange(hd // 2, dtype=np.float64)
    theta = ROPE_BASE ** (-2.0 * i / hd)
    ang = np.arange(T_, dtype=np.float64)[:, None] * theta[None, :]
    return torch.tensor(np.cos(ang), dtype=dtype), torch.tensor(np.sin(ang), dtype=dtype)


def rope(x, cos, sin):
    """x [B,H,T,hd]: pairs (x_i, x_{i+hd/2}) rotated by p * theta_i."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attention(x, P, l, cfg, key_mask, tables):
    Bx, Tx, d = x.shape
    H = cfg["n_heads"]
    hd = d // H
    qkv = x @ P[f"{l}.qkv.w"].T + P[f"{l}.qkv.b"]  # [B,T,3d]
    q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(Bx, Tx, H, hd).transpose(1, 2)
               for j in range(3))  # each [B,H,T,hd]
    if cfg["pos_encoding"] == POS_ROPE:
        q, k = rope(q, *tables), rope(k, *tables)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B,H,T,T]
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    if cfg.get("causal"):
        later = torch.ones(Tx, Tx, dtype=torch.bool).triu(1)  # key j > query i
        scores = scores.masked_fill(later, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(Bx, Tx, d)
    return out @ P[f"{l}.proj.w"].T + P[f"{l}.proj.b"]


def mlp(x, P, l):
    return gelu_tanh(x @ P[f"{l}.fc.w"].T + P[f"{l}.fc.b"]) @ P[f"{l}.fc2.w"].T + P[f"{l}.fc2.b"]


def forward(P, cfg, ids, key_mask):
    """Returns (hidden [B*T, d], logits [B*T, V]) in the dtype of P."""
    dtype = P["tok_emb"].dtype
    Bx, Tx = ids.shape
    d = cfg["d_model"]
    km = torch.tensor(key_mask != 0)
    tables = rope_tables(Tx, d // cfg["n_heads"], dtype)
    h = P["tok_emb"][torch.tensor(ids, dtype=torch.long)]
    if cfg["pos_encoding"] == POS_LEARNED:
        h = h + P["pos_emb"][:Tx]
    post = cfg["norm_placement"] == NORM_POST
    if post:
        h = layer_norm(h, P["lnf.w"], P["lnf.b"])
    for l in range(cfg["n_layers"]):
        if post:
            h = layer_norm(h + attention(h, P, l, cfg, km, tables), P[f"{l}.ln1.w"], P[f"{l}.ln1.b"])
            h = layer_norm(h + mlp(h, P, l), P[f"{l}.ln2.w"], P[f"{l}.ln2.b"])
        else:
            a = layer_norm(h, P[f"{l}.ln1.w"], P[f"{l}.ln1.b"])
            h = h + attention(a, P, l, cfg, km, tables)
            m = layer_norm(h, P[f"{l}.ln2.w"], P[f"{l}.ln2.b"])
            h = h + mlp(m, P, l)
    if not post:
        h = layer_norm(h, P["lnf.w"], P["lnf.b"])
    hidden = h.reshape(Bx * Tx, d)
    E = P["tok_emb"] if cfg["tie_embeddings"] else P["out.w"]
    logits = hidden @ E.T + P["out.b"]
    is_mask = torch.zeros(cfg["vocab_size"], dtype=torch.bool)
    is_mask[cfg["mask_id"]] = True
    return hidden, logits.masked_fill(is_mask, float("-inf"))


def weighted_ce(logits, rows, targets, weights):
    sel = logits[torch.tensor(rows, dtype=torch.long)]
    logp = sel - torch.logsumexp(sel, dim=-1, keepdim=True)
    nll = -logp[torch.arange(len(rows)), torch.tensor(targets, dtype=torch.long)]
    return (torch.tensor(weights, dtype=logits.dtype) * nll).sum()


def run(params, cfg, ids, key_mask, rows, targets, weights, dtype):
    P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    hidden, logits = forward(P, cfg, ids, key_mask)
    loss = weighted_ce(logits, rows, targets, weights)
    loss.backward()
    grads = {k: P[k].grad.detach().numpy().copy() for k in params}
    return dict(hidden=hidden.detach().numpy(), logits=logits.detach().numpy(),
                loss=float(loss), grads=grads)


# --- self-checks ------------------------------------------------------------------

def numpy_forward(params, cfg, ids, key_mask):
    """docs/model.md again, position by position and head by head, float64."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    V, d, H = cfg["vocab_size"], cfg["d_model"], cfg["n_heads"]
    hd = d // H
    post = cfg["norm_placement"] == NORM_POST

    def ln(x, name):
        mu = x.mean()
        return (x - mu) / math.sqrt(((x - mu) ** 2).mean() + LN_EPS) * p[name + ".w"] + p[name + ".b"]

    def rot(vec, pos):
        r = vec.copy()
        for i in range(hd // 2):
            th = pos * ROPE_BASE ** (-2.0 * i / hd)
            a, b_ = vec[i], vec[i + hd // 2]
            r[i] = a * math.cos(th) - b_ * math.sin(th)
            r[i + hd // 2] = b_ * math.cos(th) + a * math.sin(th)
        return r

    def attn(xs, l, b):
        Tx = len(xs)
        qkv = [p[f"{l}.qkv.w"] @ x + p[f"{l}.qkv.b"] for x in xs]
        out = []
        for i in range(Tx):
            cat = []
            for hh in range(H):
                sl = slice(hh * hd, (hh + 1) * hd)
                q = qkv[i][:d][sl]
                if cfg["pos_encoding"] == POS_ROPE:
                    q = rot(q, i)
                s = np.full(Tx, -np.inf)
                for j in range(Tx):
                    if key_mask[b, j] and (j <= i or not cfg.get("causal")):
                        k = qkv[j][d:2 * d][sl]
                        if cfg["pos_encoding"] == POS_ROPE:
                            k = rot(k, j)
                        s[j] = q @ k / math.sqrt(hd)
                w = np.exp(s - s.max())
                w /= w.sum()
                cat.append(sum(w[j] * qkv[j][2 * d:][sl] for j in range(Tx)))
            out.append(p[f"{l}.proj.w"] @ np.concatenate(cat) + p[f"{l}.proj.b"])
        return out

    def mlp_(x, l):
        u = p[f"{l}.fc.w"] @ x + p[f"{l}.fc.b"]
        g = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
        return p[f"{l}.fc2.w"] @ g + p[f"{l}.fc2.b"]

    E = p["tok_emb"] if cfg["tie_embeddings"] else p["out.w"]
    logits = []
    for b in range(ids.shape[0]):
        hs = [p["tok_emb"][ids[b, i]] + (p["pos_emb"][i] if "pos_emb" in p else 0)
              for i in range(ids.shape[1])]
        if post:
            hs = [ln(h, "lnf") for h in hs]
        for l in range(cfg["n_layers"]):
            if post:
                a = attn(hs, l, b)
                hs = [ln(h + ai, f"{l}.ln1") for h, ai in zip(hs, a)]
                hs = [ln(h + mlp_(h, l), f"{l}.ln2") for h in hs]
            else:
                a = attn([ln(h, f"{l}.ln1") for h in hs], l, b)
                hs = [h + ai for h, ai in zip(hs, a)]
                hs = [h + mlp_(ln(h, f"{l}.ln2"), l) for h in hs]
        if not post:
            hs = [ln(h, "lnf") for h in hs]
        for h in hs:
            z = E @ h + p["out.b"]
            z[cfg["mask_id"]] = -np.inf
            logits.append(z)
    return np.array(logits).reshape(-1, V)


def check_blocks():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 16, generator=g, dtype=torch.float64)
    w = 1 + 0.1 * torch.randn(16, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(16, generator=g, dtype=torch.float64)
    assert torch.allclose(layer_norm(x, w, b), torch.nn.functional.layer_norm(x, (16,), w, b, LN_EPS),
                          rtol=0, atol=1e-13)
    assert torch.allclose(gelu_tanh(3 * x), torch.nn.functional.gelu(3 * x, approximate="tanh"),
                          rtol=0, atol=1e-13)
    # RoPE rotate-half == multiplying (x_i + j x_{i+hd/2}) by exp(j p theta_i).
    hd, Tx = 8, 6
    q = torch.randn(1, 1, Tx, hd, generator=g, dtype=torch.float64)
    z = torch.complex(q[..., :hd // 2], q[..., hd // 2:])
    theta = ROPE_BASE ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
    z = z * torch.polar(torch.ones(Tx, hd // 2, dtype=torch.float64),
                        torch.arange(Tx, dtype=torch.float64)[:, None] * theta)
    assert torch.allclose(rope(q, *rope_tables(Tx, hd, torch.float64)),
                          torch.cat((z.real, z.imag), dim=-1), rtol=0, atol=1e-13)


def check_padding(params, cfg, ids, key_mask):
    """Padded keys must not influence anything: change their ids, compare."""
    other = ids.copy()
    other[key_mask == 0] = 3
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    a = forward(P, cfg, ids, key_mask)[1].numpy()
    b = forward(P, cfg, other, key_mask)[1].numpy()
    keep = (key_mask != 0).reshape(-1)
    assert np.array_equal(a[keep], b[keep]), "padded keys leak"
    assert not np.array_equal(a[~keep], b[~keep])


def check_causal(params, cfg, ids, key_mask):
    """Changing the token at position k changes no logit before k."""
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    for k in range(1, ids.shape[1]):
        other = ids.copy()
        other[:, k] = (other[:, k] + 1) % cfg["mask_id"]
        a = forward(P, cfg, ids, key_mask)[1].numpy().reshape(ids.shape[0], ids.shape[1], -1)
        b = forward(P, cfg, other, key_mask)[1].numpy().reshape(ids.shape[0], ids.shape[1], -1)
        assert np.array_equal(a[:, :k], b[:, :k]), "a later token changed an earlier logit"
        assert not np.array_equal(a[:, k:], b[:, k:])


def check_grads(params, cfg, ids, key_mask, rows, targets, weights, grads):
    """Central differences along a random direction per tensor, float64."""
    rng = np.random.RandomState(99)
    P0 = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}

    def loss_at(name, direction, eps):
        P = dict(P0)
        P[name] = P0[name] + eps * torch.tensor(direction)
        return float(weighted_ce(forward(P, cfg, ids, key_mask)[1], rows, targets, weights))

    worst = 0.0
    for name, g in grads.items():
        u = rng.standard_normal(g.shape)
        eps = 1e-5
        fd = (loss_at(name, u, eps) - loss_at(name, u, -eps)) / (2 * eps)
        an = float((g * u).sum())
        err = abs(fd - an) / max(abs(an), 1e-6)
        worst = max(worst, err)
        assert err < 1e-6, f"gradient of {name}: autograd {an} vs differences {fd}"
    return worst


# --- the file format ----------------------------------------------------------------

def pack(arrays):
    """arrays: list of (name, ndarray); dtype from the array (f32/f64/i32)."""
    codes = {np.dtype(np.float32): (DTYPE_F32, "<f4"), np.dtype(np.float64): (DTYPE_F64, "<f8"),
             np.dtype(np.int32): (DTYPE_I32, "<i4")}
    out = bytearray(b"TDGV" + struct.pack("<II", FORMAT_VERSION, len(arrays)))
    seen = set()
    for name, a in arrays:
        a = np.asarray(a)
        assert name not in seen and 0 < len(name) <= 63, name
        seen.add(name)
        code, le = codes[a.dtype]
        nb = name.encode("ascii")
        out += struct.pack("<I", len(nb)) + nb
        out += struct.pack("<II", code, a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        out += np.ascontiguousarray(a, dtype=le).tobytes()
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


def unpack(data):
    assert data[:4] == b"TDGV" and zlib.crc32(data[:-4]) & 0xFFFFFFFF == struct.unpack("<I", data[-4:])[0]
    version, n = struct.unpack_from("<II", data, 4)
    assert version == FORMAT_VERSION
    pos, out = 12, {}
    le = {DTYPE_F32: "<f4", DTYPE_F64: "<f8", DTYPE_I32: "<i4"}
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + ln].decode("ascii")
        pos += 4 + ln
        code, ndim = struct.unpack_from("<II", data, pos)
        dims = struct.unpack_from(f"<{ndim}I", data, pos + 8)
        pos += 8 + 4 * ndim
        a = np.frombuffer(data, dtype=le[code], count=int(np.prod(dims)), offset=pos).reshape(dims)
        pos += a.nbytes
        out[name] = a
    assert pos == len(data) - 4
    return out


# --- one case -------------------------------------------------------------------------

def build(c):
    cfg = c["cfg"]
    rng = np.random.RandomState(c["seed"])
    params = make_params(cfg, rng)
    ids, key_mask, rows, targets, weights = make_inputs(c, rng)
    ref = run(params, cfg, ids, key_mask, rows, targets, weights, torch.float64)
    f32 = run(params, cfg, ids, key_mask, rows, targets, weights, torch.float32)

    loops = numpy_forward(params, cfg, ids, key_mask)
    fin = np.isfinite(ref["logits"])
    assert np.array_equal(fin, np.isfinite(loops))
    assert np.abs(ref["logits"][fin] - loops[fin]).max() < 1e-12, "torch and loop forward differ"
    if c["padded"]:
        check_padding(params, cfg, ids, key_mask)
    if cfg.get("causal"):
        check_causal(params, cfg, ids, key_mask)
    fd_worst = check_grads(params, cfg, ids, key_mask, rows, targets, weights, ref["grads"])

    # dlogits = w * (softmax - onehot) on the selected rows, from the reference.
    sel = ref["logits"][rows]
    prob = np.exp(sel - sel.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(rows)), targets] -= 1.0
    dlogits = weights.astype(np.float64)[:, None] * prob

    arrays = [(f"config.{k}", np.array([cfg[k]], np.int32)) for k in CONFIG_FIELDS]
    if cfg.get("causal"):  # only in the causal files: the others stay as they were
        arrays.append(("config.causal", np.array([1], np.int32)))
    arrays += [("pad_id", np.array([PAD_ID], np.int32)),
               ("batch", np.array([B], np.int32)), ("seq_len", np.array([T], np.int32))]
    arrays += [(name, params[name]) for name, _ in param_shapes(cfg)]
    arrays += [("ids", ids), ("key_mask", key_mask), ("rows", rows), ("targets", targets),
               ("row_weights", weights),
               ("hidden", ref["hidden"]), ("logits", ref["logits"]),
               ("logits_f32", f32["logits"].astype(np.float32)),
               ("loss", np.array([ref["loss"]], np.float64)),
               ("loss_f32", np.array([f32["loss"]], np.float32)),
               ("dlogits", dlogits)]
    arrays += [(f"grad.{name}", ref["grads"][name]) for name, _ in param_shapes(cfg)]
    arrays += [(f"grad_f32.{name}", f32["grads"][name].astype(np.float32))
               for name, _ in param_shapes(cfg)]
    return arrays, ref, f32, fd_worst


def noise(ref, f32):
    """How far float32 lands from float64: logits (abs), loss (rel), grads
    (max abs error over the tensor's max abs value, worst tensor)."""
    fin = np.isfinite(ref["logits"])
    lg = np.abs(ref["logits"][fin] - f32["logits"][fin]).max()
    ls = abs(ref["loss"] - f32["loss"]) / abs(ref["loss"])
    gr = max(np.abs(ref["grads"][k] - f32["grads"][k]).max() / max(np.abs(ref["grads"][k]).max(), 1e-30)
             for k in ref["grads"])
    return lg, ls, gr


def compare(name, old, new):
    """--check: bit-equal inputs, float64 results to 1e-10, float32 ones loosely."""
    assert list(old) == [n for n, _ in new], f"{name}: array list differs"
    for key, a in new:
        b = old[key]
        assert a.dtype == b.dtype and a.shape == b.shape, f"{name}: {key} dtype/shape"
        fin = np.isfinite(a)
        assert np.array_equal(fin, np.isfinite(b)) and np.array_equal(a[~fin], b[~fin]), key
        if a.dtype == np.int32 or not (key.startswith(("grad", "logits", "loss", "hidden", "dlogits"))):
            assert np.array_equal(a, b), f"{name}: {key} differs"
        else:
            tol = 1e-10 if a.dtype == np.float64 else 1e-4
            scale = max(np.abs(a[fin]).max(), 1e-30)
            assert np.abs(a[fin] - b[fin]).max() <= tol * scale, f"{name}: {key} differs"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "golden"))
    ap.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = ap.parse_args()
    if not __debug__:
        sys.exit("make_vectors.py: run without -O; its self-checks are assertions")
    torch.set_num_threads(1)
    check_blocks()
    for c in CASES:
        arrays, ref, f32, fd_worst = build(c)
        data = pack(arrays)
        path = os.path.join(args.out, c["name"] + ".tdgv")
        lg, ls, gr = noise(ref, f32)
        if args.check:
            with open(path, "rb") as fh:
                compare(c["name"], unpack(fh.read()), arrays)
            status = "matches"
        else:
            assert unpack(data).keys() == dict(arrays).keys()
            tmp = path + ".tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            status = "written"
        print(f"{c['name']:28s} {status}: {len(data)} bytes, loss {ref['loss']:.6f}, "
              f"float32 noise: logits {lg:.1e} abs, loss {ls:.1e} rel, grads {gr:.1e} "
              f"of max; autograd vs differences {fd_worst:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
