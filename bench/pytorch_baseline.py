#!/usr/bin/python3
"""PyTorch baseline of the libtextdiff benchmark (docs/performance.md).

The same model, training step and sampling loop as the library, written in
plain PyTorch with its stock operators (F.linear, F.layer_norm, F.gelu,
torch.matmul, F.cross_entropy, torch.optim.AdamW):

  model     docs/model.md: byte vocabulary (258, [MASK] = 256), RoPE
            (rotate-half, base 10000), pre-LN, tanh GELU, tied output head
            with its own bias, [MASK] logit -inf; init N(0, 0.02^2), proj.w
            and fc2.w N(0, (0.02/sqrt(2L))^2), biases 0, LayerNorm 1 and 0.
  training  docs/training.md: log-linear schedule (eps 1e-3, t_min 1e-3),
            stratified times t_b, each token masked with probability
            1 - alpha(t_b), loss sum over masked rows of w(t_b)/(T*B) * CE,
            logits only at masked rows; AdamW (betas 0.9/0.95, eps 1e-8,
            weight decay 0.1 on the weight matrices only), global-norm
            clipping to 1.0, linear warm-up of the learning rate.
  sampling  docs/sampling.md without the cache: every step runs the network
            on the canvas; ancestral draws the reveals then the tokens of the
            revealed rows; max-prob draws a token for every masked row and
            keeps the k most probable draws. Tokens are drawn in float64.

Before measuring, the script checks its model and loss in float64 against
the reference vectors of tests/golden/rope_pre_tied.tdgv (the library's
default architecture): logits, loss and every parameter gradient.

Run by bench/bench.c, which sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
OMP_WAIT_POLICY=PASSIVE before this interpreter starts; prints one JSON line.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \\
        /usr/bin/python3 bench/pytorch_baseline.py --config S --threads 1
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "golden", "rope_pre_tied.tdgv")
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from make_vectors import POS_ROPE, param_shapes, unpack  # noqa: E402 (layout, reader)

CONFIGS = {
    "S": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq_len=128, batch=32,
              sample_batch=8, sample_len=128, sample_steps=64),
    "M": dict(d_model=512, n_layers=8, n_heads=8, d_ff=2048, seq_len=256, batch=8,
              sample_batch=4, sample_len=256, sample_steps=128),
    "T": dict(d_model=64, n_layers=2, n_heads=2, d_ff=256, seq_len=32, batch=4,
              sample_batch=2, sample_len=32, sample_steps=8),
}
VOCAB, MASK_ID = 258, 256
EPS, T_MIN = 1e-3, 1e-3             # log-linear schedule
LR, WARMUP = 1e-3, 100              # the trainer's defaults
BETAS, ADAM_EPS, WEIGHT_DECAY, CLIP = (0.9, 0.95), 1e-8, 0.1, 1.0
LN_EPS, ROPE_BASE = 1e-5, 10000.0


def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def cpu_mark():
    """(machine busy CPU seconds, this process's CPU seconds, wall seconds)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # all but idle and iowait
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return busy / os.sysconf("SC_CLK_TCK"), ru.ru_utime + ru.ru_stime, time.perf_counter()


def others_share(a, b):
    """Share of the CPUs that other processes used between marks a and b
    (None under two seconds, which the 10 ms ticks cannot resolve)."""
    if b[2] - a[2] < 2.0:
        return None
    others = (b[0] - a[0]) - (b[1] - a[1])
    return max(0.0, others / ((b[2] - a[2]) * os.cpu_count()))


# --- the model -------------------------------------------------------------------

def shapes(V, d, ff, L):
    """docs/model.md names and shapes in buffer order, RoPE and tied head:
    the layout of the reference vectors' generator."""
    return param_shapes(dict(vocab_size=V, d_model=d, d_ff=ff, n_layers=L,
                             pos_encoding=POS_ROPE, tie_embeddings=1))


def init_params(V, d, ff, L, gen):
    P = {}
    for name, shape in shapes(V, d, ff, L):
        if name.endswith(("ln1.w", "ln2.w")) or name == "lnf.w":
            x = torch.ones(shape)
        elif name.endswith(".b"):
            x = torch.zeros(shape)
        elif name.endswith(("proj.w", "fc2.w")):
            x = torch.randn(shape, generator=gen) * (0.02 / math.sqrt(2 * L))
        else:
            x = torch.randn(shape, generator=gen) * 0.02
        P[name] = x.requires_grad_(True)
    return P


class Encoder:
    def __init__(self, P, n_layers, n_heads, mask_id, t_max, dtype=torch.float32):
        self.P, self.L, self.H, self.mask_id = P, n_layers, n_heads, mask_id
        V, d = P["tok_emb"].shape
        hd = d // n_heads
        i = torch.arange(hd // 2, dtype=torch.float64)
        ang = torch.arange(t_max, dtype=torch.float64)[:, None] * ROPE_BASE ** (-2.0 * i / hd)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
        self.col_mask = torch.zeros(V, dtype=torch.bool)
        self.col_mask[mask_id] = True

    def rope(self, x):
        """x [B, H, T, hd]: the pair (x_i, x_{i+hd/2}) rotated by p * theta_i."""
        T = x.shape[2]
        cos, sin = self.cos[:T], self.sin[:T]
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def hidden(self, ids):
        """ids [B, T] -> final hidden state [B*T, d] (after lnf)."""
        P, H = self.P, self.H
        B, T = ids.shape
        d = P["tok_emb"].shape[1]
        hd = d // H
        h = F.embedding(ids, P["tok_emb"])
        for l in range(self.L):
            a = F.layer_norm(h, (d,), P[f"{l}.ln1.w"], P[f"{l}.ln1.b"], LN_EPS)
            qkv = F.linear(a, P[f"{l}.qkv.w"], P[f"{l}.qkv.b"])
            q, k, v = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
            q, k = self.rope(q), self.rope(k)
            att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)),
                                dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).reshape(B, T, d)
            h = h + F.linear(y, P[f"{l}.proj.w"], P[f"{l}.proj.b"])
            m = F.layer_norm(h, (d,), P[f"{l}.ln2.w"], P[f"{l}.ln2.b"], LN_EPS)
            f = F.gelu(F.linear(m, P[f"{l}.fc.w"], P[f"{l}.fc.b"]), approximate="tanh")
            h = h + F.linear(f, P[f"{l}.fc2.w"], P[f"{l}.fc2.b"])
        h = F.layer_norm(h, (d,), P["lnf.w"], P["lnf.b"], LN_EPS)
        return h.reshape(B * T, d)

    def logits(self, h):
        """Tied head with its bias; [MASK] can never be predicted."""
        z = F.linear(h, self.P["tok_emb"], self.P["out.b"])
        return z.masked_fill(self.col_mask, float("-inf"))


def weighted_ce(logits, targets, weights):
    return (weights * F.cross_entropy(logits, targets, reduction="none")).sum()


# --- the check against the reference vectors ----------------------------------------

def golden_check(path):
    """Largest error of logits, loss and gradients (each relative to the
    largest reference value), float64 against the file's float64 results."""
    with open(path, "rb") as f:
        g = unpack(f.read())
    cfg = {k[len("config."):]: int(g[k][0]) for k in g if k.startswith("config.")}
    assert cfg["pos_encoding"] == 0 and cfg["norm_placement"] == 0 and cfg["tie_embeddings"] == 1
    V, d, ff, L = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"], cfg["n_layers"]
    P = {name: torch.tensor(g[name], dtype=torch.float64, requires_grad=True)
         for name, _ in shapes(V, d, ff, L)}
    model = Encoder(P, L, cfg["n_heads"], cfg["mask_id"], cfg["max_seq_len"], torch.float64)
    assert (g["key_mask"] == 1).all()  # no padding: the benchmark's case
    ids = torch.tensor(g["ids"], dtype=torch.long)
    rows = torch.tensor(g["rows"], dtype=torch.long)
    h = model.hidden(ids)
    logits = model.logits(h)
    loss = weighted_ce(logits[rows], torch.tensor(g["targets"], dtype=torch.long),
                       torch.tensor(g["row_weights"], dtype=torch.float64))
    loss.backward()

    def rel(ours, ref):
        ref = torch.tensor(np.array(ref, dtype=np.float64))  # a writable copy
        fin = torch.isfinite(ref)
        assert torch.equal(fin, torch.isfinite(ours))
        scale = max(ref[fin].abs().max().item(), 1e-300)
        return (ours[fin] - ref[fin]).abs().max().item() / scale

    errs = [rel(logits.detach(), g["logits"]), rel(loss.detach().reshape(1), g["loss"])]
    errs += [rel(P[n].grad, g["grad." + n]) for n in P]
    return max(errs)


# --- training ----------------------------------------------------------------------

def lr_at(step):
    return LR * step / WARMUP if step <= WARMUP else LR  # within the warm-up here


def train_step(model, params, opt, tokens, step, gen):
    """One step; returns (forward, backward, optimizer) seconds, masked rows."""
    t0 = time.perf_counter()
    B, T = tokens.shape
    u0 = torch.rand((), generator=gen, dtype=torch.float64)
    t = T_MIN + (1.0 - T_MIN) * ((u0 + torch.arange(B, dtype=torch.float64) / B) % 1.0)
    sel = torch.rand(B, T, generator=gen, dtype=torch.float64) < ((1.0 - EPS) * t)[:, None]
    ids = torch.where(sel, torch.full_like(tokens, MASK_ID), tokens)
    rows = sel.reshape(-1).nonzero().squeeze(1)
    w = (1.0 / torch.clamp(t, min=T_MIN) / (T * B)).float()
    weights = w[:, None].expand(B, T).reshape(-1)[rows]
    logits = model.logits(model.hidden(ids)[rows])
    loss = weighted_ce(logits, tokens.reshape(-1)[rows], weights)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, CLIP)
    for group in opt.param_groups:
        group["lr"] = lr_at(step)
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, rows.numel()


# --- sampling ----------------------------------------------------------------------

def mask_prob(t):
    return (1.0 - EPS) * t  # 1 - alpha(t), log-linear


@torch.inference_mode()
def sample(model, strategy, batch, length, steps, stop, gen):
    """Runs the first `stop` steps of a `steps`-step generation."""
    canvas = torch.full((batch, length), MASK_ID, dtype=torch.long)
    flat = canvas.view(-1)
    positions = torch.arange(length).expand(batch, length)
    for k in range(min(stop, steps)):
        last = k + 1 == steps
        t, s = 1.0 - k / steps, (0.0 if last else 1.0 - (k + 1) / steps)
        p = 1.0 if last else (mask_prob(t) - mask_prob(s)) / mask_prob(t)
        masked = canvas == MASK_ID
        h = model.hidden(canvas)  # no cache: the network runs at every step
        if strategy == "ancestral":
            reveal = masked if p >= 1.0 else masked & (
                torch.rand(batch, length, generator=gen, dtype=torch.float64) < p)
            rows = reveal.view(-1).nonzero().squeeze(1)
            if rows.numel():
                probs = torch.softmax(model.logits(h[rows]).double(), dim=-1)
                flat[rows] = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        else:  # max-prob: keep the k most probable draws of each sequence
            rows = masked.view(-1).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            probs = torch.softmax(model.logits(h[rows]).double(), dim=-1)
            tok = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            conf = torch.full((batch * length,), float("-inf"), dtype=torch.float64)
            conf[rows] = probs.gather(1, tok[:, None]).squeeze(1)
            drawn = torch.zeros(batch * length, dtype=torch.long)
            drawn[rows] = tok
            n = masked.sum(dim=1)
            k_b = n if last else torch.where(
                n > 0, torch.clamp(torch.floor(n * p + 0.5).long(), min=1), n)
            order = torch.sort(conf.view(batch, length), dim=1, descending=True, stable=True)[1]
            rank = torch.empty_like(order).scatter_(1, order, positions)
            keep = (rank < k_b[:, None]) & masked
            canvas.copy_(torch.where(keep, drawn.view(batch, length), canvas))
    return canvas


# --- main --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="S")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sample-timed", type=int, default=16,
                    help="sampling steps timed per run (0: all)")
    ap.add_argument("--check-only", action="store_true",
                    help="only compare the model with the reference vectors")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = dict(impl="pytorch", config=a.config, threads=a.threads,
               torch_version=torch.__version__, rss_base_kb=rss_kb())
    if os.path.exists(GOLDEN):
        out["golden_max_rel_err"] = golden_check(GOLDEN)
        if not out["golden_max_rel_err"] < 1e-9:
            sys.exit(f"pytorch_baseline: the model differs from {GOLDEN}: "
                     f"relative error {out['golden_max_rel_err']:.3g}")
    if a.check_only:
        print(json.dumps(out))
        return
    c = CONFIGS[a.config]
    gen = torch.Generator().manual_seed(1)
    P = init_params(VOCAB, c["d_model"], c["d_ff"], c["n_layers"], gen)
    model = Encoder(P, c["n_layers"], c["n_heads"], MASK_ID, max(c["seq_len"], c["sample_len"]))
    params = list(P.values())
    decay = [P[n] for n in P if n.endswith(("qkv.w", "proj.w", "fc.w", "fc2.w"))]
    no_decay = [P[n] for n in P if not n.endswith(("qkv.w", "proj.w", "fc.w", "fc2.w"))]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=WEIGHT_DECAY),
                             dict(params=no_decay, weight_decay=0.0)],
                            lr=LR, betas=BETAS, eps=ADAM_EPS, foreach=True)

    data = torch.Generator().manual_seed(42)
    steps, fwd, bwd, optim, masked = [], [], [], [], []
    train0 = cpu_mark()
    for i in range(a.warmup + a.steps):
        tokens = torch.randint(0, 256, (c["batch"], c["seq_len"]), generator=data)
        f, b, o, n = train_step(model, params, opt, tokens, i + 1, gen)
        if i >= a.warmup:
            steps.append(f + b + o)
            fwd.append(f)
            bwd.append(b)
            optim.append(o)
            masked.append(n)
    out["others_cpu_train"] = others_share(train0, cpu_mark())
    out["rss_train_kb"] = rss_kb()
    med = statistics.median(steps)
    out.update(steps_timed=a.steps, train_tokens_per_s=c["batch"] * c["seq_len"] / med,
               step_ms_median=1e3 * med, step_ms_mean=1e3 * statistics.mean(steps),
               fwd_ms=1e3 * statistics.mean(fwd), bwd_ms=1e3 * statistics.mean(bwd),
               opt_ms=1e3 * statistics.mean(optim), n_masked_mean=statistics.mean(masked))
    print(f"  PyTorch {a.config}, {a.threads} thread(s): training "
          f"{out['train_tokens_per_s']:.0f} tokens/s", file=sys.stderr)

    S, Ls, N = c["sample_batch"], c["sample_len"], c["sample_steps"]
    timed = a.sample_timed if 0 < a.sample_timed < N else N
    out.update(sample_steps=N, sample_steps_timed=timed)
    sample0 = cpu_mark()
    for strategy in ("ancestral", "max_prob"):
        sample(model, strategy, S, Ls, N, 1, gen)  # warm-up: one step
        t0 = time.perf_counter()
        sample(model, strategy, S, Ls, N, timed, gen)
        dt = time.perf_counter() - t0
        out[f"sample_{strategy}_tokens_per_s"] = S * Ls / (dt * N / timed)
        out[f"sample_{strategy}_ms_per_step"] = 1e3 * dt / timed
    out["others_cpu_sample"] = others_share(sample0, cpu_mark())
    out["rss_peak_kb"] = rss_kb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
