#include "core/mt19937.h"

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void lu_mt_seed(lu_mt19937 *m, uint32_t seed) {
  m->mt[0] = seed;
  for (int i = 1; i < LU_MT_N; i++)
    m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
  m->pos = LU_MT_N;
}

static void mt_generate(lu_mt19937 *m) {
  int i;
  uint32_t y;
  for (i = 0; i < LU_MT_N - MT_M; i++) {
    y = (m->mt[i] & MT_UPPER) | (m->mt[i + 1] & MT_LOWER);
    m->mt[i] = m->mt[i + MT_M] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
  }
  for (; i < LU_MT_N - 1; i++) {
    y = (m->mt[i] & MT_UPPER) | (m->mt[i + 1] & MT_LOWER);
    m->mt[i] = m->mt[i + (MT_M - LU_MT_N)] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
  }
  y = (m->mt[LU_MT_N - 1] & MT_UPPER) | (m->mt[0] & MT_LOWER);
  m->mt[LU_MT_N - 1] = m->mt[MT_M - 1] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
  m->pos = 0;
}

uint32_t lu_mt_next32(lu_mt19937 *m) {
  if (m->pos >= LU_MT_N) mt_generate(m);
  uint32_t y = m->mt[m->pos++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t lu_mt_next64(lu_mt19937 *m) {
  uint64_t hi = lu_mt_next32(m);
  return (hi << 32) | lu_mt_next32(m);
}

double lu_mt_double(lu_mt19937 *m) {
  int32_t a = (int32_t)(lu_mt_next32(m) >> 5), b = (int32_t)(lu_mt_next32(m) >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

uint64_t lu_mt_interval(lu_mt19937 *m, uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max, v;
  mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
  mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
  if (max <= 0xffffffffull) {
    while ((v = (lu_mt_next32(m) & mask)) > max) {}
  } else {
    while ((v = (lu_mt_next64(m) & mask)) > max) {}
  }
  return v;
}

void lu_mt_shuffle(lu_mt19937 *m, int64_t *a, int64_t n) {
  for (int64_t i = n - 1; i >= 1; i--) {
    int64_t j = (int64_t)lu_mt_interval(m, (uint64_t)i);
    int64_t t = a[i]; a[i] = a[j]; a[j] = t;
  }
}

void lu_mt_permutation(lu_mt19937 *m, int64_t *a, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] = i;
  lu_mt_shuffle(m, a, n);
}
