/* Reduced-precision weights for inference (docs/quantization.md): bf16, and
 * q8_0 — blocks of 32 weights, each an f32 scale d and 32 int8 q with
 * weight ≈ d·q (llama.cpp's Q8_0 with an f32 instead of an f16 scale, so
 * that a block is 36 bytes and its scale stays 4-byte aligned).
 *
 * The products y = x · Wᵀ with such weights: from TDI_Q_BLAS_MIN_ROWS rows of
 * x on, blocks of the weights are dequantised into stack scratch and
 * multiplied by cblas_sgemm (wide_blocks; x stays f32, as ggml does with a
 * BLAS for large batches). Below, this file's own kernels:
 *  - q8_0: each row of x is quantised the same way (32-value blocks, one
 *    scale each, as ggml quantises activations for its q8_0 products); a
 *    block's products are summed exactly in int32, four at a time into
 *    eight lanes, and scaled into eight f32 lanes (dot_q8_portable says
 *    exactly how); AVX512-VNNI (dpbusd) or AVX2 (maddubs/madd) do the same
 *    when the CPU has them (picked at run time), else portable C;
 *  - bf16: each weight widens to f32 exactly (a shift) and the products are
 *    summed in 16 independent f32 lanes (lane l takes columns ≡ l mod 16),
 *    the lanes then added in order.
 * Both orders are fixed by the shapes alone, so their results are the same
 * bits for every thread count and on every x86-64 CPU (the int32 sums are
 * exact, the f32 lanes independent, and the library builds with
 * -ffp-contract=off).
 *
 * Work is split into tiles of TILE_ROWS rows of x by TILE_COLS weight rows;
 * a tile quantises its rows of x a chunk of CHUNK columns at a time into
 * stack scratch (recomputed by every column tile: 1/TILE_COLS of the
 * multiply-adds), so the kernels need no workspace. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/fastmath.h"

#define TILE_ROWS 4
#define TILE_COLS 64
#define CHUNK 2048 /* columns of x quantised at a time (64 blocks) */

const char *tdi_wt_name(int dtype)
{
    switch (dtype) {
    case TDI_WT_F32: return "f32";
    case TDI_WT_BF16: return "bf16";
    case TDI_WT_Q8_0: return "q8_0";
    default: return "?";
    }
}

static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One block of 32 values: d = max|x| / 127, q = x / d rounded to nearest,
 * ties to even (|x / d| <= 127 < 2^22, where adding and subtracting 1.5·2^23
 * rounds exactly so: no libm call, and the loop vectorises). A non-finite
 * value makes d NaN (and its q 0), so that it reaches the logits as NaN,
 * where the sampler and the evaluation report it. */
TDI_TARGET_CLONES static void quantize_block(tdi_block_q8_0 *b, const float *x)
{
    float amax = 0.0f, nan = 0.0f;
    for (int i = 0; i < TDI_Q8_BLOCK; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
        nan += x[i] * 0.0f; /* NaN if any x is infinite or NaN */
    }
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = d + nan;
    for (int i = 0; i < TDI_Q8_BLOCK; i++) {
        float r = (x[i] * id + 12582912.0f) - 12582912.0f;
        r = r >= -127.0f && r <= 127.0f ? r : 0.0f;
        b->qs[i] = (int8_t)(int32_t)r;
    }
}

int tdi_quantize(int dtype, void *dst, const float *src, size_t count)
{
    if (dtype == TDI_WT_BF16) {
        uint16_t *h = dst;
        for (size_t i = 0; i < count; i++) {
            h[i] = to_bf16(src[i]);
            if (!isfinite(from_bf16(h[i]))) return 0;
        }
        return 1;
    }
    tdi_block_q8_0 *b = dst;
    for (size_t k = 0; k < count / TDI_Q8_BLOCK; k++)
        quantize_block(&b[k], src + k * TDI_Q8_BLOCK);
    return 1;
}

void tdi_dequantize(int dtype, float *dst, const void *src, size_t first, size_t count)
{
    if (dtype == TDI_WT_F32) {
        memcpy(dst, (const float *)src + first, count * sizeof(float));
    } else if (dtype == TDI_WT_BF16) {
        const uint16_t *h = (const uint16_t *)src + first;
        for (size_t i = 0; i < count; i++) dst[i] = from_bf16(h[i]);
    } else { /* first and count are multiples of the block */
        const tdi_block_q8_0 *b = (const tdi_block_q8_0 *)src + first / TDI_Q8_BLOCK;
        for (size_t k = 0; k < count / TDI_Q8_BLOCK; k++)
            for (int i = 0; i < TDI_Q8_BLOCK; i++)
                dst[k * TDI_Q8_BLOCK + i] = b[k].d * (float)b[k].qs[i];
    }
}

/* The q8_0 dot product of nb blocks, as every implementation computes it:
 * eight f32 lanes; block k adds to lane l the exact int32 sum of its
 * products 4l..4l+3 (what AVX2's maddubs + madd and VNNI's dpbusd give),
 * converted to float and times d_w · d_x (a product, then a sum: no fused
 * multiply-add); the lanes are added pairwise at the end. Quantised values
 * lie in −127..127 (the sign trick below needs it; loading checks it). */
#define Q8_LANES 8

static float sum_lanes(const float a[Q8_LANES])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* out[r] = the dot product of weight row w with row r of x (rows xs blocks
 * apart), r < nr <= TILE_ROWS, over nb blocks: each weight block is loaded
 * once for all the rows. */
static void dot_q8_portable(const tdi_block_q8_0 *w, const tdi_block_q8_0 *x, int xs, int nr,
                            int nb, float out[TILE_ROWS])
{
    for (int r = 0; r < nr; r++) {
        const tdi_block_q8_0 *xr = x + (size_t)r * xs;
        float acc[Q8_LANES] = { 0 };
        for (int k = 0; k < nb; k++) {
            float sc = w[k].d * xr[k].d;
            for (int l = 0; l < Q8_LANES; l++) {
                int32_t s = 0;
                for (int i = 4 * l; i < 4 * l + 4; i++) s += (int32_t)w[k].qs[i] * xr[k].qs[i];
                acc[l] += (float)s * sc;
            }
        }
        out[r] = sum_lanes(acc);
    }
}

/* out[c] = the dot product of weight row c (rows ws blocks apart), c < 4,
 * with one row x: the same arithmetic per column as dot_q8_portable, the
 * four columns' chains interleaved (one activation row: decoding). */
static void dot_q8_cols_portable(const tdi_block_q8_0 *w, int ws, const tdi_block_q8_0 *x,
                                 int nb, float out[4])
{
    for (int c = 0; c < 4; c++) dot_q8_portable(w + (size_t)c * ws, x, 0, 1, nb, out + c);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(TD_NO_TARGET_CLONES)
#  include <immintrin.h>
#  define TDI_HAVE_AVX2_Q8 1

/* The four-row loop around one block's int32 lanes, `LANES4(qw, qx)`. */
#define DOT_Q8_X4(LANES4)                                                                   \
    __m256 acc[TILE_ROWS];                                                                  \
    for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();                              \
    for (int k = 0; k < nb; k++) {                                                          \
        __m256i qw = _mm256_loadu_si256((const __m256i *)(const void *)w[k].qs);            \
        for (int r = 0; r < nr; r++) {                                                      \
            const tdi_block_q8_0 *xb = x + (size_t)r * xs + k;                              \
            __m256i qx = _mm256_loadu_si256((const __m256i *)(const void *)xb->qs);         \
            __m256 s = _mm256_cvtepi32_ps(LANES4(qw, qx));                                  \
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(s, _mm256_set1_ps(w[k].d * xb->d))); \
        }                                                                                   \
    }                                                                                       \
    for (int r = 0; r < nr; r++) {                                                          \
        float a[Q8_LANES];                                                                  \
        _mm256_storeu_ps(a, acc[r]);                                                        \
        out[r] = sum_lanes(a);                                                              \
    }

/* The one-row, four-column loop around `LANES4(qw, qx)`. */
#define DOT_Q8_COLS(LANES4)                                                                 \
    __m256 acc[4];                                                                          \
    for (int c = 0; c < 4; c++) acc[c] = _mm256_setzero_ps();                               \
    for (int k = 0; k < nb; k++) {                                                          \
        __m256i qx = _mm256_loadu_si256((const __m256i *)(const void *)x[k].qs);            \
        for (int c = 0; c < 4; c++) {                                                       \
            const tdi_block_q8_0 *wb = w + (size_t)c * ws + k;                              \
            __m256i qw = _mm256_loadu_si256((const __m256i *)(const void *)wb->qs);         \
            __m256 s = _mm256_cvtepi32_ps(LANES4(qw, qx));                                  \
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(s, _mm256_set1_ps(wb->d * x[k].d))); \
        }                                                                                   \
    }                                                                                       \
    for (int c = 0; c < 4; c++) {                                                           \
        float a[Q8_LANES];                                                                  \
        _mm256_storeu_ps(a, acc[c]);                                                        \
        out[c] = sum_lanes(a);                                                              \
    }

/* |x| (unsigned) times w with x's sign: the products, two per int16, then
 * four per int32. */
__attribute__((target("avx2"))) static inline __m256i lanes_avx2(__m256i qw, __m256i qx)
{
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qw, qx));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

__attribute__((target("avx2"))) static void dot_q8_avx2(const tdi_block_q8_0 *w,
                                                        const tdi_block_q8_0 *x, int xs,
                                                        int nr, int nb, float out[TILE_ROWS])
{
    DOT_Q8_X4(lanes_avx2)
}

__attribute__((target("avx2"))) static void dot_q8_cols_avx2(const tdi_block_q8_0 *w, int ws,
                                                             const tdi_block_q8_0 *x, int nb,
                                                             float out[4])
{
    DOT_Q8_COLS(lanes_avx2)
}

/* The same lanes with AVX512-VNNI: one vpdpbusd sums each group of four. */
__attribute__((target("avx2,avx512vl,avx512vnni"))) static inline __m256i
lanes_vnni(__m256i qw, __m256i qx)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(qx, qx),
                               _mm256_sign_epi8(qw, qx));
}

__attribute__((target("avx2,avx512vl,avx512vnni"))) static void
dot_q8_vnni(const tdi_block_q8_0 *w, const tdi_block_q8_0 *x, int xs, int nr, int nb,
            float out[TILE_ROWS])
{
    DOT_Q8_X4(lanes_vnni)
}

__attribute__((target("avx2,avx512vl,avx512vnni"))) static void
dot_q8_cols_vnni(const tdi_block_q8_0 *w, int ws, const tdi_block_q8_0 *x, int nb, float out[4])
{
    DOT_Q8_COLS(lanes_vnni)
}
#endif

typedef void (*dot_q8_fn)(const tdi_block_q8_0 *, const tdi_block_q8_0 *, int, int, int,
                          float *);
typedef void (*dot_q8_cols_fn)(const tdi_block_q8_0 *, int, const tdi_block_q8_0 *, int,
                               float *);

/* The implementation of `impl` (TDI_Q8_AUTO: the best this CPU runs), or 0
 * when this build or CPU lacks it; *rows and *cols get its two kernels. */
static int pick_dot_q8(int impl, dot_q8_fn *rows, dot_q8_cols_fn *cols)
{
    *rows = dot_q8_portable;
    *cols = dot_q8_cols_portable;
#ifdef TDI_HAVE_AVX2_Q8
    int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    int avx2 = __builtin_cpu_supports("avx2");
    if ((impl == TDI_Q8_AUTO || impl == TDI_Q8_VNNI) && vnni && avx2) {
        *rows = dot_q8_vnni;
        *cols = dot_q8_cols_vnni;
        return 1;
    }
    if ((impl == TDI_Q8_AUTO || impl == TDI_Q8_AVX2) && avx2) {
        *rows = dot_q8_avx2;
        *cols = dot_q8_cols_avx2;
        return 1;
    }
#endif
    return impl == TDI_Q8_AUTO || impl == TDI_Q8_PORTABLE;
}

int tdi_q8_impl_available(int impl)
{
    dot_q8_fn rows;
    dot_q8_cols_fn cols;
    return pick_dot_q8(impl, &rows, &cols);
}

/* Four bf16 dot products: lane l (of 16) of product i sums the products of
 * the columns ≡ l (mod 16), in order; the caller adds the lanes. Lanes are
 * independent, so every vector width gives the same bits. n is a multiple
 * of 16. dot_bf16_rows: weight row w with rows x[i] of x, each weight
 * widened once for the four; dot_bf16_cols: weight rows w[i] with row x
 * (decoding). */
#define LANES 16
TDI_TARGET_CLONES static void dot_bf16_rows(float acc[4][LANES], const uint16_t *restrict w,
                                            const float *const x[4], int n)
{
    float a[4][LANES] = { { 0 } };
    const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2];
    const float *restrict x3 = x[3];
    for (int k = 0; k < n; k += LANES)
        for (int l = 0; l < LANES; l++) {
            float f = from_bf16(w[k + l]);
            a[0][l] += x0[k + l] * f;
            a[1][l] += x1[k + l] * f;
            a[2][l] += x2[k + l] * f;
            a[3][l] += x3[k + l] * f;
        }
    memcpy(acc, a, sizeof a);
}

TDI_TARGET_CLONES static void dot_bf16_cols(float acc[4][LANES], const uint16_t *const w[4],
                                            const float *restrict x, int n)
{
    float a[4][LANES] = { { 0 } };
    const uint16_t *restrict w0 = w[0], *restrict w1 = w[1], *restrict w2 = w[2];
    const uint16_t *restrict w3 = w[3];
    for (int k = 0; k < n; k += LANES)
        for (int l = 0; l < LANES; l++) {
            float xv = x[k + l];
            a[0][l] += xv * from_bf16(w0[k + l]);
            a[1][l] += xv * from_bf16(w1[k + l]);
            a[2][l] += xv * from_bf16(w2[k + l]);
            a[3][l] += xv * from_bf16(w3[k + l]);
        }
    memcpy(acc, a, sizeof a);
}

typedef struct qlin_job {
    float *y;
    const float *x, *b, *add;
    const void *w;
    int dtype, n, in, out, col_tiles;
    dot_q8_fn dot_q8;
    dot_q8_cols_fn dot_q8_cols;
} qlin_job;

static void q8_tile(const qlin_job *j, int r0, int nr, int c0, int nc,
                    float acc[TILE_ROWS][TILE_COLS])
{
    enum { XS = CHUNK / TDI_Q8_BLOCK };
    tdi_block_q8_0 xq[TILE_ROWS][XS];
    const tdi_block_q8_0 *w = j->w;
    const int nb_row = j->in / TDI_Q8_BLOCK;
    for (int k0 = 0; k0 < j->in; k0 += CHUNK) {
        int kn = j->in - k0 < CHUNK ? j->in - k0 : CHUNK, nb = kn / TDI_Q8_BLOCK;
        for (int r = 0; r < nr; r++)
            for (int k = 0; k < nb; k++)
                quantize_block(&xq[r][k],
                               j->x + (size_t)(r0 + r) * j->in + k0 + k * TDI_Q8_BLOCK);
        for (int c = 0; c < nc;) {
            const tdi_block_q8_0 *wr = w + (size_t)(c0 + c) * nb_row + k0 / TDI_Q8_BLOCK;
            float d[TILE_ROWS];
            if (nr == 1 && c + 4 <= nc) { /* one row: four columns at a time */
                j->dot_q8_cols(wr, nb_row, &xq[0][0], nb, d);
                for (int i = 0; i < 4; i++) acc[0][c + i] += d[i];
                c += 4;
                continue;
            }
            j->dot_q8(wr, &xq[0][0], XS, nr, nb, d);
            for (int r = 0; r < nr; r++) acc[r][c] += d[r];
            c++;
        }
    }
}

/* The tail columns, the lanes and the product of weight row w with row x. */
static float bf16_finish(float lanes[LANES], const uint16_t *w, const float *x, int main,
                         int in)
{
    for (int i = main; i < in; i++) lanes[i - main] += x[i] * from_bf16(w[i]);
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += lanes[l];
    return s;
}

static void bf16_tile(const qlin_job *j, int r0, int nr, int c0, int nc,
                      float acc[TILE_ROWS][TILE_COLS])
{
    _Static_assert(TILE_ROWS == 4, "dot_bf16_rows takes four rows");
    const uint16_t *w = j->w;
    const int in = j->in, main = in / LANES * LANES;
    const float *xr[4];
    const uint16_t *wr[4];
    float lanes[4][LANES];
    for (int c = 0; c < nc;) {
        if (nr == 1 && c + 4 <= nc) { /* one row: four columns at a time */
            for (int i = 0; i < 4; i++) {
                wr[i] = w + (size_t)(c0 + c + i) * in;
                xr[i] = j->x + (size_t)r0 * in;
            }
            dot_bf16_cols(lanes, wr, xr[0], main);
            for (int i = 0; i < 4; i++)
                acc[0][c + i] = bf16_finish(lanes[i], wr[i], xr[i], main, in);
            c += 4;
            continue;
        }
        for (int r = 0; r < 4; r++) { /* missing rows repeat the last one */
            wr[r] = w + (size_t)(c0 + c) * in;
            xr[r] = j->x + (size_t)(r0 + (r < nr ? r : nr - 1)) * in;
        }
        dot_bf16_rows(lanes, wr[0], xr, main);
        for (int r = 0; r < nr; r++) acc[r][c] = bf16_finish(lanes[r], wr[r], xr[r], main, in);
        c++;
    }
}

static void qlin_tiles(void *ctx, long begin, long end, int tid)
{
    const qlin_job *j = ctx;
    (void)tid;
    for (long t = begin; t < end; t++) {
        int r0 = (int)(t / j->col_tiles) * TILE_ROWS, c0 = (int)(t % j->col_tiles) * TILE_COLS;
        int nr = j->n - r0 < TILE_ROWS ? j->n - r0 : TILE_ROWS;
        int nc = j->out - c0 < TILE_COLS ? j->out - c0 : TILE_COLS;
        float acc[TILE_ROWS][TILE_COLS] = { { 0 } };
        if (j->dtype == TDI_WT_Q8_0)
            q8_tile(j, r0, nr, c0, nc, acc);
        else
            bf16_tile(j, r0, nr, c0, nc, acc);
        for (int r = 0; r < nr; r++) {
            float *yr = j->y + (size_t)(r0 + r) * j->out + c0;
            const float *ar = j->add ? j->add + (size_t)(r0 + r) * j->out + c0 : NULL;
            for (int c = 0; c < nc; c++) {
                float v = 0.0f; /* the f32 path's order: (add + b) + x·wᵀ */
                if (ar && j->b)
                    v = ar[c] + j->b[c0 + c];
                else if (ar)
                    v = ar[c];
                else if (j->b)
                    v = j->b[c0 + c];
                yr[c] = v + acc[r][c];
            }
        }
    }
}

void tdi_linear_forward_q(float *y, const float *x, const void *w, int dtype, const float *b,
                          const float *add, int n, int in, int out, tdi_pool *pool)
{
    tdi_linear_forward_q_impl(y, x, w, dtype, b, add, n, in, out, TDI_Q8_AUTO, pool);
}

/* The wide path: blocks of WB_COLS weight rows by WB_K columns dequantised
 * into stack scratch (64 KiB), each block one cblas_sgemm over all n rows
 * adding into y; a column block's k blocks run in order on one thread. */
#define WB_COLS 32
#define WB_K 512

typedef struct wide_job {
    float *y;
    const float *x;
    const void *w;
    int dtype, n, in, out, beta0;
} wide_job;

static void wide_blocks(void *ctx, long begin, long end, int tid)
{
    const wide_job *j = ctx;
    float wt[WB_COLS * WB_K];
    (void)tid;
    for (long cb = begin; cb < end; cb++) {
        int c0 = (int)cb * WB_COLS, nc = j->out - c0 < WB_COLS ? j->out - c0 : WB_COLS;
        for (int k0 = 0; k0 < j->in; k0 += WB_K) {
            int kn = j->in - k0 < WB_K ? j->in - k0 : WB_K;
            for (int c = 0; c < nc; c++)
                tdi_dequantize(j->dtype, wt + (size_t)c * kn, j->w,
                               (size_t)(c0 + c) * j->in + k0, (size_t)kn);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, nc, kn, 1.0f, j->x + k0,
                        j->in, wt, kn, k0 == 0 ? (float)j->beta0 : 1.0f, j->y + c0, j->out);
        }
    }
}

/* y [n, out] = x [n, in] · w [out, in]ᵀ + b (+ add), w stored as dtype. */
void tdi_linear_forward_q_impl(float *y, const float *x, const void *w, int dtype,
                               const float *b, const float *add, int n, int in, int out,
                               int impl, tdi_pool *pool)
{
    if (dtype == TDI_WT_F32) {
        tdi_linear_forward(y, x, w, b, add, n, in, out, pool);
        return;
    }
    if (n <= 0 || out <= 0) return;
    if (n >= TDI_Q_BLAS_MIN_ROWS) {
        wide_job wj = { y, x, w, dtype, n, in, out, tdi_linear_prefill(y, b, add, n, out, pool) };
        tdi_pool_run(pool, (out + WB_COLS - 1) / WB_COLS, tdi_blas_callers(), wide_blocks, &wj);
        return;
    }
    qlin_job j = { y, x, b, add, w, dtype, n, in, out, (out + TILE_COLS - 1) / TILE_COLS,
                   NULL, NULL };
    pick_dot_q8(impl, &j.dot_q8, &j.dot_q8_cols); /* the portable C if impl is missing */
    long tiles = (long)((n + TILE_ROWS - 1) / TILE_ROWS) * j.col_tiles;
    tdi_pool_for(pool, tiles, qlin_tiles, &j);
}
