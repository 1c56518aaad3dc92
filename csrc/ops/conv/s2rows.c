/* Stride-2 forwards over de-interleaved rows (kernels/conv/s2rows.cl): each chunk of input rows is
 * split once into its even and odd columns, so the 3 taps of a stride-2 row read dense vectors. */
#include "ops/conv/base.h"

#include <stdio.h>

#include "cl/pool.h"

/* On CPUs: kernel (1 or 3, 3, 3), stride (1 or 2, 2, 2), pad (k / 2, 1, 1), rows a multiple of 32 wide.
 * In-process A/B against conv_direct: 2-D 256^2-64^2 1.19-1.35x, 32^2 1.08x; 3-D 64^3 and 32^3
 * 1.28-1.41x. Tunable conv.s2rows: 0 never. */
int lu_conv_s2rows_applies(const lu_device *dev, int X, const int *k, const int *s, const int *p) {
  if (!lu_tune_cpu(dev) || (k[0] != 1 && k[0] != 3) || k[1] != 3 || k[2] != 3 || s[1] != 2 || s[2] != 2) return 0;
  if ((s[0] != 1 && s[0] != 2) || p[0] != k[0] / 2 || p[1] != 1 || p[2] != 1 || X % 32 != 0) return 0;
  return lu_tune_or(dev, LU_TUNE_CONV_S2ROWS, 1) != 0;
}

/* y from x by conv_s2rows: 2 output rows per work-item (1 row: 0.73-0.91x, 4: 0.89-1.03x), de-interleaved
 * per chunk of 32 input channels, 8 with 3x3x3 kernels; w (Cout, Cin, k...). */
lu_status lu_conv_s2rows_run(lu_device *dev, const lu_conv_geom *g, cl_mem x, cl_mem w, const lu_tensor *b,
                             cl_mem y) {
  int cob = 16, rg = lu_tune(dev, LU_TUNE_CONV_S2_RG);
  int chunk = lu_tune_or(dev, LU_TUNE_CONV_S2_CICH, g->k[0] == 3 ? 8 : 32);
  char opts[96];
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DRG=%d -DKZ=%d -DSZ=%d", cob, chunk, rg, g->k[0], g->s[0]);
  cl_kernel kp, kk;
  LU_TRY(lu_conv_kernel(dev, "s2_pack", opts, &kp));
  LU_TRY(lu_conv_kernel(dev, "conv_s2rows", opts, &kk));
  cl_mem wp;
  size_t wbytes;
  LU_TRY(lu_conv_pack_launch(dev, kp, "s2_pack", w, g->Cin, g->Cout, cob, (size_t)g->k[0] * 9, -1, &wp, &wbytes));
  lu_status st = lu_conv_kernel_args(kk, "conv_s2rows", x, wp, w, b, y, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ,
                                     g->OY, g->OX);
  size_t gl[3] = {(size_t)g->OX / 16, (size_t)g->OZ * ((g->OY + rg - 1) / rg), (size_t)g->N};
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, "conv_s2rows");
  lu_conv_pack_release(dev, wp, wbytes);
  return st;
}
