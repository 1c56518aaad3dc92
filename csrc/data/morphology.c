#include "data/morphology.h"

#include <stdlib.h>
#include <string.h>

/* out = dilation of in; pre: (X + 1) ints per row of prefix counts, filled here. */
static void dilate(const uint8_t *in, uint8_t *out, int Z, int Y, int X, const int *runs, int nruns, int32_t *pre) {
  size_t rows = (size_t)Z * Y;
  for (size_t r = 0; r < rows; r++) {
    int32_t *p = pre + r * (X + 1);
    const uint8_t *m = in + r * X;
    p[0] = 0;
    for (int x = 0; x < X; x++) p[x + 1] = p[x] + (m[x] != 0);
  }
  memset(out, 0, rows * X);
  for (int z = 0; z < Z; z++)
    for (int y = 0; y < Y; y++) {
      uint8_t *o = out + ((size_t)z * Y + y) * X;
      for (int k = 0; k < nruns; k++) {
        int sz = z + runs[4 * k], sy = y + runs[4 * k + 1], a = runs[4 * k + 2], b = runs[4 * k + 3];
        if (sz < 0 || sz >= Z || sy < 0 || sy >= Y) continue;
        const int32_t *p = pre + ((size_t)sz * Y + sy) * (X + 1);
        if (p[X] == 0) continue;
        for (int x = 0; x < X; x++) {
          int lo = x + a, hi = x + b;
          if (lo < 0) lo = 0;
          if (hi > X - 1) hi = X - 1;
          if (lo <= hi && p[hi + 1] - p[lo] > 0) o[x] = 1;
        }
      }
    }
}

static void complement(uint8_t *m, size_t n) {
  for (size_t i = 0; i < n; i++) m[i] = m[i] ? 0 : 1;
}

static void erode(const uint8_t *in, uint8_t *out, uint8_t *tmp, int Z, int Y, int X, const int *runs, int nruns,
                  int32_t *pre) {
  size_t n = (size_t)Z * Y * X;
  for (size_t i = 0; i < n; i++) tmp[i] = in[i] ? 0 : 1;
  dilate(tmp, out, Z, Y, X, runs, nruns, pre);
  complement(out, n);
}

lu_status lu_morph_binary_op(const uint8_t *mask, uint8_t *out, int Z, int Y, int X, int op, const int *runs,
                             int nruns) {
  if (Z <= 0 || Y <= 0 || X <= 0 || nruns < 0 || op < LU_MORPH_DILATE || op > LU_MORPH_OPEN)
    return lu_fail(LU_EARG, "morph_binary_op: shape {%d, %d, %d}, op %d, %d runs", Z, Y, X, op, nruns);
  size_t n = (size_t)Z * Y * X;
  int32_t *pre = malloc((size_t)Z * Y * (X + 1) * sizeof *pre);
  uint8_t *t1 = calloc(n, 1), *t2 = calloc(n, 1);
  if (!pre || !t1 || !t2) {
    free(pre); free(t1); free(t2);
    return lu_fail(LU_ENOMEM, "morph_binary_op: shape {%d, %d, %d}", Z, Y, X);
  }
  switch (op) {
  case LU_MORPH_DILATE: dilate(mask, out, Z, Y, X, runs, nruns, pre); break;
  case LU_MORPH_ERODE: erode(mask, out, t1, Z, Y, X, runs, nruns, pre); break;
  case LU_MORPH_CLOSE:
    dilate(mask, t2, Z, Y, X, runs, nruns, pre);
    erode(t2, out, t1, Z, Y, X, runs, nruns, pre);
    break;
  default:
    erode(mask, t2, t1, Z, Y, X, runs, nruns, pre);
    dilate(t2, out, Z, Y, X, runs, nruns, pre);
    break;
  }
  free(pre); free(t1); free(t2);
  return LU_OK;
}
