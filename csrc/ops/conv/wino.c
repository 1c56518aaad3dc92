/* Winograd convolutions (kernels/conv/wino.cl): 3x3, 1x3x3 and 3x3x3 stride-1 convolutions and their
 * backward data on CPUs (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Three
 * kernels, by how many axes they transform: conv_wino F(2,3) along x (4 multiplies per 2 outputs of a kernel
 * row instead of 6), conv_wino_tile F(2x2) over (y, x) or F(2x2x2) over (z, y, x), conv_wino_t4 F(4x4) over
 * (y, x) with the kernel planes summed directly; wino_tile_mode picks one per layer. */
#include "ops/conv/base.h"

#include <stdio.h>
#include <string.h>

#include "cl/pool.h"
#include "ops/ops.h"

/* conv.wino_tile for a pass of a kz x 3 x 3 kernel over rows of X, Cin -> Cout channels: 0 rows (conv_wino),
 * 1 F(2x2) (y, x) tiles, 2 F(2x2x2) (z, y, x) tiles where the kernel has 3 planes (else as 1), 3 F(4x4) (y, x)
 * tiles with the kernel planes summed directly. Auto, for 8 or more input channels: F(4x4) for rows of at
 * least 48 (64 outputs per work-item; 56 of 64 live at 56) and for rows of 24..32 (two blocks of 4 rows side
 * by side in a vector) and 2-D rows of 14..16 (four blocks), the 2x2(x2) tiles for rows of 33..47 (32 per
 * work-item; 2-D ones with large weights in blocks of rows, wino_tile_run); other rows stay on conv_wino or
 * the direct kernels. Side-by-side blocks against what ran before (in-process, best of 6, 2d plan layers
 * at 512 channels): 32^2 F(4x4) 13.5 ms per layer against 22.8 ms on F(2x2), 16^2 5.2 ms against 10 ms on
 * conv_rows; ct3d plan's 256 -> 256 / 512 -> 256 channels at 7x24x28 63 / 88 ms against 82 / 217 ms on
 * F(2x2x2); 3-D 12x14 rows and 2-D 12^2 and 8^2 ones lost to conv_cvec. Against conv_wino (in-process,
 * 2 cores, best of 6): F(4x4) 1.6x on 2-D 32 and 64 channels at 512^2 and 256^2, 1.3x at 128^2, 1.8-2.2x on
 * 3-D 32..128 channels at 56..224-wide rows
 * (F(2x2x2) there 1.55-1.8x); F(2x2x2) 1.4x on the ct3d plan's 256..512 channels at 7x24x28. In the 2d plan's
 * forward, 512 channels at 64^2 on F(4x4) with 8 row blocks per work-item: 21.6 ms against 35 ms; at 32^2
 * without the blocks every tile kind lost (F(4x4) leaves half its lanes past the row). One input channel:
 * 0.64x (the transform is then most of the work). */
static int wino_tile_mode(const lu_device *dev, int Cin, int Cout, int X, int kz) {
  int t = lu_tune(dev, LU_TUNE_CONV_WINO_TILE);
  if (t != LU_TUNE_AUTO) return t > 0 ? t : 0;
  if (Cin < 8) return 0;
  if (X >= 48 || (X >= 24 && X <= 32)) return 3;
  if (X >= 24) return 2;
  if (kz == 1 && X >= 14 && X <= 16) return 3;
  return 0;
}

/* conv_wino (kernels/conv/wino.cl, Winograd F(2,3) along x) instead of the direct kernels: on CPUs, for
 * 3x3, 1x3x3 and 3x3x3 stride-1 pad-1 passes, forward and backward data as a conv of dy, over rows at
 * least 32 wide and a multiple of 16. In-process A/B against conv_rows / conv_direct:
 * 2-D forward 1.3-1.5x on 256^2-64^2 layers, 1.06-1.13x at 32^2, 1.15x at 48^2, backward data 1.6-1.9x,
 * 1.07-1.24x at 32^2; 3-D 64^3 and 32^3 forward 1.33-1.68x, backward data 1.35-1.47x, 16^3 1.12-1.26x.
 * Tunable conv.wino: 0 never. */
int lu_conv_wino_applies(const lu_device *dev, int Cin, int Cout, int X, const int *k, const int *s, const int *p) {
  if (!lu_tune_cpu(dev) || (k[0] != 1 && k[0] != 3) || k[1] != 3 || k[2] != 3 || s[0] != 1 || s[1] != 1 || s[2] != 1)
    return 0;
  if (p[0] != k[0] / 2 || p[1] != 1 || p[2] != 1 || Cout < 4) return 0;
  /* 2-D rows from 1 or 2 input channels: the transforms are most of the work (2d plan's first conv,
   * 1 -> 32 at 512^2: 4.4 ms against 2.5 ms on the direct kernels; 2 -> 32 4.1 against 3.2; 3-D 1 -> 32
   * at 56x192x224 and 2-D 4 -> 32 at 256^2 stay: 0.96x and 0.87x there) */
  if (k[0] == 1 && Cin <= 2) return lu_tune_or(dev, LU_TUNE_CONV_WINO, 0) != 0;
  if (wino_tile_mode(dev, Cin, Cout, X, k[0]) > 0) return lu_tune_or(dev, LU_TUNE_CONV_WINO, 1) != 0;
  if (X % 16 != 0) return 0;
  /* rows of 16 (two to a vector) gained on 3-D 16^3 layers (1.12-1.26x) but not on 2-D 16^2 ones (0.86-1.04x
   * against conv_rows with its row groups and unpacked weights) */
  if (X == 16 && k[0] != 3) return 0;
  return lu_tune_or(dev, LU_TUNE_CONV_WINO, 1) != 0;
}

/* Large weights over a small map (more than 64K channel pairs: every work-item streams all transformed
 * weights once per chunk, 2.4 MB per 1K pairs of 2x2 tiles): `rows`-row blocks per work-item, up to max_rb
 * of them, so that a row range streams them once (each slice reused from L1 across its blocks), and the
 * channel blocks of a row range split between work-items until there are 8 (conv.wino_t4_rb and
 * conv.wino_t4_cbg force both). items_x: work-items over x, planes and images. */
static void tile_blocking(const lu_device *dev, int max_rb, int rows, int Y, size_t items_x, int ncb, int *rb,
                          int *cbg) {
  int r = lu_tune_or(dev, LU_TUNE_CONV_WINO_T4_RB, max_rb);
  int blocks = (Y + rows - 1) / rows;
  *rb = r > blocks ? blocks : r < 1 ? 1 : r;
  size_t items = items_x * (size_t)((Y + rows * *rb - 1) / (rows * *rb));
  int g = lu_tune_or(dev, LU_TUNE_CONV_WINO_T4_CBG, items >= 8 ? 1 : (int)((8 + items - 1) / items));
  *cbg = g > ncb ? ncb : g < 1 ? 1 : g;
}

/* Packs w with the pass's pack kernel (`floats` per channel pair), runs kname over gl, gives the pack back. */
static lu_status wino_launch(lu_device *dev, const char *pack, const char *kname, const char *opts, size_t floats,
                             const size_t gl[3], int Cin, int Cout, int cob, int Z, int Y, int X, cl_mem x, cl_mem w,
                             int flip, const lu_tensor *b, cl_mem y) {
  cl_kernel kp, kk;
  LU_TRY(lu_conv_kernel(dev, pack, opts, &kp));
  LU_TRY(lu_conv_kernel(dev, kname, opts, &kk));
  cl_mem u;
  size_t ubytes;
  LU_TRY(lu_conv_pack_launch(dev, kp, pack, w, Cin, Cout, cob, floats, flip, &u, &ubytes));
  lu_status st = lu_conv_kernel_args(kk, kname, x, u, w, b, y, Cin, Cout, Z, Y, X, Z, Y, X);
  if (st == LU_OK) st = lu_launch_by_rows(dev, kk, gl, kname);
  lu_conv_pack_release(dev, u, ubytes);
  return st;
}

/* conv_wino_tile: 2x2 (y, x) tiles, or with wz 2x2x2 (z, y, x) tiles of a 3x3x3 kernel, 32 outputs of a
 * row per work-item as conv_wino's. Blocks of row pairs only for 2-D tiles (2d plan, 512 channels at 32^2:
 * 29 ms on conv_wino -> 18 ms); the ct3d plan's 512 -> 256 channels at 7x24x28 lost with them (81 -> 101 ms):
 * its planes already share each work-item's weights, and the chunks shrink. */
static lu_status wino_tile_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int kz, int wz,
                               cl_mem x, cl_mem w, int flip, const lu_tensor *b, cl_mem y) {
  int cob = lu_tune(dev, LU_TUNE_CONV_WINO_TILE_COB), ncb = (Cout + cob - 1) / cob, rb, cbg;
  int big = !wz && (size_t)Cin * Cout > 65536;
  size_t items_x = (size_t)((X + 31) / 32) * ((Z + wz) / (wz + 1)) * N;
  tile_blocking(dev, big ? 16 : 1, 2, Y, items_x, ncb, &rb, &cbg);
  int chunk_rule = rb > 1 ? (wz || kz == 3 ? 4 : 8) : wz ? 16 : kz == 3 ? 8 : 32;
  int chunk = lu_tune_or(dev, LU_TUNE_CONV_WINO_TILE_CICH, chunk_rule);
  char opts[120];
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DKZ=%d -DWZ=%d -DTRB=%d -DTCBG=%d", cob, chunk, kz, wz, rb, cbg);
  size_t rows_z = (size_t)((Z + wz) / (wz + 1)) * ((Y + 2 * rb - 1) / (2 * rb));
  size_t gl[3] = {(size_t)(X + 31) / 32, rows_z, (size_t)N * cbg};
  return wino_launch(dev, "wino_tile_pack", "conv_wino_tile", opts, (size_t)(wz ? 4 : kz) * 16, gl, Cin, Cout, cob,
                     Z, Y, X, x, w, flip, b, y);
}

#define T4_COMPONENTS 36 /* a 6x6 tile's transformed values: per channel, of U and of each lane's V */

/* conv_wino_t4: F(4x4, 3x3) tiles over (y, x), kz kernel planes summed directly; 64 outputs of 4 rows per
 * work-item, up to 8 blocks of them for large weights (2d plan, 512 -> 256 channels at 64^2: 35 ms on
 * conv_wino -> 19.6 ms). */
static lu_status wino_t4_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int kz, cl_mem x,
                             cl_mem w, int flip, const lu_tensor *b, cl_mem y) {
  int cob = lu_tune(dev, LU_TUNE_CONV_WINO_TILE_COB), ncb = (Cout + cob - 1) / cob, rb, cbg;
  int tg = X <= 16 ? 4 : X <= 32 ? 2 : 1, brows = 4 * tg;
  tile_blocking(dev, (size_t)Cin * Cout > 65536 ? 8 : 1, brows, Y, (size_t)((X + 63) / 64) * Z * N, ncb, &rb, &cbg);
  /* 2-D full rows: chunks of 64 channels (fewer passes over y for the partial sums; in-process, 2d plan
   * layers: 64 -> 64 at 256^2 11.8 -> 9.4 ms, 128 -> 128 at 128^2 9.5 -> 8.4, 512 -> 256 at 64^2 with its 8
   * row blocks 25.1 -> 21.4, 256 -> 128 at 128^2 18.0 -> 15.7, against 16 or 8) */
  int chunk_rule = tg > 1 ? 16 : kz == 1 ? 64 : rb > 1 ? 4 : 16;
  /* a work-group (one row of work-items) keeps its transformed inputs on a PoCL worker's stack: at most
   * 2 MiB of them (rows of 1024 with 8 row blocks and chunks of 64 overflowed it) */
  size_t per_channel = (size_t)((X + 63) / 64) * rb * kz * T4_COMPONENTS * 16 * sizeof(float);
  while (chunk_rule > 1 && per_channel * (size_t)chunk_rule > ((size_t)2 << 20)) chunk_rule /= 2;
  int chunk = lu_tune_or(dev, LU_TUNE_CONV_WINO_TILE_CICH, chunk_rule);
  char opts[120];
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DKZ=%d -DRB=%d -DCBG=%d -DTG=%d", cob, chunk, kz, rb, cbg, tg);
  size_t gl[3] = {(size_t)(X + 63) / 64, (size_t)Z * ((Y + brows * rb - 1) / (brows * rb)), (size_t)N * cbg};
  return wino_launch(dev, "wino_t4_pack", "conv_wino_t4", opts, (size_t)kz * T4_COMPONENTS, gl, Cin, Cout, cob, Z, Y, X, x, w,
                     flip, b, y);
}

/* y (N, Cout, Z, Y, X) from x (N, Cin, Z, Y, X) by conv_wino with kz kernel planes: 2 rows per work-item
 * (1.13-1.22x over 1: the transformed rows and each slice of U shared; rows of 16: 2 pairs of rows, each
 * pair in one vector), transforms per chunk of 32 input channels, 8 with 3 planes (1.16-1.21x over 16:
 * 12 rows per channel); w as lu_conv_direct_run's (flip: backward data). */
lu_status lu_conv_wino_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int kz, cl_mem x,
                          cl_mem w, int flip, const lu_tensor *b, cl_mem y) {
  int tile = wino_tile_mode(dev, Cin, Cout, X, kz);
  if (tile == 3) return wino_t4_run(dev, N, Cin, Cout, Z, Y, X, kz, x, w, flip, b, y);
  if (tile > 0) return wino_tile_run(dev, N, Cin, Cout, Z, Y, X, kz, tile >= 2 && kz == 3, x, w, flip, b, y);
  int cob = lu_tune(dev, LU_TUNE_CONV_WINO_COB);
  char opts[80];
  int rg = lu_tune(dev, LU_TUNE_CONV_WINO_RG);
  int chunk = lu_tune_or(dev, LU_TUNE_CONV_WINO_CICH, kz == 3 ? 8 : 32);
  int pair = X == 16;
  snprintf(opts, sizeof opts, "-DCOB=%d -DCICH=%d -DRG=%d -DKZ=%d -DPAIR=%d", cob, chunk, rg, kz, pair);
  int wrows = rg * (pair + 1);
  size_t gl[3] = {(size_t)(X + 31) / 32, (size_t)Z * ((Y + wrows - 1) / wrows), (size_t)N};
  return wino_launch(dev, "wino_pack", "conv_wino", opts, (size_t)kz * 12, gl, Cin, Cout, cob, Z, Y, X, x, w, flip, b,
                     y);
}
