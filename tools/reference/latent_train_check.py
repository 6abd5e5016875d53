"""Does the latent autoencoder of docs/latent-diffusion.md learn? A PyTorch
version of the same modules (float32, AdamW, clipping at 1, linear warm-up),
trained on windows of the corpus with fixed random byte features standing in
for the frozen encoder's (each byte a unit-variance vector of width 256).
It separates design from implementation: the C model and this one should
succeed or fail together.

    /work/venv/bin/python tools/reference/latent_train_check.py \
        [--variant patch|none|mean|bias] [--single] [--L 64 --N 16 --d 64 --steps 300]

--variant: patch (the library's chunk paths), none (queries only: the
latents of a sequence collapse to one vector), mean (chunk means instead of
patches: order inside a chunk is lost), bias (no chunk paths, an ALiBi-style
locality bias on both attentions). --single trains on one batch of 8
windows (memorisation); otherwise each step draws a fresh batch. Prints the
cross-entropy, the batch accuracy and the mean squared difference between
the latents of one sequence.
"""
import argparse
import gzip
import math
import os

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--variant", default="patch", choices=["patch", "none", "mean", "bias"])
ap.add_argument("--single", action="store_true")
ap.add_argument("--L", type=int, default=64)
ap.add_argument("--N", type=int, default=16)
ap.add_argument("--d", type=int, default=64)
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--lr", type=float, default=1e-3)
args = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
L, N, D, H, NE, ND, DE, V, B = args.L, args.N, args.d, 4, 2, 2, 256, 257, 8
FF, W, var = 4 * D, -(-args.L // args.N), args.variant
root = os.path.join(os.path.dirname(__file__), "..", "..")
text = torch.tensor(list(gzip.open(os.path.join(root, "data", "kjv.txt.gz")).read()[:2000000]))
E = F.layer_norm(torch.randn(256, DE), (DE,))

P = {}


def mk(name, shape, kind, sd=0.02):
    t = torch.ones(shape) if kind == "ln" else torch.zeros(shape) if kind == "b" \
        else sd * torch.randn(shape)
    P[name] = t.requires_grad_(True)


sres = 0.02 / math.sqrt(2 * (NE + ND))


def block_params(s, l, dc):
    p = f"{s}.{l}."
    for n, shape, kind, sd in [("ln1.w", (D,), "ln", 0), ("ln1.b", (D,), "b", 0),
                               ("q.w", (D, D), "w", 0.02), ("q.b", (D,), "b", 0),
                               ("kv.w", (2 * D, dc), "w", 0.02), ("kv.b", (2 * D,), "b", 0),
                               ("o.w", (D, D), "w", sres), ("o.b", (D,), "b", 0),
                               ("ln2.w", (D,), "ln", 0), ("ln2.b", (D,), "b", 0),
                               ("fc.w", (FF, D), "w", 0.02), ("fc.b", (FF,), "b", 0),
                               ("fc2.w", (D, FF), "w", sres), ("fc2.b", (D,), "b", 0)]:
        mk(p + n, shape, kind, sd)


mk("enc.queries", (N, D), "w")
mk("enc.pool.w", (D, W * DE if var == "patch" else DE), "w",
   (W * DE if var == "patch" else DE) ** -0.5)
for l in range(NE):
    block_params("enc", l, DE)
mk("dec.queries", (L, D), "w")
mk("dec.unpool.w", (W * D, D), "w", D ** -0.5)
for l in range(ND):
    block_params("dec", l, D)
mk("dec.lnf.w", (D,), "ln")
mk("dec.lnf.b", (D,), "b")
mk("dec.feat.w", (DE, D), "w")
mk("dec.feat.b", (DE,), "b")
mk("dec.out.w", (V, DE), "w")
mk("dec.out.b", (V,), "b")

chunk = [i * N // L for i in range(L)]
offset = [i - (chunk[i] * L + N - 1) // N for i in range(L)]
sel = torch.zeros(N * W, L)
for i in range(L):
    sel[chunk[i] * W + offset[i], i] = 1.0
mean = torch.zeros(N, L)
mean[chunk, torch.arange(L)] = 1.0
mean = mean / mean.sum(1, keepdim=True)


def locality(enc):
    w = L / N
    c = (torch.arange(N) + 0.5) * w - 0.5
    dist = (torch.arange(L)[None, :] - c[:, None]).abs() / w
    dist = dist if enc else dist.T
    slopes = torch.tensor([4.0 * 2 ** (-2 * h) for h in range(H)])
    return -slopes[:, None, None] * dist[None]


BIAS = {"enc": locality(True), "dec": locality(False)}


def ln(x, w=None, b=None):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def block(pre, x, ctx, nq, lk):
    g = lambda n: P[pre + n]
    h = ln(x, g("ln1.w"), g("ln1.b"))
    q = (h @ g("q.w").T + g("q.b")).view(B, nq, H, D // H).transpose(1, 2)
    kv = ctx @ g("kv.w").T + g("kv.b")
    k = kv[:, :D].reshape(B, lk, H, D // H).transpose(1, 2)
    v = kv[:, D:].reshape(B, lk, H, D // H).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / (D // H) ** 0.5
    if var == "bias":
        s = s + BIAS[pre[:3]]
    att = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B * nq, D)
    res1 = x + att @ g("o.w").T + g("o.b")
    m = F.gelu(ln(res1, g("ln2.w"), g("ln2.b")) @ g("fc.w").T + g("fc.b"), approximate="tanh")
    return res1 + m @ g("fc2.w").T + g("fc2.b")


def sinusoids(rows, cols):
    pos = torch.arange(rows)[:, None].double()
    col = torch.arange(cols)
    ang = pos * torch.exp(-math.log(10000.0) * (2 * (col // 2)).double() / cols)
    return torch.where(col % 2 == 0, torch.sin(ang), torch.cos(ang)).float()


pe = sinusoids(L, DE)


def forward(feat):
    ctx = feat + pe.repeat(B, 1)
    x = P["enc.queries"].repeat(B, 1)
    if var == "patch":
        x = x + (sel[None] @ ctx.view(B, L, DE)).reshape(B * N, W * DE) @ P["enc.pool.w"].T
    elif var == "mean":
        x = x + (mean[None] @ ctx.view(B, L, DE)).reshape(B * N, DE) @ P["enc.pool.w"].T
    for l in range(NE):
        x = block(f"enc.{l}.", x, ctx, N, L)
    lat = ln(x)
    y = P["dec.queries"].repeat(B, 1)
    if var == "patch":
        up = (lat @ P["dec.unpool.w"].T).view(B, N * W, D)
        y = y + (sel.T[None] @ up).reshape(B * L, D)
    elif var == "mean":
        y = y + lat.view(B, N, D)[:, chunk].reshape(B * L, D)
    for l in range(ND):
        y = block(f"dec.{l}.", y, lat, L, N)
    fhat = ln(y, P["dec.lnf.w"], P["dec.lnf.b"]) @ P["dec.feat.w"].T + P["dec.feat.b"]
    return lat, fhat, fhat @ P["dec.out.w"].T + P["dec.out.b"]


opt = torch.optim.AdamW(P.values(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
gen = torch.Generator().manual_seed(1)
starts = torch.randint(0, len(text) - L, (B,), generator=gen)
for step in range(args.steps):
    if not args.single and step > 0:
        starts = torch.randint(0, len(text) - L, (B,), generator=gen)
    tokens = torch.stack([text[i:i + L] for i in starts]).reshape(-1)
    feat = E[tokens]
    lat, fhat, logits = forward(feat)
    ce = F.cross_entropy(logits, tokens)
    loss = ce + ((fhat - feat) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(P.values(), 1.0)
    for g in opt.param_groups:
        g["lr"] = args.lr * min(1.0, (step + 1) / 20)
    opt.step()
    if step % 25 == 0 or step == args.steps - 1:
        acc = (logits.argmax(1) == tokens).float().mean().item()
        lv = lat.detach().view(B, N, D)
        diff = ((lv[:, :, None] - lv[:, None]) ** 2).mean().item()
        print(f"{step} ce {ce.item():.3f} acc {acc:.3f} intra-sequence latent diff {diff:.4f}",
              flush=True)
