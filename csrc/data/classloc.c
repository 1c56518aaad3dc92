/* Foreground location sampling (see classloc.h). */
#include "data/classloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mt19937.h"

#define LBL(v) ((int)(v) + 32768)

lu_status lu_class_locations(const int16_t *seg, const int64_t d[3], const int32_t *class_labels,
                             const int32_t *class_off, const int32_t *class_len, int nclasses, uint32_t seed,
                             lu_class_locs *out) {
  int64_t n = d[0] * d[1] * d[2];
  for (int k = 0; k < nclasses; k++) out[k] = (lu_class_locs){0, NULL};
  int64_t *count = calloc(65536, sizeof(int64_t)), *start = calloc(65536, sizeof(int64_t));
  uint8_t *want = calloc(65536, 1);
  if (!count || !start || !want) {
    free(count);
    free(start);
    free(want);
    return lu_fail(LU_ENOMEM, "class locations: no memory");
  }
  for (int k = 0; k < nclasses; k++)
    for (int j = 0; j < class_len[k]; j++) {
      int32_t l = class_labels[class_off[k] + j];
      if (l >= -32768 && l <= 32767) want[LBL(l)] = 1;
    }
  for (int64_t i = 0; i < n; i++)
    if (want[LBL(seg[i])]) count[LBL(seg[i])]++;
  int64_t total_all = 0;
  for (int l = 0; l < 65536; l++) {
    start[l] = total_all;
    total_all += count[l];
  }
  /* flat indices grouped by label (ascending), C order within a label: a stable counting sort */
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(total_all ? total_all : 1));
  int64_t *fill = malloc(sizeof(int64_t) * 65536);
  lu_status st = LU_OK;
  if (!idx || !fill) {
    st = lu_fail(LU_ENOMEM, "class locations: no memory for %lld voxel indices", (long long)total_all);
    goto done;
  }
  memcpy(fill, start, sizeof(int64_t) * 65536);
  for (int64_t i = 0; i < n; i++)
    if (want[LBL(seg[i])]) idx[fill[LBL(seg[i])]++] = i;
  lu_mt19937 rng;
  lu_mt_seed(&rng, seed);
  for (int k = 0; k < nclasses && st == LU_OK; k++) {
    int64_t total = 0;
    for (int j = 0; j < class_len[k]; j++) {
      int32_t l = class_labels[class_off[k] + j];
      if (l >= -32768 && l <= 32767) total += count[LBL(l)];
    }
    if (total == 0) continue;
    int64_t target = total < 10000 ? total : 10000;
    int64_t cov = (int64_t)ceil((double)total * 0.01);
    if (cov > target) target = cov;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)total);
    int32_t *co = malloc(sizeof(int32_t) * 4 * (size_t)target);
    if (!perm || !co) {
      free(perm);
      free(co);
      st = lu_fail(LU_ENOMEM, "class locations: no memory for a permutation of %lld", (long long)total);
      break;
    }
    lu_mt_permutation(&rng, perm, total);
    for (int64_t s = 0; s < target; s++) {
      int64_t off = perm[s], flat = -1;
      for (int j = 0; j < class_len[k]; j++) {
        int32_t l = class_labels[class_off[k] + j];
        if (l < -32768 || l > 32767) continue;
        int64_t c = count[LBL(l)];
        if (off < c) {
          flat = idx[start[LBL(l)] + off];
          break;
        }
        off -= c;
      }
      co[s * 4 + 0] = 0;
      co[s * 4 + 1] = (int32_t)(flat / (d[1] * d[2]));
      co[s * 4 + 2] = (int32_t)((flat / d[2]) % d[1]);
      co[s * 4 + 3] = (int32_t)(flat % d[2]);
    }
    free(perm);
    out[k].n = target;
    out[k].coords = co;
  }
done:
  free(count);
  free(start);
  free(want);
  free(idx);
  free(fill);
  if (st != LU_OK)
    for (int k = 0; k < nclasses; k++) {
      free(out[k].coords);
      out[k] = (lu_class_locs){0, NULL};
    }
  return st;
}
