#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void lu_philox4x32(const uint32_t ctr[4], const uint32_t key[2], int rounds, uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < rounds; r++) {
    if (r > 0) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void lu_rng_init(lu_rng *r, uint64_t seed, uint64_t stream) {
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32);
  r->ctr[0] = 0; r->ctr[1] = 0;
  r->ctr[2] = (uint32_t)stream;
  r->ctr[3] = (uint32_t)(stream >> 32);
  r->used = 4;
}

void lu_rng_child(const lu_rng *parent, uint64_t index, lu_rng *child) {
  /* The child's key is one Philox block of (index, parent position) under the parent key: distinct
   * indices or parent positions give unrelated keys. */
  uint32_t in[4] = {(uint32_t)index, (uint32_t)(index >> 32), parent->ctr[0] ^ 0x5bd1e995u,
                    parent->ctr[1] ^ (uint32_t)parent->used ^ 0x1b873593u};
  uint32_t out[4];
  lu_philox4x32(in, parent->key, 10, out);
  uint64_t seed = (uint64_t)out[0] | ((uint64_t)out[1] << 32);
  uint64_t stream = (uint64_t)out[2] | ((uint64_t)out[3] << 32);
  lu_rng_init(child, seed, stream);
}

static void rng_refill(lu_rng *r) {
  lu_philox4x32(r->ctr, r->key, 10, r->buf);
  if (++r->ctr[0] == 0) ++r->ctr[1];
  r->used = 0;
}

uint32_t lu_rng_u32(lu_rng *r) {
  if (r->used >= 4) rng_refill(r);
  return r->buf[r->used++];
}

uint64_t lu_rng_u64(lu_rng *r) {
  uint64_t lo = lu_rng_u32(r);
  uint64_t hi = lu_rng_u32(r);
  return lo | (hi << 32);
}

float lu_rng_float(lu_rng *r) { return (float)(lu_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double lu_rng_double(lu_rng *r) { return (double)(lu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double lu_rng_uniform(lu_rng *r, double lo, double hi) { return lo + (hi - lo) * lu_rng_double(r); }

double lu_rng_normal(lu_rng *r) {
  double u1 = 1.0 - lu_rng_double(r); /* (0, 1]: log is finite */
  double u2 = lu_rng_double(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

int64_t lu_rng_int(lu_rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  uint64_t span = (uint64_t)hi - (uint64_t)lo; /* number of values - 1 */
  if (span == UINT64_MAX) return (int64_t)lu_rng_u64(r);
  uint64_t n = span + 1;
  /* Rejection: draws below (2^w mod n) are redrawn, so the rest is a whole number of periods of n. */
  if (n <= 0xFFFFFFFFull) {
    uint32_t n32 = (uint32_t)n, t = (0u - n32) % n32, v;
    do v = lu_rng_u32(r); while (v < t);
    return (int64_t)((uint64_t)lo + v % n32);
  }
  uint64_t t = (0ull - n) % n, v;
  do v = lu_rng_u64(r); while (v < t);
  return (int64_t)((uint64_t)lo + v % n);
}

void lu_rng_save(const lu_rng *r, uint32_t s[LU_RNG_STATE_WORDS]) {
  s[0] = r->key[0]; s[1] = r->key[1];
  for (int i = 0; i < 4; i++) s[2 + i] = r->ctr[i];
  s[6] = (uint32_t)r->used;
}

lu_status lu_rng_restore(lu_rng *r, const uint32_t s[LU_RNG_STATE_WORDS]) {
  if (s[6] > 4) return lu_fail(LU_EARG, "rng state: word 7 (used) is %u, must be 0..4", s[6]);
  r->key[0] = s[0]; r->key[1] = s[1];
  for (int i = 0; i < 4; i++) r->ctr[i] = s[2 + i];
  r->used = (int)s[6];
  if (r->used < 4) {
    uint32_t prev[4] = {r->ctr[0] - 1, r->ctr[1] - (r->ctr[0] == 0 ? 1 : 0), r->ctr[2], r->ctr[3]};
    if (r->ctr[0] == 0 && r->ctr[1] == 0)
      return lu_fail(LU_EARG, "rng state: used=%u but no block has been drawn (counter 0)", s[6]);
    lu_philox4x32(prev, r->key, 10, r->buf);
  }
  return LU_OK;
}
