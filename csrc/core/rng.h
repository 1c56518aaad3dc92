/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers: as easy
 * as 1, 2, 3"). A generator is a key (the seed) and a 128-bit counter; every block of four 32-bit
 * words is philox(counter, key), so a stream can be split (one child per batch sample) and its state
 * saved and restored exactly (for checkpoints) as seven integers. */
#ifndef LU_RNG_H
#define LU_RNG_H

#include <stdint.h>

#include "core/status.h"

typedef struct lu_rng {
  uint32_t key[2];
  uint32_t ctr[4];  /* ctr[0..1]: block index (64-bit, little end first), ctr[2..3]: stream id */
  uint32_t buf[4];  /* philox(ctr - 1, key): the current block */
  int used;         /* words of buf already handed out (4 = exhausted) */
} lu_rng;

#define LU_RNG_STATE_WORDS 7

/* The raw bijection: out = Philox4x32-R(ctr, key). */
void lu_philox4x32(const uint32_t ctr[4], const uint32_t key[2], int rounds, uint32_t out[4]);

/* Generator for seed (the key) and stream (the high counter words). */
void lu_rng_init(lu_rng *r, uint64_t seed, uint64_t stream);
/* Independent child generator: key = the parent's seed mixed with `index`, parent untouched.
 * Children of the same parent with different indices never share a block. */
void lu_rng_child(const lu_rng *parent, uint64_t index, lu_rng *child);

uint32_t lu_rng_u32(lu_rng *r);
uint64_t lu_rng_u64(lu_rng *r);
float lu_rng_float(lu_rng *r);          /* [0, 1), 24 random bits */
double lu_rng_double(lu_rng *r);        /* [0, 1), 53 random bits */
double lu_rng_uniform(lu_rng *r, double lo, double hi); /* [lo, hi) */
double lu_rng_normal(lu_rng *r);        /* N(0, 1), Box-Muller (one value per two uniforms) */
/* Uniform integer in [lo, hi] (inclusive, unbiased); lo > hi is clamped to lo. */
int64_t lu_rng_int(lu_rng *r, int64_t lo, int64_t hi);

/* State as seven 32-bit words: key[2], ctr[4], used. Restore recomputes the current block. */
void lu_rng_save(const lu_rng *r, uint32_t state[LU_RNG_STATE_WORDS]);
lu_status lu_rng_restore(lu_rng *r, const uint32_t state[LU_RNG_STATE_WORDS]);

#endif
