/* xoshiro256** (Blackman & Vigna): small state, fast, passes BigCrush.
 * Seeded through splitmix64 so that any 64-bit seed gives a good state.
 * Independent streams for threads or sequences come from tdi_rng_stream(),
 * which seeds from (seed, stream id) — deterministic for a given seed. */
#ifndef TDI_RNG_H
#define TDI_RNG_H

#include <stdint.h>

typedef struct tdi_rng { uint64_t s[4]; } tdi_rng;

void tdi_rng_seed(tdi_rng *r, uint64_t seed);
void tdi_rng_stream(tdi_rng *r, uint64_t seed, uint64_t stream);

static inline uint64_t tdi_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t tdi_rng_u64(tdi_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = tdi_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tdi_rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double tdi_rng_f64(tdi_rng *r)
{
    return (double)(tdi_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, 1) with 24 random bits. */
static inline float tdi_rng_f32(tdi_rng *r)
{
    return (float)(tdi_rng_u64(r) >> 40) * 0x1.0p-24f;
}

/* Uniform integer in [0, n), n > 0, without modulo bias (Lemire). */
uint64_t tdi_rng_below(tdi_rng *r, uint64_t n);

/* Standard normal (Box-Muller, double precision). */
double tdi_rng_normal(tdi_rng *r);

#endif
