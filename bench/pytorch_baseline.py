#!/usr/bin/python3
"""PyTorch baseline of the libtextdiff benchmark (docs/performance.md).

The same model, training step and sampling loop as the library, written in
plain PyTorch with its stock operators (F.linear, F.layer_norm, F.gelu,
torch.matmul, F.cross_entropy, torch.optim.AdamW):

  model     docs/model.md, in one of two architectures:
            "rope" (S, M, T and the S<T> sweep): the library's defaults, byte
            vocabulary (258, [MASK] = 256), RoPE (rotate-half, base 10000),
            pre-LN, tanh GELU, LayerNorm eps 1e-5;
            "bert" (B): bert-base's shape and options, vocabulary 30,522
            ([MASK] = 103), learned positions (512), a token-type table whose
            row 0 is added, post-LN with the embedding LayerNorm, erf GELU,
            LayerNorm eps 1e-12, BERT's head transform (dense, GELU,
            LayerNorm);
            both with the tied output head and its own bias, [MASK] logit
            -inf; init N(0, 0.02^2), proj.w and fc2.w
            N(0, (0.02/sqrt(2L))^2), biases 0, LayerNorm 1 and 0.
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
reference vectors (logits, loss and every parameter gradient):
tests/golden/rope_pre_tied.tdgv (the "rope" architecture),
tests/golden/learned_post_untied.tdgv (learned positions, post-LN) and
tests/golden/hf/bert.tdgv, computed by Hugging Face's BertForMaskedLM on the
weights of tests/golden/hf/bert/ (the "bert" architecture, with key padding).

Run by bench/bench.c, which sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS,
MKL_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE before this interpreter starts;
prints one JSON line, which names the torch build (version, oneDNN, BLAS).

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
GOLDEN = os.path.join(ROOT, "tests", "golden")
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from make_vectors import unpack  # noqa: E402 (the reference vectors' reader)

ROPE = dict(pos="rope", norm="pre", act="tanh", head_transform=False, type_vocab=0,
            ln_eps=1e-5, tied=True, vocab=258, mask_id=256, max_seq_len=0)
BERT = dict(pos="learned", norm="post", act="erf", head_transform=True, type_vocab=2,
            ln_eps=1e-12, tied=True, vocab=30522, mask_id=103, max_seq_len=512)


def sweep(T):
    """S at sequence length T, with S's tokens per training step (4,096) and per
    sampling step (1,024)."""
    return dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq_len=T, batch=4096 // T,
                sample_batch=1024 // T, sample_len=T, sample_steps=64, arch=ROPE)


CONFIGS = {
    "S": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq_len=128, batch=32,
              sample_batch=8, sample_len=128, sample_steps=64, arch=ROPE),
    "M": dict(d_model=512, n_layers=8, n_heads=8, d_ff=2048, seq_len=256, batch=8,
              sample_batch=4, sample_len=256, sample_steps=128, arch=ROPE),
    "B": dict(d_model=768, n_layers=12, n_heads=12, d_ff=3072, seq_len=128, batch=8,
              sample_batch=1, sample_len=128, sample_steps=32, arch=BERT),
    "S256": sweep(256), "S512": sweep(512), "S1024": sweep(1024),
    "T": dict(d_model=64, n_layers=2, n_heads=2, d_ff=256, seq_len=32, batch=4,
              sample_batch=2, sample_len=32, sample_steps=8, arch=ROPE),
    "TB": dict(d_model=64, n_layers=2, n_heads=2, d_ff=256, seq_len=32, batch=4,
               sample_batch=2, sample_len=32, sample_steps=8, arch=dict(BERT, vocab=1000)),
}
EPS, T_MIN = 1e-3, 1e-3             # log-linear schedule
LR, WARMUP = 1e-3, 100              # the trainer's defaults
BETAS, ADAM_EPS, WEIGHT_DECAY, CLIP = (0.9, 0.95), 1e-8, 0.1, 1.0
ROPE_BASE = 10000.0
DECAY = ("qkv.w", "proj.w", "fc.w", "fc2.w", "head.w", "out.w")  # the weight matrices


def torch_build():
    """The torch build, short: version, oneDNN, BLAS and CPU kernels as torch
    reports them."""
    info = dict(torch_version=torch.__version__,
                torch_mkldnn=int(torch.backends.mkldnn.is_available()))
    show = torch.__config__.show()
    parts = []
    for line in show.splitlines():
        line = line.strip(" -")
        if line.startswith("Intel(R) oneAPI Math Kernel Library Version"):
            parts.append("MKL " + line.split("Version ")[1].split("-")[0])
        elif "MKL-DNN v" in line:
            parts.append("oneDNN " + line.split("MKL-DNN ")[1].split(" ")[0])
        elif line.startswith("CPU capability usage:"):
            parts.append("CPU " + line.split(":")[1].strip())
    blas = [x.split("=")[1] for x in show.replace(",", " ").split() if x.startswith("BLAS_INFO=")]
    if blas:
        parts.insert(0, "BLAS " + blas[0])
    info["torch_build"] = ", ".join(parts) if parts else "unknown build"
    return info


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

def shapes(arch, V, d, ff, L, n_pos):
    """docs/model.md names and shapes in buffer order."""
    out = [("tok_emb", (V, d))]
    if arch["pos"] == "learned":
        out.append(("pos_emb", (n_pos, d)))
    if arch["type_vocab"]:
        out.append(("type_emb", (arch["type_vocab"], d)))
    for l in range(L):
        out += [(f"{l}.ln1.w", (d,)), (f"{l}.ln1.b", (d,)),
                (f"{l}.qkv.w", (3 * d, d)), (f"{l}.qkv.b", (3 * d,)),
                (f"{l}.proj.w", (d, d)), (f"{l}.proj.b", (d,)),
                (f"{l}.ln2.w", (d,)), (f"{l}.ln2.b", (d,)),
                (f"{l}.fc.w", (ff, d)), (f"{l}.fc.b", (ff,)),
                (f"{l}.fc2.w", (d, ff)), (f"{l}.fc2.b", (d,))]
    out += [("lnf.w", (d,)), ("lnf.b", (d,))]
    if arch["head_transform"]:
        out += [("head.w", (d, d)), ("head.b", (d,)), ("head_ln.w", (d,)), ("head_ln.b", (d,))]
    if not arch["tied"]:
        out.append(("out.w", (V, d)))
    out.append(("out.b", (V,)))
    return out


def init_params(arch, d, ff, L, n_pos, gen):
    P = {}
    for name, shape in shapes(arch, arch["vocab"], d, ff, L, n_pos):
        if name.endswith(("ln1.w", "ln2.w", "lnf.w", "head_ln.w")):
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
    def __init__(self, P, arch, n_layers, n_heads, mask_id, t_max, dtype=torch.float32):
        self.P, self.arch, self.L, self.H, self.mask_id = P, arch, n_layers, n_heads, mask_id
        self.eps = arch["ln_eps"]
        self.gelu = "tanh" if arch["act"] == "tanh" else "none"
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

    def ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.P[name + ".w"], self.P[name + ".b"],
                            self.eps)

    def attn(self, x, l, key_mask):
        P, H = self.P, self.H
        B, T, d = x.shape
        hd = d // H
        qkv = F.linear(x, P[f"{l}.qkv.w"], P[f"{l}.qkv.b"])
        q, k, v = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
        if self.arch["pos"] == "rope":
            q, k = self.rope(q), self.rope(k)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        if key_mask is not None:
            s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        y = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, d)
        return F.linear(y, P[f"{l}.proj.w"], P[f"{l}.proj.b"])

    def mlp(self, x, l):
        P = self.P
        f = F.gelu(F.linear(x, P[f"{l}.fc.w"], P[f"{l}.fc.b"]), approximate=self.gelu)
        return F.linear(f, P[f"{l}.fc2.w"], P[f"{l}.fc2.b"])

    def hidden(self, ids, key_mask=None):
        """ids [B, T] -> final hidden state [B*T, d] (after lnf, or the head
        transform); key_mask [B, T] (True: attend) or None."""
        P = self.P
        B, T = ids.shape
        d = P["tok_emb"].shape[1]
        h = F.embedding(ids, P["tok_emb"])
        if "type_emb" in P:
            h = h + P["type_emb"][0]
        if "pos_emb" in P:
            h = h + P["pos_emb"][:T]
        post = self.arch["norm"] == "post"
        if post:
            h = self.ln(h, "lnf")  # BERT's embedding LayerNorm
        for l in range(self.L):
            if post:
                h = self.ln(h + self.attn(h, l, key_mask), f"{l}.ln1")
                h = self.ln(h + self.mlp(h, l), f"{l}.ln2")
            else:
                h = h + self.attn(self.ln(h, f"{l}.ln1"), l, key_mask)
                h = h + self.mlp(self.ln(h, f"{l}.ln2"), l)
        if not post:
            h = self.ln(h, "lnf")
        return h.reshape(B * T, d)

    def logits(self, h):
        """The head transform, if any, on the rows given, then the output
        projection (tied or not) with its bias; [MASK] can never be predicted."""
        P = self.P
        if self.arch["head_transform"]:
            h = self.ln(F.gelu(F.linear(h, P["head.w"], P["head.b"]), approximate=self.gelu),
                        "head_ln")
        z = F.linear(h, P["tok_emb"] if self.arch["tied"] else P["out.w"], P["out.b"])
        return z.masked_fill(self.col_mask, float("-inf"))


def weighted_ce(logits, targets, weights):
    return (weights * F.cross_entropy(logits, targets, reduction="none")).sum()


# --- the checks against the reference vectors ---------------------------------------

def read_safetensors(path):
    """name -> float64 tensor, for a file of F32 tensors (the format: an 8-byte
    little-endian header length, a JSON header, the data)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    out = {}
    for name, t in json.loads(data[8:8 + n]).items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32"
        a, b = t["data_offsets"]
        x = np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"])
        out[name] = torch.tensor(x.astype(np.float64))
    return out


def bert_params(d, L):
    """The library's tensors of a BertForMaskedLM, from the Hugging Face names
    (docs/hf.md, "Tensor names")."""
    e, enc, hp = "bert.embeddings.", "bert.encoder.layer.", "cls.predictions."
    out = [("tok_emb", [e + "word_embeddings.weight"]),
           ("pos_emb", [e + "position_embeddings.weight"]),
           ("type_emb", [e + "token_type_embeddings.weight"])]
    for l in range(L):
        a = f"{enc}{l}."
        for lib, hf in (("ln1", "attention.output.LayerNorm"), ("proj", "attention.output.dense"),
                        ("ln2", "output.LayerNorm"), ("fc", "intermediate.dense"),
                        ("fc2", "output.dense")):
            out += [(f"{l}.{lib}.w", [a + hf + ".weight"]), (f"{l}.{lib}.b", [a + hf + ".bias"])]
        out += [(f"{l}.qkv.w", [a + f"attention.self.{x}.weight" for x in ("query", "key", "value")]),
                (f"{l}.qkv.b", [a + f"attention.self.{x}.bias" for x in ("query", "key", "value")])]
    out += [("lnf.w", [e + "LayerNorm.weight"]), ("lnf.b", [e + "LayerNorm.bias"]),
            ("head.w", [hp + "transform.dense.weight"]), ("head.b", [hp + "transform.dense.bias"]),
            ("head_ln.w", [hp + "transform.LayerNorm.weight"]),
            ("head_ln.b", [hp + "transform.LayerNorm.bias"])]
    return out


def load_case(name):
    """(parameters, architecture, n_heads, mask_id, reference arrays) of a
    reference file, in float64."""
    with open(os.path.join(GOLDEN, name + ".tdgv"), "rb") as f:
        g = unpack(f.read())
    if name.startswith("hf/"):
        with open(os.path.join(GOLDEN, name, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["hidden_act"] == "gelu" and cfg["tie_word_embeddings"]
        t = read_safetensors(os.path.join(GOLDEN, name, "model.safetensors"))
        d, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        P = {lib: torch.cat([t[k] for k in hf]) for lib, hf in bert_params(d, L)}
        bias = "cls.predictions.bias"
        P["out.b"] = t[bias if bias in t else "cls.predictions.decoder.bias"]
        arch = dict(BERT, type_vocab=cfg["type_vocab_size"], ln_eps=cfg["layer_norm_eps"])
        n_heads, mask_id = cfg["num_attention_heads"], int(g["mask_id"][0])
    else:
        cfg = {k[len("config."):]: int(g[k][0]) for k in g if k.startswith("config.")}
        assert "causal" not in cfg
        arch = dict(ROPE, pos="learned" if cfg["pos_encoding"] else "rope",
                    norm="post" if cfg["norm_placement"] else "pre",
                    tied=bool(cfg["tie_embeddings"]))
        V, d, ff, L = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"], cfg["n_layers"]
        P = {n: torch.tensor(g[n], dtype=torch.float64)
             for n, _ in shapes(arch, V, d, ff, L, cfg["max_seq_len"])}
        n_heads, mask_id = cfg["n_heads"], cfg["mask_id"]
    for x in P.values():
        x.requires_grad_(True)
    return P, arch, n_heads, mask_id, g


def golden_check(name):
    """Largest error of logits, loss and gradients (each relative to the
    largest reference value), float64 against the file's results: float64
    logits and loss; gradients in float64, or in float32 in the Hugging Face
    files (then rounding alone leaves up to 6e-8)."""
    P, arch, n_heads, mask_id, g = load_case(name)
    L = 1 + max(int(n.split(".")[0]) for n in P if n[0].isdigit())
    ids = torch.tensor(g["ids"], dtype=torch.long)
    model = Encoder(P, arch, L, n_heads, mask_id, ids.shape[1], torch.float64)
    key_mask = torch.tensor(g["key_mask"]) == 1
    h = model.hidden(ids, None if key_mask.all() else key_mask)
    rows = torch.tensor(g["rows"], dtype=torch.long)
    logits = model.logits(h)
    loss = weighted_ce(logits[rows], torch.tensor(g["targets"], dtype=torch.long),
                       torch.tensor(g["row_weights"], dtype=torch.float64))
    loss.backward()

    def rel(ours, ref):
        ref = torch.tensor(np.array(ref, dtype=np.float64))  # a writable copy
        fin = torch.isfinite(ref)
        if not name.startswith("hf/"):  # Hugging Face's logits keep the [MASK] column
            assert torch.equal(fin, torch.isfinite(ours))
        fin &= torch.isfinite(ours)
        scale = max(ref[fin].abs().max().item(), 1e-300)
        return (ours[fin] - ref[fin]).abs().max().item() / scale

    f64 = max(rel(logits.detach(), g["logits"]), rel(loss.detach().reshape(1), g["loss"]))
    grads = max(rel(P[n].grad, g["grad." + n]) for n in P)
    return f64, grads


CHECKS = (("rope_pre_tied", 1e-9), ("learned_post_untied", 1e-9), ("hf/bert", 1e-6))


# --- training ----------------------------------------------------------------------

def random_tokens(arch, shape, gen):
    """Uniform over the ordinary tokens: the bytes (258: [MASK] and [PAD] are
    256 and 257), or every id but [MASK]."""
    if arch["vocab"] == 258:
        return torch.randint(0, 256, shape, generator=gen)
    x = torch.randint(0, arch["vocab"] - 1, shape, generator=gen)
    return x + (x >= arch["mask_id"]).long()


def lr_at(step):
    return LR * step / WARMUP if step <= WARMUP else LR  # within the warm-up here


def train_step(model, params, opt, tokens, step, gen):
    """One step; returns (forward, backward, optimizer) seconds, masked rows."""
    t0 = time.perf_counter()
    B, T = tokens.shape
    u0 = torch.rand((), generator=gen, dtype=torch.float64)
    t = T_MIN + (1.0 - T_MIN) * ((u0 + torch.arange(B, dtype=torch.float64) / B) % 1.0)
    sel = torch.rand(B, T, generator=gen, dtype=torch.float64) < ((1.0 - EPS) * t)[:, None]
    ids = torch.where(sel, torch.full_like(tokens, model.mask_id), tokens)
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
    canvas = torch.full((batch, length), model.mask_id, dtype=torch.long)
    flat = canvas.view(-1)
    positions = torch.arange(length).expand(batch, length)
    for k in range(min(stop, steps)):
        last = k + 1 == steps
        t, s = 1.0 - k / steps, (0.0 if last else 1.0 - (k + 1) / steps)
        p = 1.0 if last else (mask_prob(t) - mask_prob(s)) / mask_prob(t)
        masked = canvas == model.mask_id
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
    out = dict(impl="pytorch", config=a.config, threads=a.threads, rss_base_kb=rss_kb(),
               torch_threads=torch.get_num_threads(), **torch_build())
    if os.path.isdir(GOLDEN):  # the checks need the source tree
        errs, grad_errs = [], []
        for name, tol in CHECKS:
            f64, grads = golden_check(name)
            if not (f64 < 1e-9 and grads < tol):
                sys.exit(f"pytorch_baseline: the model differs from tests/golden/{name}.tdgv: "
                         f"relative error {f64:.3g} (logits, loss), {grads:.3g} (gradients)")
            errs.append(f64)
            grad_errs.append(grads / tol * 1e-9)  # scaled to the float64 tolerance
        out["golden_max_rel_err"] = max(errs)
        out["golden_max_grad_err_scaled"] = max(grad_errs)
    if a.check_only:
        print(json.dumps(out))
        return
    c = CONFIGS[a.config]
    arch = c["arch"]
    gen = torch.Generator().manual_seed(1)
    t_max = max(c["seq_len"], c["sample_len"], arch["max_seq_len"])
    P = init_params(arch, c["d_model"], c["d_ff"], c["n_layers"], t_max, gen)
    model = Encoder(P, arch, c["n_layers"], c["n_heads"], arch["mask_id"], t_max)
    params = list(P.values())
    decay = [P[n] for n in P if n.endswith(DECAY)]
    no_decay = [P[n] for n in P if not n.endswith(DECAY)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=WEIGHT_DECAY),
                             dict(params=no_decay, weight_decay=0.0)],
                            lr=LR, betas=BETAS, eps=ADAM_EPS, foreach=True)

    data = torch.Generator().manual_seed(42)
    steps, fwd, bwd, optim, masked = [], [], [], [], []
    train0 = timed0 = cpu_mark()
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            timed0 = cpu_mark()
        tokens = random_tokens(arch, (c["batch"], c["seq_len"]), data)
        f, b, o, n = train_step(model, params, opt, tokens, i + 1, gen)
        if i >= a.warmup:
            steps.append(f + b + o)
            fwd.append(f)
            bwd.append(b)
            optim.append(o)
            masked.append(n)
    train1 = cpu_mark()
    out["others_cpu_train"] = others_share(train0, train1)
    # CPU time of this process (all its threads) per timed step
    out["step_cpu_ms"] = 1e3 * (train1[1] - timed0[1]) / a.steps
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
