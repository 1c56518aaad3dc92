/* MT19937 with numpy's legacy RandomState behaviour, for nnU-Net parity where nnU-Net draws from a
 * seeded RandomState (5-fold splits, 80:20 splits, foreground location sampling). */
#ifndef LU_MT19937_H
#define LU_MT19937_H

#include <stdint.h>

#include "core/status.h"

#define LU_MT_N 624

typedef struct lu_mt19937 {
  uint32_t mt[LU_MT_N];
  int pos;
} lu_mt19937;

/* RandomState(seed) for an integer seed: init_genrand(seed). */
void lu_mt_seed(lu_mt19937 *m, uint32_t seed);
uint32_t lu_mt_next32(lu_mt19937 *m);
uint64_t lu_mt_next64(lu_mt19937 *m);   /* (first << 32) | second, as numpy */
double lu_mt_double(lu_mt19937 *m);     /* random_sample(): 53-bit from two draws, as numpy */
/* numpy random_interval(max): uniform in [0, max] by masked rejection. */
uint64_t lu_mt_interval(lu_mt19937 *m, uint64_t max);
/* RandomState.shuffle of a 1-D array: Fisher-Yates from the end with random_interval. */
void lu_mt_shuffle(lu_mt19937 *m, int64_t *a, int64_t n);
/* RandomState.permutation(n) into a (n entries). */
void lu_mt_permutation(lu_mt19937 *m, int64_t *a, int64_t n);

#endif
