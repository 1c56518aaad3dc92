/* Implicit-GEMM convolutions (kernels/conv/igemm.cl): the GPU strategy for every pass of a convolution
 * and of a transposed convolution, and the only one that reads and writes float16 activations (mixed
 * precision). Each pass is one GEMM whose operands are gathered from the tensors tile by tile; the
 * weight gradients are split over their long reduction and summed by a second kernel.
 *
 * The micro-kernel is chosen per device (tunable conv.mma): float FMA tiles anywhere; tensor-core
 * fragments through inline PTX mma.sync where the probe below ran them correctly (f16 for float16
 * activations, tf32 for float32); the same fragments emulated in plain OpenCL (conv.mma = emulate) so
 * that PoCL checks their indexing and rounding in CI. */
#include "ops/conv/base.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cl/pool.h"
#include "ops/ops.h"

#define IGEMM_FILE "conv/igemm.cl"

/* CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV (cl_nv_device_attribute_query) */
#define LU_CL_CC_MAJOR_NV 0x4000

/* Kernel MMA values (igemm.cl) */
enum { K_FMA = 0, K_EMU_F16 = 1, K_EMU_TF32 = 2, K_PTX_F16 = 3, K_PTX_TF32 = 4 };
static const char *const KERNEL_NAMES[] = {"fma", "emu16", "emu32", "ptx16", "ptx32"};
static const char *const PASS_NAMES[] = {"fwd", "dgrad", "wgrad", "tfwd", "tdgrad", "twgrad"};

/* The work-group tiles, in the order of conv.igemm_tile's value names (cl/tunables.h): M x N outputs, K-deep
 * slices, and for the MMA kernels the warp grid (each warp (M / warps_m) x (N / warps_n), whole 16 x 8
 * fragments); the FMA kernel always runs 16 x 16 work-items of (M / 16) x (N / 16). The second eight are the
 * first eight with their f16 fragments read by ldmatrix ("...l"); a kernel without f16 fragments runs the
 * twin without it. */
typedef struct {
  int bm, bn, bk, warps_m, warps_n, ldsm;
} igemm_tile;
static const igemm_tile TILES[] = {
    {64, 64, 16, 2, 2, 0},  {128, 64, 16, 4, 2, 0}, {64, 128, 16, 2, 4, 0}, {128, 128, 16, 2, 4, 0},
    {32, 128, 16, 1, 4, 0}, {32, 64, 16, 1, 2, 0},  {64, 64, 32, 2, 2, 0},  {128, 128, 32, 2, 4, 0},
    {64, 64, 16, 2, 2, 1},  {128, 64, 16, 4, 2, 1}, {64, 128, 16, 2, 4, 1}, {128, 128, 16, 2, 4, 1},
    {32, 128, 16, 1, 4, 1}, {32, 64, 16, 1, 2, 1},  {64, 64, 32, 2, 2, 1},  {128, 128, 32, 2, 4, 1},
};
#define NTILES ((int)(sizeof TILES / sizeof TILES[0]))
#define NPLAIN (NTILES / 2) /* tile i + NPLAIN is tile i with ldmatrix */
enum { TILE_64x64 = 0, TILE_32x128 = 4 };

/* Local memory of one work-group (igemm.cl's As, Bs and the emulation's exchange). */
static size_t tile_local_bytes(int tile, int mma) {
  const igemm_tile *t = &TILES[tile];
  if (mma == K_FMA) return 2 * (size_t)t->bk * (size_t)(t->bm + t->bn) * sizeof(float);
  size_t elem = mma == K_EMU_F16 || mma == K_PTX_F16 ? 2 : 4;
  size_t bytes = 2 * (size_t)(t->bm + t->bn) * (size_t)(t->bk + 8) * elem;
  if (mma == K_EMU_F16 || mma == K_EMU_TF32) bytes += (size_t)t->warps_m * (size_t)t->warps_n * 32 * 6 * 4;
  return bytes;
}

static int tile_fits(const lu_device *dev, int tile, int mma) {
  return tile >= 0 && tile < NTILES && (!dev->local_mem || tile_local_bytes(tile, mma) <= dev->local_mem);
}

/* Whether a kernel has f16 fragments, the only ones ldmatrix loads. */
static int f16_fragments(int mma) { return mma == K_EMU_F16 || mma == K_PTX_F16; }

/* The tile a kernel runs for the tile asked for: an ldmatrix tile's twin where the kernel has no f16
 * fragments, or where the device's ldmatrix probe failed. */
static int runnable_tile(lu_device *dev, int tile, int mma) {
  if (tile < NPLAIN || tile >= NTILES) return tile;
  if (mma == K_EMU_F16 || (mma == K_PTX_F16 && lu_conv_ldmatrix_available(dev))) return tile;
  return tile - NPLAIN;
}

int lu_conv_igemm_applies(const lu_device *dev, const lu_tensor *a, const lu_tensor *b) {
  int v = lu_tune(dev, LU_TUNE_CONV_IGEMM);
  if (v != LU_TUNE_AUTO) return v != 0;
  return lu_conv_any_half(a, b) && !lu_tune_cpu(dev);
}

/* ---- the tensor-core probe ---- */

#define MAX_PROBED 64
static signed char probed[MAX_PROBED][3]; /* per device index, [f16, tf32, f16 + ldmatrix]: 0 unknown, 1 works, -1 not */

static int nvidia_sm80(const lu_device *dev) {
  if (!dev->is_gpu || !strstr(dev->vendor, "NVIDIA")) return 0;
  cl_uint major = 0;
  if (clGetDeviceInfo(dev->id, LU_CL_CC_MAJOR_NV, sizeof major, &major, NULL) != CL_SUCCESS) return 0;
  return major >= 8;
}

/* The x-side operand: one tensor, or the channel concatenation of x (c1 channels) and x2 read in place. */
typedef struct {
  cl_mem x, x2, dx, dx2;
  int c1; /* 0: one tensor */
} xside;

static lu_status run_pass(lu_device *dev, int pass, int mma, int tile, const lu_conv_geom *g, const xside *xs,
                          int xh, cl_mem dy, int yh, cl_mem w, cl_mem b, cl_mem y, cl_mem dw, int accumulate);

/* Runs a 64 x 64 x 32 pointwise conv of small integers (exact in f16 and tf32) through the PTX kernel on this
 * tile and compares every output with its exact value: a driver that rejects the inline PTX, or a fragment
 * layout that differs from the ISA's, rules the path out. */
static int probe(lu_device *dev, int f16, int tile) {
  enum { C = 32, O = 64, P = 64 };
  lu_conv_geom g;
  memset(&g, 0, sizeof g);
  g.N = 1; g.Cin = C; g.Cout = O;
  g.Z = g.OZ = 1; g.Y = g.OY = 1; g.X = g.OX = P;
  for (int i = 0; i < 3; i++) { g.k[i] = 1; g.s[i] = 1; g.p[i] = 0; }
  g.S = g.OS = P; g.kv = 1;
  float xh[C * P], wh[O * C], yh[O * P];
  uint16_t x16[C * P];
  for (int i = 0; i < C * P; i++) { xh[i] = (float)((i * 7) % 5 - 2); x16[i] = lu_float_to_half(xh[i]); }
  for (int i = 0; i < O * C; i++) wh[i] = (float)((i * 3) % 7 - 3);
  cl_int e;
  cl_mem mx = clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, f16 ? sizeof x16 : sizeof xh,
                             f16 ? (void *)x16 : (void *)xh, &e);
  cl_mem mw = e == CL_SUCCESS ? clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof wh, wh, &e) : NULL;
  cl_mem my = e == CL_SUCCESS ? clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE, sizeof yh, NULL, &e) : NULL;
  int ok = 0;
  if (e == CL_SUCCESS &&
      run_pass(dev, LU_IGEMM_FWD, f16 ? K_PTX_F16 : K_PTX_TF32, tile, &g, &(xside){mx, NULL, NULL, NULL, 0}, f16,
               NULL, 0, mw, NULL, my, NULL, 0) == LU_OK &&
      clEnqueueReadBuffer(dev->queue, my, CL_TRUE, 0, sizeof yh, yh, 0, NULL, NULL) == CL_SUCCESS) {
    ok = 1;
    for (int o = 0; o < O && ok; o++)
      for (int p = 0; p < P && ok; p++) {
        float want = 0;
        for (int c = 0; c < C; c++) want += wh[o * C + c] * xh[c * P + p];
        ok = yh[o * P + p] == want;
      }
  }
  lu_clear_error(); /* a failed probe is an answer, not an error */
  if (my) clReleaseMemObject(my);
  if (mw) clReleaseMemObject(mw);
  if (mx) clReleaseMemObject(mx);
  return ok;
}

int lu_conv_mma_available(lu_device *dev, int f16) {
  if (dev->index < 0 || dev->index >= MAX_PROBED || !nvidia_sm80(dev)) return 0;
  signed char *p = &probed[dev->index][f16 ? 0 : 1];
  if (!*p) *p = probe(dev, f16, TILE_64x64) ? 1 : -1;
  return *p > 0;
}

/* ldmatrix is probed on its own (the 64 x 64 tile with it), after the f16 mma it feeds. */
int lu_conv_ldmatrix_available(lu_device *dev) {
  if (!lu_conv_mma_available(dev, 1)) return 0;
  signed char *p = &probed[dev->index][2];
  if (!*p) *p = probe(dev, 1, TILE_64x64 + NPLAIN) ? 1 : -1;
  return *p > 0;
}

/* The kernel's MMA value for this device and precision (tunable conv.mma: fma | emulate | ptx). */
static int pick_mma(lu_device *dev, int f16) {
  int v = lu_tune(dev, LU_TUNE_CONV_MMA);
  if (v == LU_TUNE_AUTO) v = lu_conv_mma_available(dev, f16) ? 2 : 0;
  if (v == 1) return f16 ? K_EMU_F16 : K_EMU_TF32;
  if (v == 2) return f16 ? K_PTX_F16 : K_PTX_TF32;
  return K_FMA;
}

/* ---- recording the GEMMs a network runs (lunet tune --igemm): process-wide, for tuning runs ---- */

typedef struct {
  int pass, mma, tile, xh, yh, bias; /* tile: the one the call ran with */
  int64_t M;
  lu_conv_geom g;
  char key[LU_TUNE_KEY_MAX];
} recorded_gemm;
#define MAX_RECORDED 256
static struct {
  int on, n;
  recorded_gemm v[MAX_RECORDED];
} recording;

/* Keeps the first call of each key (the tile is chosen per key). */
static void record(const char *key, int pass, int mma, int tile, int xh, int yh, int bias, const lu_conv_geom *g,
                   int64_t M) {
  for (int i = 0; i < recording.n; i++)
    if (strcmp(recording.v[i].key, key) == 0) return;
  if (recording.n == MAX_RECORDED) return;
  recorded_gemm *r = &recording.v[recording.n++];
  r->pass = pass; r->mma = mma; r->tile = tile; r->xh = xh; r->yh = yh; r->bias = bias; r->M = M; r->g = *g;
  snprintf(r->key, sizeof r->key, "%s", key);
}

/* ---- one pass ---- */

static void gemm_dims(int pass, const lu_conv_geom *g, int64_t *M, int64_t *N, int64_t *K) {
  int64_t S = g->S, OS = g->OS, kv = g->kv, nb = g->N;
  switch (pass) {
  case LU_IGEMM_FWD: *M = g->Cout; *N = nb * OS; *K = (int64_t)g->Cin * kv; break;
  case LU_IGEMM_DGRAD: *M = g->Cin; *N = nb * S; *K = (int64_t)g->Cout * kv; break;
  case LU_IGEMM_WGRAD: *M = g->Cout; *N = (int64_t)g->Cin * kv; *K = nb * OS; break;
  case LU_IGEMM_T_FWD: *M = (int64_t)g->Cout * kv; *N = nb * S; *K = g->Cin; break;
  case LU_IGEMM_T_DGRAD: *M = g->Cin; *N = nb * S; *K = (int64_t)g->Cout * kv; break;
  default: *M = g->Cin; *N = (int64_t)g->Cout * kv; *K = nb * S; break;
  }
}

/* The key of a GEMM for the per-shape tile: <pass>.<kernel>-<x storage><y storage>.<M>x<N>x<K>. */
static void tile_key(char *buf, size_t n, int pass, int mma, int xh, int yh, int64_t M, int64_t N, int64_t K) {
  snprintf(buf, n, "%s.%s-%c%c.%lldx%lldx%lld", PASS_NAMES[pass], KERNEL_NAMES[mma], xh ? 'h' : 'f', yh ? 'h' : 'f',
           (long long)M, (long long)N, (long long)K);
}

/* The rule's tile: 32 x 128 where M is at most 32 (nnU-Net's 32-channel stages would leave half of a 64-row
 * tile idle), 64 x 64 otherwise. */
static int rule_tile(int64_t M) { return M <= 32 ? TILE_32x128 : TILE_64x64; }

/* The tile of the GEMM with this key: conv.igemm_tile for the key (lunet tune --igemm), else the rule; a tile
 * whose local memory the device lacks falls back to 64 x 64. */
static int pick_tile(lu_device *dev, const char *key, int mma, int64_t M) {
  int v = lu_tune_keyed(dev, LU_TUNE_CONV_IGEMM_TILE, key);
  if (v == LU_TUNE_AUTO) v = rule_tile(M);
  v = runnable_tile(dev, v, mma);
  return tile_fits(dev, v, mma) ? v : TILE_64x64;
}

/* Splits of a weight gradient's reduction: enough work-groups for about four per compute unit, each split
 * at least 256 deep. */
static int wgrad_splits(const lu_device *dev, const igemm_tile *t, int64_t M, int64_t N, int64_t K) {
  int64_t tiles = ((M + t->bm - 1) / t->bm) * ((N + t->bn - 1) / t->bn);
  int64_t want = 4 * (int64_t)(dev->compute_units ? dev->compute_units : 1);
  int64_t s = (want + tiles - 1) / tiles, most = K / 256;
  if (s > most) s = most;
  if (s > 256) s = 256;
  return s < 1 ? 1 : (int)s;
}

static lu_status run_pass(lu_device *dev, int pass, int mma, int tile, const lu_conv_geom *g, const xside *xs,
                          int xh, cl_mem dy, int yh, cl_mem w, cl_mem b, cl_mem y, cl_mem dw, int accumulate) {
  cl_mem x = xs->x, dx = xs->dx;
  int64_t M, N, K;
  gemm_dims(pass, g, &M, &N, &K);
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
    return lu_fail(LU_EUNSUPPORTED, "conv igemm: GEMM of %lld x %lld x %lld exceeds 32-bit indexing", (long long)M,
                   (long long)N, (long long)K);
  if (!tile_fits(dev, tile, mma))
    return lu_fail(LU_EUNSUPPORTED, "conv igemm: tile %d needs %zu bytes of local memory, %s has %llu", tile,
                   tile_local_bytes(tile < 0 || tile >= NTILES ? 0 : tile, mma), dev->name,
                   (unsigned long long)dev->local_mem);
  const igemm_tile *t = &TILES[tile];
  char opts[320];
  if (t->ldsm && !f16_fragments(mma))
    return lu_fail(LU_EUNSUPPORTED, "conv igemm: tile %d reads f16 fragments by ldmatrix, kernel %s has none", tile,
                   KERNEL_NAMES[mma]);
  /* (-DLDSM only when set: the programs without it keep their cache entries) */
  int n = snprintf(opts, sizeof opts, "-DPASS=%d -DXH=%d -DYH=%d -DMMA=%d -DBK=%d -DXCAT=%d%s", pass, xh, yh, mma,
                   t->bk, xs->c1 > 0, t->ldsm ? " -DLDSM=1" : "");
  if (mma == K_FMA) n += snprintf(opts + n, sizeof opts - (size_t)n, " -DBM=%d -DBN=%d", t->bm, t->bn);
  else
    n += snprintf(opts + n, sizeof opts - (size_t)n, " -DWARPS_M=%d -DWARPS_N=%d -DFM=%d -DFN=%d", t->warps_m,
                  t->warps_n, t->bm / (16 * t->warps_m), t->bn / (8 * t->warps_n));
  /* the geometry as build options (constant-folded index arithmetic) on GPUs, as arguments where each
   * compile is expensive (PoCL: one program per pass for every geometry); tunable conv.igemm_fixed */
  if (lu_tune_or(dev, LU_TUNE_CONV_IGEMM_FIXED, dev->is_gpu) != 0)
    snprintf(opts + n, sizeof opts - (size_t)n, " -DGEOM_FIXED -DKZ=%d -DKY=%d -DKX=%d -DSZ=%d -DSY=%d -DSX=%d "
             "-DPZ=%d -DPY=%d -DPX=%d", g->k[0], g->k[1], g->k[2], g->s[0], g->s[1], g->s[2], g->p[0], g->p[1],
             g->p[2]);
  cl_kernel k;
  LU_TRY(lu_kernel_get(dev, IGEMM_FILE, "igemm", opts, &k));
  int wg = mma == K_FMA ? 256 : 32 * t->warps_m * t->warps_n;
  int wgrad = pass == LU_IGEMM_WGRAD || pass == LU_IGEMM_T_WGRAD;
  int splits = wgrad ? wgrad_splits(dev, t, M, N, K) : 1;
  int kchunk = (int)((K + splits - 1) / splits);
  kchunk = (kchunk + t->bk - 1) / t->bk * t->bk;
  splits = (int)((K + kchunk - 1) / kchunk);
  if (splits < 1) splits = 1;
  cl_mem part = dw;
  size_t pbytes = 0;
  if (wgrad && splits > 1) {
    pbytes = (size_t)splits * (size_t)M * (size_t)N * sizeof(float);
    LU_TRY(lu_buffer_alloc_for(dev, pbytes, "conv igemm weight-gradient partial sums", &part));
  }
  /* unused pointer arguments get a live buffer of the call (the kernel never touches them) */
  cl_mem any = w ? w : x ? x : dy;
  cl_mem ax = x ? x : any, ady = dy ? dy : any, aw = w ? w : any, ab = b ? b : any, adx = dx ? dx : any,
         ay = y ? y : any, ap = part ? part : any, ax2 = xs->x2 ? xs->x2 : any, adx2 = xs->dx2 ? xs->dx2 : any;
  int has_bias = b != NULL, acc = wgrad && splits == 1 ? accumulate : 0;
  int iargs[] = {has_bias, acc, g->N, g->Cin, g->Cout, g->Z, g->Y, g->X, g->OZ, g->OY, g->OX, (int)M, (int)N, (int)K,
                 kchunk, g->k[0], g->k[1], g->k[2], g->s[0], g->s[1], g->s[2], g->p[0], g->p[1], g->p[2]};
  int c1 = xs->c1;
  cl_int e = LU_ARG(k, 0, ax) | LU_ARG(k, 1, ady) | LU_ARG(k, 2, aw) | LU_ARG(k, 3, ab) | LU_ARG(k, 4, adx) |
             LU_ARG(k, 5, ay) | LU_ARG(k, 6, ap) | LU_ARG(k, 7, ax2) | LU_ARG(k, 8, adx2) | LU_ARG(k, 9, c1);
  for (int i = 0; i < (int)(sizeof iargs / sizeof iargs[0]); i++) e |= LU_ARG(k, 10 + i, iargs[i]);
  lu_status st = e == CL_SUCCESS ? LU_OK : lu_fail(LU_ECL, "%s (conv igemm args)", lu_cl_errname(e));
  size_t gl[3] = {(size_t)((N + t->bn - 1) / t->bn) * (size_t)wg, (size_t)((M + t->bm - 1) / t->bm),
                  (size_t)splits},
         lo[3] = {(size_t)wg, 1, 1};
  if (st == LU_OK && M > 0 && N > 0) st = lu_launch(dev, k, 3, gl, lo, "conv igemm");
  if (st == LU_OK && wgrad && splits > 1) {
    cl_kernel kr;
    st = lu_kernel_get(dev, IGEMM_FILE, "igemm_reduce", opts, &kr);
    int mn = (int)(M * N), sp = splits, ac = accumulate;
    if (st == LU_OK && (LU_ARG(kr, 0, dw) | LU_ARG(kr, 1, part) | LU_ARG(kr, 2, mn) | LU_ARG(kr, 3, sp) | LU_ARG(kr, 4, ac)))
      st = lu_fail(LU_ECL, "conv igemm reduce args");
    size_t gr = (size_t)mn;
    if (st == LU_OK) st = lu_launch(dev, kr, 1, &gr, NULL, "conv igemm reduce");
  }
  if (pbytes) lu_buffer_release(dev, part, pbytes); /* the in-order queue runs the reduce first */
  return st;
}

lu_status lu_conv_igemm_run(int pass, const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy,
                            const lu_tensor *w, const lu_tensor *b, lu_tensor *dx, lu_tensor *y, lu_tensor *dw,
                            int accumulate) {
  return lu_conv_igemm_run_cat(pass, g, x, NULL, 0, dy, w, b, dx, NULL, y, dw, accumulate);
}

lu_status lu_conv_igemm_run_cat(int pass, const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *x2, int c1,
                                const lu_tensor *dy, const lu_tensor *w, const lu_tensor *b, lu_tensor *dx,
                                lu_tensor *dx2, lu_tensor *y, lu_tensor *dw, int accumulate) {
  const lu_tensor *xs = x ? x : dx, *ys = dy ? dy : y;
  lu_device *dev = (xs ? xs : ys)->dev;
  int xh = lu_conv_any_half(xs, NULL), yh = lu_conv_any_half(ys, NULL);
  /* one MMA precision per call: f16 when what the pass reads is float16, tf32 otherwise */
  int reads_half = pass == LU_IGEMM_FWD || pass == LU_IGEMM_T_FWD       ? xh
                   : pass == LU_IGEMM_DGRAD || pass == LU_IGEMM_T_DGRAD ? yh
                                                                        : xh && yh;
  int mma = pick_mma(dev, reads_half);
  if (c1 > 0 && (pass > LU_IGEMM_WGRAD || c1 >= g->Cin))
    return lu_fail(LU_EARG, "conv igemm: an input of two parts (%d + %d channels) on pass %d", c1, g->Cin - c1, pass);
  int64_t M, N, K;
  gemm_dims(pass, g, &M, &N, &K);
  char key[LU_TUNE_KEY_MAX];
  tile_key(key, sizeof key, pass, mma, xh, yh, M, N, K);
  int tile = pick_tile(dev, key, mma, M);
  if (recording.on) record(key, pass, mma, tile, xh, yh, b != NULL, g, M);
  xside xa = {x ? x->buf : NULL, x2 ? x2->buf : NULL, dx ? dx->buf : NULL, dx2 ? dx2->buf : NULL, c1};
  return run_pass(dev, pass, mma, tile, g, &xa, xh, dy ? dy->buf : NULL, yh, w ? w->buf : NULL, b ? b->buf : NULL,
                  y ? y->buf : NULL, dw ? dw->buf : NULL, accumulate);
}

/* ---- tuning: the GEMMs a network runs, replayed per tile ---- */

lu_status lu_conv_igemm_record(int on) {
  if (on) recording.n = 0;
  recording.on = on != 0;
  return LU_OK;
}

int lu_conv_igemm_recorded(int i, const char **key, int *pass, int *tile, int *tile_rule, int *ldmatrix_tiles) {
  if (i < 0 || i >= recording.n) return 0;
  *key = recording.v[i].key;
  *pass = recording.v[i].pass;
  *tile = recording.v[i].tile;
  *tile_rule = rule_tile(recording.v[i].M);
  *ldmatrix_tiles = f16_fragments(recording.v[i].mma);
  return 1;
}

int lu_conv_igemm_tiles(void) { return NTILES; }

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lu_status lu_conv_igemm_time(lu_device *dev, int i, int tile, int repeats, double *seconds) {
  if (i < 0 || i >= recording.n) return lu_fail(LU_EARG, "conv igemm: no recorded GEMM %d (%d recorded)", i, recording.n);
  const recorded_gemm *r = &recording.v[i];
  if (!tile_fits(dev, tile, r->mma))
    return lu_fail(LU_EUNSUPPORTED, "conv igemm: tile %d does not fit %s's local memory", tile, dev->name);
  if (runnable_tile(dev, tile, r->mma) != tile)
    return lu_fail(LU_EUNSUPPORTED, "conv igemm: no ldmatrix for the %s kernel on %s", KERNEL_NAMES[r->mma], dev->name);
  const lu_conv_geom *g = &r->g;
  size_t xs = (size_t)g->N * g->Cin * g->S * (r->xh ? 2 : 4), ys = (size_t)g->N * g->Cout * g->OS * (r->yh ? 2 : 4),
         ws = (size_t)g->Cout * g->Cin * g->kv * sizeof(float), bs = (size_t)g->Cout * sizeof(float);
  size_t sizes[4] = {xs, ys, ws, bs};
  cl_mem m[4] = {NULL, NULL, NULL, NULL}; /* x-side, y-side, weights, bias */
  lu_status st = LU_OK;
  for (int j = 0; j < 4 && st == LU_OK; j++) {
    cl_int e;
    m[j] = clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE, sizes[j], NULL, &e);
    float zero = 0;
    if (e == CL_SUCCESS) e = clEnqueueFillBuffer(dev->queue, m[j], &zero, 2, 0, sizes[j], 0, NULL, NULL);
    if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (conv igemm tuning buffers, %zu bytes)", lu_cl_errname(e), sizes[j]);
  }
  int p = r->pass, fwd = p == LU_IGEMM_FWD || p == LU_IGEMM_T_FWD, dgrad = p == LU_IGEMM_DGRAD || p == LU_IGEMM_T_DGRAD;
  double best = 1e30;
  if (repeats < 1) repeats = 1;
  for (int rep = -1; rep < repeats && st == LU_OK; rep++) { /* rep -1 builds the program and warms up */
    double t0 = seconds_now();
    xside xa = {fwd || !dgrad ? m[0] : NULL, NULL, dgrad ? m[0] : NULL, NULL, 0};
    st = run_pass(dev, p, r->mma, tile, g, &xa, r->xh, fwd ? NULL : m[1], r->yh, fwd || dgrad ? m[2] : NULL,
                  fwd && r->bias ? m[3] : NULL, fwd ? m[1] : NULL, fwd || dgrad ? NULL : m[2], 0);
    if (st == LU_OK) {
      cl_int e = clFinish(dev->queue);
      if (e != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (conv igemm tuning run)", lu_cl_errname(e));
    }
    double dt = seconds_now() - t0;
    if (rep >= 0 && dt < best) best = dt;
  }
  for (int j = 0; j < 4; j++)
    if (m[j]) clReleaseMemObject(m[j]);
  *seconds = best;
  return st;
}
