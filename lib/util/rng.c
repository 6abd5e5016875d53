#include "util/rng.h"

#include <math.h>

__extension__ typedef unsigned __int128 u128;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tdi_rng_seed(tdi_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void tdi_rng_stream(tdi_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ 0x6A09E667F3BCC909ull;
    uint64_t mixed = splitmix64(&x) ^ (stream * 0xD1B54A32D192ED03ull);
    tdi_rng_seed(r, mixed);
}

uint64_t tdi_rng_below(tdi_rng *r, uint64_t n)
{
    u128 m = (u128)tdi_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t threshold = -n % n;
        while (lo < threshold) {
            m = (u128)tdi_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double tdi_rng_normal(tdi_rng *r)
{
    double u1 = 1.0 - tdi_rng_f64(r); /* (0, 1]: log is finite */
    double u2 = tdi_rng_f64(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
