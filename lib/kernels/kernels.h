/* Compute kernels of the transformer encoder: forward and backward side by
 * side, float32, row-major [rows, cols]. Activations are [N, d] with N = B·T
 * (row r = b·T + t), so every projection is one cblas_sgemm over all rows.
 *
 * Conventions shared by every kernel:
 *  - `pool` is the thread pool a kernel runs its loops on (util/pool.h; NULL
 *    = the calling thread alone), for the loops and for the matrix products
 *    alike: products go through tdi_sgemm, which threads them itself, each
 *    block one BLAS call (tdi_blas_callers). Results do not depend on the
 *    pool's size: every reduction runs in a fixed order (rows in order
 *    within a column block, or within one row) and products split into
 *    blocks chosen by shape, so 1, 2 and 3 threads give the same bits.
 *  - Parameter gradients are ACCUMULATED (dw += ...), so a caller zeroes them
 *    once per step. Input gradients are written; where a kernel takes
 *    `accumulate`, a non-zero value adds them instead.
 *  - No kernel allocates; scratch is passed in.
 */
#ifndef TDI_KERNELS_H
#define TDI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "util/pool.h"

/* ---- matrix product ----------------------------------------------------- */

/* How many threads may call cblas_sgemm at once without running a thread
 * pool inside another or calling a non-reentrant BLAS concurrently: 1 or
 * INT_MAX (blas_callers.c says when). Read before each parallel loop that
 * calls the BLAS; it changes which threads run the calls, never the calls. */
int tdi_blas_callers(void);

/* c [m, n] = alpha · op(a) · op(b) + beta · c, row-major, op = transpose when
 * trans_* is non-zero (as cblas_sgemm with CblasRowMajor). Called outside
 * any parallel loop; splits into blocks by shape and runs them on the
 * pool's threads, or on the caller alone when tdi_blas_callers() is 1
 * (gemm.c). */
void tdi_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc, tdi_pool *pool);

/* ---- linear: y = x·wᵀ + b (+ add) --------------------------------------- */

/* y [n, out] = x [n, in] · w [out, in]ᵀ + b [out] (+ add [n, out]).
 * b and add may be NULL; add may equal y (an in-place residual). */
void tdi_linear_forward(float *y, const float *x, const float *w, const float *b,
                        const float *add, int n, int in, int out, tdi_pool *pool);

/* dx [n, in] = dy [n, out] · w [out, in]     (added to dx when accumulate)
 * dw [out, in] += dyᵀ · x,  db [out] += Σ_rows dy.
 * dx, dw and db may each be NULL (skipped). */
void tdi_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int n, int in, int out, int accumulate, tdi_pool *pool);

/* acc [cols] += Σ_rows x [n, cols], rows summed in order. */
void tdi_colsum_accumulate(float *acc, const float *x, int n, int cols, tdi_pool *pool);

/* ---- layernorm: y = (x − mean)·rstd·w + b, biased variance --------------- */

/* rstd = 1/sqrt(var + eps); the library's own models use eps = 1e-5. */
#define TDI_LN_EPS 1e-5f

/* y, x [n, d]; mean, rstd [n] saved for the backward pass. y may equal x. */
void tdi_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                           const float *w, const float *b, int n, int d, float eps,
                           tdi_pool *pool);

/* dx [n, d] from dy [n, d] (added to dx when accumulate); dw, db [d] +=.
 * dx may equal dy. */
void tdi_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *mean, const float *rstd,
                            const float *w, int n, int d, int accumulate, tdi_pool *pool);

/* ---- GELU ----------------------------------------------------------------
 * TDI_GELU_TANH: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))  (GPT-2, "gelu_new")
 * TDI_GELU_ERF:  0.5·x·(1 + erf(x/√2))                       (BERT, "gelu") */

enum { TDI_GELU_TANH = 0, TDI_GELU_ERF = 1 };

/* y, x [n] (any shape, elementwise). y may equal x. */
void tdi_gelu_forward(float *y, const float *x, size_t n, int kind, tdi_pool *pool);
/* dx [n] = dy · gelu'(x). dx may equal dy. */
void tdi_gelu_backward(float *dx, const float *dy, const float *x, size_t n, int kind,
                       tdi_pool *pool);

/* ---- rotary position embedding ("rotate half", GPT-NeoX / LLaMA) -------- */

/* cos_t, sin_t [t_max, hd/2]: entry (p, i) is cos / sin of p·10000^(−2i/hd),
 * computed in double. hd even. */
void tdi_rope_tables(float *cos_t, float *sin_t, int t_max, int hd);

/* Rotates in place `n_heads` consecutive heads of width hd at the start of
 * every row of x [n, ld]; row r has position r % T. Passing the q block of a
 * [N, 3d] qkv buffer with n_heads = 2H rotates q and k in one call. */
void tdi_rope_forward(float *x, int ld, int n, int T, int n_heads, int hd,
                      const float *cos_t, const float *sin_t, tdi_pool *pool);
/* The transpose (inverse) rotation, applied in place to gradients. */
void tdi_rope_backward(float *dx, int ld, int n, int T, int n_heads, int hd,
                       const float *cos_t, const float *sin_t, tdi_pool *pool);

/* ---- multi-head attention, optional causal and key padding masks ------- */

/* qkv [B·T, 3d] holds q | k | v (q and k already rotated), d = H·hd; head h
 * is columns [h·hd, (h+1)·hd) of each block.
 * out [B·T, d] = heads of softmax(q·kᵀ/√hd)·v side by side.
 * key_mask [B·T]: 1 = the key may be attended, 0 = padding; NULL = all.
 * causal != 0: query i attends to keys 0..i only (on top of key_mask); the
 * probabilities of later keys are exactly 0, so the backward needs nothing
 * else.
 * A query whose sequence has no attendable key gets an all-zero row.
 *
 * No [B, H, T, T] tensor is kept: the (batch, head) pairs are shared among
 * the pool's threads, and each thread computes its pairs' T×T scores and
 * probabilities in its own slice of `scratch`. Unlike the other kernels,
 * these call cblas_sgemm directly, inside their own parallel loop: each
 * pair's products are single-threaded calls in the pair's thread. Per query row
 * the forward saves row_max and row_inv [B, H, T] (the score maximum and
 * 1/Σe; −∞ and 0 for a row with no attendable key), from which the
 * backward rebuilds the forward's probabilities exactly, after recomputing
 * the scores.
 *
 * Scratch contract: `scratch` holds n_slices·tdi_attention_scratch_floats(T,
 * 0) floats for the forward, n_slices·tdi_attention_scratch_floats(T, 1) for
 * the backward; thread i uses slice i, and at most n_slices threads run.
 * Each pair is computed by the same calls whichever thread runs it, so the
 * results do not depend on how many do. */

/* One thread's slice: one T×T matrix for the forward, two for the backward,
 * each padded to a multiple of 16 floats. The padding puts every slice's
 * rows at the same offsets from a 64-byte boundary, so a vectorised row sum
 * that groups its terms by alignment still cannot depend on the thread. */
static inline size_t tdi_attention_scratch_floats(int T, int backward)
{
    size_t m = ((size_t)T * (size_t)T + 15) & ~(size_t)15;
    return backward ? 2 * m : m;
}

void tdi_attention_forward(float *out, float *row_max, float *row_inv, const float *qkv,
                           const uint8_t *key_mask, int causal, int B, int T, int H, int hd,
                           float *scratch, int n_slices, tdi_pool *pool);

/* Attention of W query rows per sequence over T keys kept apart (the
 * approximate key/value cache of docs/sampling.md): q [B·W, ldq] (head h
 * at columns h·hd, rotated), k and v [B·T, d] (rotated keys), key_mask
 * [B·T] or NULL, bidirectional; out [B·W, d]. scratch: n_slices slices of
 * tdi_attention_window_floats(W, T). Same sgemm-and-softmax as the forward
 * above, so the result does not depend on the thread count either. */
static inline size_t tdi_attention_window_floats(int W, int T)
{
    return ((size_t)W * (size_t)T + 2 * (size_t)W + 15) & ~(size_t)15;
}
void tdi_attention_window_forward(float *out, const float *q, int ldq, const float *k,
                                  const float *v, const uint8_t *key_mask, int B, int W, int T,
                                  int H, int hd, float *scratch, int n_slices, tdi_pool *pool);

/* dqkv [B·T, 3d] is written (dq | dk | dv, before the RoPE transpose) from
 * dout [B·T, d]; qkv, row_max, row_inv and key_mask are the forward's. */
void tdi_attention_backward(float *dqkv, const float *dout, const float *qkv,
                            const float *row_max, const float *row_inv, const uint8_t *key_mask,
                            int causal, int B, int T, int H, int hd, float *scratch,
                            int n_slices, tdi_pool *pool);

/* ---- token (+ learned position) embedding ------------------------------- */

/* out [B·T, d] = tok [., d][ids] (+ type [d]) (+ pos [T_max, d][t]);
 * type and pos may be NULL, and are added in that order (BERT's).
 * ids must be valid rows of tok. */
void tdi_embedding_forward(float *out, const int32_t *ids, const float *tok, const float *type,
                           const float *pos, int B, int T, int d, tdi_pool *pool);
/* dtok[ids[r]] += dout[r], dpos[t] += Σ_b dout[b·T + t]  (dpos may be NULL). */
void tdi_embedding_backward(float *dtok, float *dpos, const float *dout, const int32_t *ids,
                            int B, int T, int d, tdi_pool *pool);

/* ---- softmax cross-entropy over rows ------------------------------------ */

/* logits [n, V]; targets [n]; weights [n] or NULL (all 1).
 * row_loss [n] receives −log softmax(logits)[target] per row (double).
 * dlogits [n, V] (NULL: loss only; may equal logits) receives
 * weight·(softmax − onehot(target)). A −∞ logit has probability exactly 0
 * and gradient exactly 0; the target's logit must be finite.
 * Returns Σ weight·row_loss, summed in row order. */
double tdi_crossentropy_forward_backward(float *dlogits, double *row_loss, const float *logits,
                                         const int32_t *targets, const float *weights, int n,
                                         int V, tdi_pool *pool);

/* y [n, out] = add + b, add, or b (either may be NULL; add may equal y):
 * what a product then adds to. Returns 0, touching nothing, when both are
 * NULL, else 1. */
int tdi_linear_prefill(float *y, const float *b, const float *add, int n, int out,
                       tdi_pool *pool);

/* ---- reduced-precision weights (quant.c, docs/quantization.md) ---------- */

/* How a weight tensor is stored; the values are the public td_dtype's. */
enum { TDI_WT_F32 = 0, TDI_WT_BF16 = 1, TDI_WT_Q8_0 = 2 };

#define TDI_Q8_BLOCK 32

/* 32 weights ≈ d · qs[i]. */
typedef struct tdi_block_q8_0 {
    float d;
    int8_t qs[TDI_Q8_BLOCK];
} tdi_block_q8_0;

/* "f32", "bf16", "q8_0", or "?" for another value. */
const char *tdi_wt_name(int dtype);

/* Bytes of count values stored as dtype (q8_0: count a multiple of 32);
 * 0 for an unknown dtype. Inline: the model's layout code needs it without
 * the kernels (the config.json fuzz target compiles model.c alone). */
static inline size_t tdi_wt_bytes(int dtype, size_t count)
{
    switch (dtype) {
    case TDI_WT_F32: return count * sizeof(float);
    case TDI_WT_BF16: return count * sizeof(uint16_t);
    case TDI_WT_Q8_0: return count / TDI_Q8_BLOCK * sizeof(tdi_block_q8_0);
    default: return 0;
    }
}

/* dst (tdi_wt_bytes(dtype, count) bytes) = src [count] in dtype (BF16 or
 * Q8_0; q8_0: count a multiple of 32). Returns 0 when a value does not fit
 * (bf16 overflows to infinity), 1 otherwise. */
int tdi_quantize(int dtype, void *dst, const float *src, size_t count);

/* dst [count] = values first..first+count-1 of src stored as dtype (q8_0:
 * first and count multiples of 32). */
void tdi_dequantize(int dtype, float *dst, const void *src, size_t first, size_t count);

/* tdi_linear_forward with w stored as dtype (TDI_WT_F32 calls it). From
 * TDI_Q_BLAS_MIN_ROWS rows of x on, the weights are dequantised block by
 * block and multiplied by the BLAS in f32 (x stays f32). Below, the
 * library's own kernels: for q8_0 (in a multiple of 32) each row of x is
 * quantised to q8_0 too and the products are int8; for bf16 they are f32.
 * Same bits for any pool size. */
#define TDI_Q_BLAS_MIN_ROWS 32
void tdi_linear_forward_q(float *y, const float *x, const void *w, int dtype, const float *b,
                          const float *add, int n, int in, int out, tdi_pool *pool);
/* The same with the q8_0 dot product of `impl`: AUTO picks the best the CPU
 * has (VNNI, AVX2, portable C); the others force one, for tests (all give
 * the same bits); one the CPU lacks runs the portable C. */
enum { TDI_Q8_AUTO = 0, TDI_Q8_PORTABLE = 1, TDI_Q8_AVX2 = 2, TDI_Q8_VNNI = 3 };
void tdi_linear_forward_q_impl(float *y, const float *x, const void *w, int dtype,
                               const float *b, const float *add, int n, int in, int out,
                               int impl, tdi_pool *pool);
/* 1 when this build and CPU run `impl`'s code. */
int tdi_q8_impl_available(int impl);

/* tdi_embedding_forward with the token table stored as tok_dtype (rows
 * dequantised as they are looked up; q8_0: d a multiple of 32). */
void tdi_embedding_forward_q(float *out, const int32_t *ids, const void *tok, int tok_dtype,
                             const float *type, const float *pos, int B, int T, int d,
                             tdi_pool *pool);

#endif
