"""Golden vectors for the latent autoencoder (lib/latent/autoencoder.c).

An independent PyTorch version of the same modules (docs/latent-diffusion.md)
in float64: Perceiver-style compressor (its context the features plus fixed
sinusoidal positions), normalised latents, latent dropout,
chunk paths (latent n starts from a projection of its chunk of the context,
decoder position i from a projection of its chunk's latent), cross-attention decoder, feature and vocabulary heads, and the loss
mean CE + mse_weight * mean (fhat - feat)^2; and the denoiser (sinusoidal
time features -> MLP added to every latent, self-conditioning input
concatenated to z_t, self-attention blocks) with a mean squared error loss.
The autoencoder's loss gives the gradients of its tensors, the denoiser's loss
those of the denoiser's tensors. Writes
tests/golden/latent_vectors.h with the inputs (float32 values), the loss, the
latents, the logits and every parameter gradient (autograd), the parameters
in the library's tensor order.

    /work/venv/bin/python tools/reference/latent_vectors.py > tests/golden/latent_vectors.h
"""
import torch
import torch.nn.functional as F

torch.manual_seed(7)
L, N, D, H, NE, ND, FF, DE, V, MASK, B = 7, 3, 8, 2, 2, 2, 12, 10, 11, 10, 2
NN = 2  # denoiser blocks
MSE_W = 0.7


def f32(t):
    return t.float().double()


def block_names(stack, l, dc):
    p = f"{stack}.{l}."
    return [(p + "ln1.w", (D,), "ln"), (p + "ln1.b", (D,), "b"),
            (p + "q.w", (D, D), "w"), (p + "q.b", (D,), "b"),
            (p + "kv.w", (2 * D, dc), "w"), (p + "kv.b", (2 * D,), "b"),
            (p + "o.w", (D, D), "w"), (p + "o.b", (D,), "b"),
            (p + "ln2.w", (D,), "ln"), (p + "ln2.b", (D,), "b"),
            (p + "fc.w", (FF, D), "w"), (p + "fc.b", (FF,), "b"),
            (p + "fc2.w", (D, FF), "w"), (p + "fc2.b", (D,), "b")]


W = -(-L // N)  # chunk width: the most positions one latent's chunk holds
names = [("enc.queries", (N, D), "w"), ("enc.pool.w", (D, W * DE), "w")]
for l in range(NE):
    names += block_names("enc", l, DE)
names += [("dec.queries", (L, D), "w"), ("dec.unpool.w", (W * D, D), "w")]
for l in range(ND):
    names += block_names("dec", l, D)
names += [("dec.lnf.w", (D,), "ln"), ("dec.lnf.b", (D,), "b"),
          ("dec.feat.w", (DE, D), "w"), ("dec.feat.b", (DE,), "b"),
          ("dec.out.w", (V, DE), "w"), ("dec.out.b", (V,), "b")]
n_ae = len(names)
names += [("den.in.w", (D, 2 * D), "w"), ("den.in.b", (D,), "b"), ("den.pos", (N, D), "w"),
          ("den.t1.w", (D, D), "w"), ("den.t1.b", (D,), "b"),
          ("den.t2.w", (D, D), "w"), ("den.t2.b", (D,), "b")]
for l in range(NN):
    names += block_names("den", l, D)
names += [("den.lnf.w", (D,), "ln"), ("den.lnf.b", (D,), "b"),
          ("den.out.w", (D, D), "w"), ("den.out.b", (D,), "b")]

P = {}
for name, shape, kind in names:
    if kind == "ln":
        t = 1.0 + 0.1 * torch.randn(shape)
    elif kind == "b":
        t = 0.1 * torch.randn(shape)
    else:
        t = 0.4 * torch.randn(shape)
    P[name] = f32(t).requires_grad_(True)

feat = f32(torch.randn(B * L, DE))
keep = (torch.rand(B * L, 1) > 0.3).double()
feat_in = f32(feat * keep + 0.1 * torch.randn(B * L, DE))
drop = f32((torch.rand(B * N, D) > 0.25).double() / 0.75)
tokens = torch.randint(0, V - 1, (B * L,))


def ln(x, w=None, b=None):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def xattn(q, kv, nq, lk):
    # q [B*nq, D], kv [B*lk, 2D]
    hd = D // H
    q = q.view(B, nq, H, hd).transpose(1, 2)
    k = kv[:, :D].reshape(B, lk, H, hd).transpose(1, 2)
    v = kv[:, D:].reshape(B, lk, H, hd).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / hd ** 0.5
    y = torch.softmax(s, -1) @ v
    return y.transpose(1, 2).reshape(B * nq, D)


def block(pre, x, ctx, nq, lk):
    g = lambda n: P[pre + n]
    h = ln(x, g("ln1.w"), g("ln1.b"))
    if ctx is None:  # self-attention: the context is LN1(x)
        ctx = h
    q = h @ g("q.w").T + g("q.b")
    kv = ctx @ g("kv.w").T + g("kv.b")
    res1 = x + xattn(q, kv, nq, lk) @ g("o.w").T + g("o.b")
    h2 = ln(res1, g("ln2.w"), g("ln2.b"))
    m = F.gelu(h2 @ g("fc.w").T + g("fc.b"), approximate="tanh")
    return res1 + m @ g("fc2.w").T + g("fc2.b")


pos = torch.arange(L, dtype=torch.float64)[:, None]
col = torch.arange(DE)
ang = pos * torch.exp(-torch.log(torch.tensor(10000.0, dtype=torch.float64))
                      * (2 * (col // 2)).double() / DE)
pe = f32(torch.where(col % 2 == 0, torch.sin(ang), torch.cos(ang)))
ctx = feat_in + pe.repeat(B, 1)
# chunk paths: latent n starts from its query plus a projection of its chunk
# of the context (rows side by side, zero-padded to W rows); decoder position i
# from its query plus block r(i) of a projection of its chunk's latent
chunk = [i * N // L for i in range(L)]
offset = [i - (chunk[i] * L + N - 1) // N for i in range(L)]
sel = torch.zeros(N * W, L, dtype=torch.float64)  # patch slot <- position
for i in range(L):
    sel[chunk[i] * W + offset[i], i] = 1.0
patches = (sel[None] @ ctx.view(B, L, DE)).reshape(B * N, W * DE)
x = P["enc.queries"].repeat(B, 1) + patches @ P["enc.pool.w"].T
for l in range(NE):
    x = block(f"enc.{l}.", x, ctx, N, L)
lat = ln(x)
latd = lat * drop
up = (latd @ P["dec.unpool.w"].T).view(B, N * W, D)
y = P["dec.queries"].repeat(B, 1) + (sel.T[None] @ up).reshape(B * L, D)
for l in range(ND):
    y = block(f"dec.{l}.", y, latd, L, N)
hf = ln(y, P["dec.lnf.w"], P["dec.lnf.b"])
fhat = hf @ P["dec.feat.w"].T + P["dec.feat.b"]
logits = fhat @ P["dec.out.w"].T + P["dec.out.b"]
logits = logits.clone()
logits[:, MASK] = float("-inf")
ce = F.cross_entropy(logits, tokens)
mse = ((fhat - feat) ** 2).mean()
loss = ce + MSE_W * mse
loss.backward()

# The denoiser on its own inputs: z_t, the self-conditioning input, times.
z = f32(torch.randn(B * N, D))
sc = f32(torch.randn(B * N, D))
times = [0.3, 0.85]
target = f32(torch.randn(B * N, D))


def time_features(t):
    half = max(D // 2, 1)
    e = []
    for j in range(D):
        f = torch.exp(torch.tensor(-torch.log(torch.tensor(10000.0, dtype=torch.float64)).item()
                                   * (j // 2) / half, dtype=torch.float64))
        e.append(torch.sin(1000.0 * t * f) if j % 2 == 0 else torch.cos(1000.0 * t * f))
    return f32(torch.stack(e))


e = torch.stack([time_features(t) for t in times])
temb = F.gelu(e @ P["den.t1.w"].T + P["den.t1.b"], approximate="tanh") @ P["den.t2.w"].T \
    + P["den.t2.b"]
x = torch.cat([z, sc], 1) @ P["den.in.w"].T + P["den.in.b"] + P["den.pos"].repeat(B, 1) \
    + temb.repeat_interleave(N, 0)
for l in range(NN):
    x = block(f"den.{l}.", x, None, N, N)
pred = ln(x, P["den.lnf.w"], P["den.lnf.b"]) @ P["den.out.w"].T + P["den.out.b"]
den_loss = ((pred - target) ** 2).mean()
den_loss.backward()


def arr(name, ctype, values):
    vals = [float(v) for v in values]
    body = ",\n    ".join(", ".join(f"{v:.17g}" for v in vals[i:i + 6])
                          for i in range(0, len(vals), 6))
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    {body}\n}};\n"


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts]).tolist()


out = ["/* Generated by tools/reference/latent_vectors.py (PyTorch %s, float64). "
       "Do not edit. */" % torch.__version__,
       "#ifndef TD_GOLDEN_LATENT_VECTORS_H", "#define TD_GOLDEN_LATENT_VECTORS_H", "",
       f"enum {{ LG_L = {L}, LG_N = {N}, LG_D = {D}, LG_H = {H}, LG_NE = {NE}, LG_ND = {ND}, "
       f"LG_FF = {FF}, LG_DE = {DE}, LG_V = {V}, LG_MASK = {MASK}, LG_B = {B}, LG_NN = {NN}, "
       f"LG_N_AE_TENSORS = {n_ae} }};",
       f"#define LG_MSE_WEIGHT {MSE_W}f", f"#define LG_LOSS {loss.item():.17g}",
       f"#define LG_CE {ce.item():.17g}", f"#define LG_MSE {mse.item():.17g}",
       f"#define LG_DEN_LOSS {den_loss.item():.17g}", ""]
out.append(arr("lg_params", "float", flat([P[n] for n, _, _ in names])))
out.append(arr("lg_grads", "double", flat([P[n].grad for n, _, _ in names])))
out.append(arr("lg_feat", "float", feat.reshape(-1).tolist()))
out.append(arr("lg_feat_in", "float", feat_in.reshape(-1).tolist()))
out.append(arr("lg_drop", "float", drop.reshape(-1).tolist()))
out.append(arr("lg_tokens", "int", tokens.tolist()))
out.append(arr("lg_latents", "double", lat.detach().reshape(-1).tolist()))
lg = logits.detach().clone()
lg[:, MASK] = 0.0
out.append(arr("lg_logits", "double", lg.reshape(-1).tolist()))
out.append(arr("lg_z", "float", z.reshape(-1).tolist()))
out.append(arr("lg_sc", "float", sc.reshape(-1).tolist()))
out.append(arr("lg_times", "double", times))
out.append(arr("lg_target", "float", target.reshape(-1).tolist()))
out.append(arr("lg_pred", "double", pred.detach().reshape(-1).tolist()))
out.append("#endif")
print("\n".join(out))
