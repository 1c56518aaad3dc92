/* What the convolution strategies share (not part of the public API, which is ops/conv.h).
 *
 * ops/conv.c and ops/convT.c are dispatchers: they check the arguments, normalise the problem to
 * three spatial axes (lu_conv_geom) and pick a strategy, each in a file of its own under ops/conv/:
 *   gemm.c    im2col / col2im + CLBlast SGEMM over tiles (lu_conv_tiled_gemm): any geometry
 *   direct.c  the direct kernels: conv_direct (x-vectors), conv_cvec (channel vectors), conv_rows
 *             (3-tap rows), convT_cvec, dgrad_cvec
 *   wino.c    Winograd along rows (conv_wino), over 2x2(x2) and 4x4 tiles (conv_wino_tile, conv_wino_t4),
 *             stride-1 3x3(x3)
 *   s2rows.c  stride-2 forwards over de-interleaved rows (conv_s2rows)
 *   dgrad.c   strided backward data: dgrad_rows, by output phases, dgrad_strided / dgrad_s2x
 *   wgrad.c   the weight gradient: wgrad_direct, wgrad_cvec, partial sums per chunk
 *   igemm.c   implicit GEMM for GPUs, every pass of conv and convT, float16 activations, tensor-core
 *             fragments (PTX mma.sync, or emulated)
 * Which one runs is decided by rules on the geometry and by the device's tunables (cl/tunables.h);
 * every tunable that chooses a strategy can be forced by name, so specs reach each file. */
#ifndef LU_CONV_BASE_H
#define LU_CONV_BASE_H

#include <stddef.h>

#include "cl/device.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "ops/conv.h"

/* A convolution normalised to 3 spatial axes (2-D: Z = OZ = 1, k = s = 1, p = 0 on axis 0). */
typedef struct lu_conv_geom {
  int N, Cin, Cout;
  int Z, Y, X, OZ, OY, OX;
  int k[3], s[3], p[3];
  int64_t S, OS; /* input and output voxels per channel */
  int kv;        /* k[0] * k[1] * k[2] */
} lu_conv_geom;

void lu_conv_geom_from(const lu_conv_desc *d, const int64_t *x_shape, const int64_t *y_shape, lu_conv_geom *g);
/* Validates x, w, b (nullable), y of the forward pass (transposed: convT) and derives g. */
lu_status lu_conv_check(const char *op, const lu_conv_desc *d, int transposed, const lu_tensor *x, const char *xn,
                        const lu_tensor *w, const char *wn, const lu_tensor *b, const char *bn, const lu_tensor *y,
                        const char *yn, lu_conv_geom *g);
/* Adds the op and geometry to a failure's message; passes LU_OK through. */
lu_status lu_conv_context(lu_status st, const char *op, const lu_conv_geom *g);
/* Stride 1 on every axis and a single tap: the input is the GEMM operand as it is. */
int lu_conv_is_pointwise(const lu_conv_geom *g);
/* The direct kernels (any strategy but GEMM) unless the device's conv.algo says gemm. */
int lu_conv_use_direct(const lu_device *dev);
/* The channel-vector kernels (conv_cvec, convT_cvec, dgrad_cvec, wgrad_cvec: channels in the lanes)
 * may run: on CPUs, unless the device's conv.cvec is 0. Each kernel adds its own channel-count rule. */
int lu_conv_cvec_allowed(const lu_device *dev);

/* float16 activations where the implicit GEMM does not run (CPUs by default, whose strategies read float32):
 * the pass runs on float32 copies. f32_view makes *out a float32 stand-in for t (t itself when it is
 * float32; else a pool buffer, converted from t when `load`); f32_done converts it back into t when `store`
 * and st is LU_OK, releases it, and returns st. */
lu_status lu_conv_f32_view(const lu_tensor *t, int load, lu_tensor *out);
lu_status lu_conv_f32_done(lu_tensor *f, lu_tensor *t, int store, lu_status st);
static inline int lu_conv_any_half(const lu_tensor *a, const lu_tensor *b) {
  return (a && a->dtype == LU_F16) || (b && b->dtype == LU_F16);
}
/* The three passes of conv or convT on float32 copies of their float16 activations (the public functions'
 * signatures: each converts its inputs, calls `pass`, converts the output back). */
typedef lu_status (*lu_conv_fwd_fn)(const lu_conv_desc *, const lu_tensor *, const lu_tensor *, const lu_tensor *,
                                    lu_tensor *);
typedef lu_status (*lu_conv_bwd_data_fn)(const lu_conv_desc *, const lu_tensor *, const lu_tensor *, lu_tensor *);
typedef lu_status (*lu_conv_bwd_weight_fn)(const lu_conv_desc *, const lu_tensor *, const lu_tensor *, lu_tensor *,
                                           lu_tensor *, int);
lu_status lu_conv_fwd_f32(lu_conv_fwd_fn pass, const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w,
                          const lu_tensor *b, lu_tensor *y);
lu_status lu_conv_bwd_data_f32(lu_conv_bwd_data_fn pass, const lu_conv_desc *d, const lu_tensor *dy,
                               const lu_tensor *w, lu_tensor *dx);
lu_status lu_conv_bwd_weight_f32(lu_conv_bwd_weight_fn pass, const lu_conv_desc *d, const lu_tensor *x,
                                 const lu_tensor *dy, lu_tensor *dw, lu_tensor *db, int accumulate);

/* y (N, C, S) = b[c] (0 without b). */
lu_status lu_conv_bias_fill(lu_tensor *y, const lu_tensor *b, int N, int C, int64_t S);
/* db (+)= sum of dy (N, C, S) over N and S. */
lu_status lu_conv_bias_grad(lu_tensor *db, const lu_tensor *dy, int N, int C, int64_t S, int accumulate);

/* Scratch budget of one convolution in bytes (tunable conv.workspace_kb): a 3-D patch never gets a
 * full im2col buffer. */
size_t lu_conv_workspace_bytes(const lu_device *dev);

/* Tiles of whole samples or of consecutive rows of one sample, sized so that a tile's workspace
 * (row_floats per row) fits the budget. */
typedef struct lu_conv_tile {
  int n0, nb;     /* samples [n0, n0 + nb) */
  int r0, nrows;  /* rows [r0, r0 + nrows) of each sample */
  int whole;      /* tile covers whole samples */
} lu_conv_tile;

typedef struct lu_conv_tiler {
  int N, rows, rows_per_tile, samples_per_tile;
  int n, r; /* cursor */
} lu_conv_tiler;

void lu_conv_tiler_init(lu_conv_tiler *t, const lu_device *dev, int N, int rows, size_t row_floats);
/* Next tile into *o; 0 when done. */
int lu_conv_tiler_next(lu_conv_tiler *t, lu_conv_tile *o);

/* "Tile, fill the column buffer, one SGEMM per tile (batched over its samples), empty the buffer": the
 * loop every GEMM path runs. The buffer holds `floats_per_pos` floats for each of a tile's positions
 * (nrows * row_len per sample). fill and drain may be NULL. With `clear` given, it is zeroed first when
 * the tiles split samples (drain then accumulates: tile->whole is 0). */
typedef struct lu_conv_tiled {
  lu_device *dev;
  int N, rows, row_len;
  size_t floats_per_pos;
  lu_tensor *clear;
  void *ctx; /* the strategy's own state (a GEMM's beta changes after the first tile) */
  lu_status (*fill)(const struct lu_conv_tiled *job, cl_mem buf, const lu_conv_tile *t);
  lu_status (*gemm)(const struct lu_conv_tiled *job, cl_mem buf, const lu_conv_tile *t, size_t positions);
  lu_status (*drain)(const struct lu_conv_tiled *job, cl_mem buf, const lu_conv_tile *t);
} lu_conv_tiled;
lu_status lu_conv_tiled_gemm(const lu_conv_tiled *job);
/* C (+)= op(A) op(B) for one tile: one SGEMM when it holds one sample, else strided-batched over nb. */
lu_status lu_conv_tile_sgemm(lu_device *dev, int ta, int tb, size_t M, size_t N, size_t K, cl_mem a, size_t aoff,
                             size_t lda, size_t a_stride, cl_mem b, size_t boff, size_t ldb, size_t b_stride,
                             float beta, cl_mem c, size_t coff, size_t ldc, size_t c_stride, int nb);

/* ---- pieces of the direct-kernel strategies ---- */

/* The kernel `name` of the conv kernels (the file that holds it is looked up here), built with opts. */
lu_status lu_conv_kernel(lu_device *dev, const char *name, const char *opts, cl_kernel *k);
/* k over the 3-D range gl as one work-group of gl[0] work-items per (row block, sample), where the
 * device allows groups that large. */
lu_status lu_launch_by_rows(lu_device *dev, cl_kernel k, const size_t gl[3], const char *name);

/* The direct kernels' work per work-item on a device (conv.vx, conv.cob, conv.wgrad_vx, conv.cobw). */
typedef struct { int vx, cob, wgrad_vx, cobw, cib, cov; } lu_conv_tunables;
lu_conv_tunables lu_conv_direct_tunables(const lu_device *dev);
/* LU_CONV_CIB: input channels per work-item of the narrow-row weight gradient (wgrad_cvec). */
#define LU_CONV_CIB 8
/* Build options for the direct kernels: every kernel of one geometry and lane count shares them. */
void lu_conv_direct_opts(const lu_conv_tunables *t, const int *k, const int *s, const int *p, int vx, char *buf,
                         size_t n);
/* Appends printf-formatted build options to buf (n bytes, holding a string). */
void lu_conv_opts_add(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Lanes per work-item along x, capped by `cap`. */
int lu_conv_pick_vx(int ox, int cap);
/* conv_cvec's positions per work-item along a row of `extent`: the row in equal pieces of <= 8. */
int lu_conv_cvec_block(int extent);
/* The input extent that blocks of `block` outputs read along an axis (the last block reaches past). */
int lu_conv_blocked_reach(int extent, int block, int stride, int taps);

/* A zero-padded copy (pad_input) of x (N, C, Z, Y, X) with extents (Zp, Yp, Xp), the input at offset
 * (PZ, PY, PX) of opts. *out is a pool buffer of *bytes bytes. */
lu_status lu_conv_pad_copy(lu_device *dev, const char *opts, cl_mem x, int N, int C, int Z, int Y, int X, int Zp,
                           int Yp, int Xp, cl_mem *out, size_t *bytes);
/* Weights packed per block of cob output channels (pack_weights with `flip`). */
lu_status lu_conv_pack_blocks(lu_device *dev, const char *opts, cl_mem w, int cin, int cout, int cob, size_t kv,
                              int flip, cl_mem *wp, size_t *bytes);
/* Weights packed by kp (wino_pack, s2_pack: arguments out, w, Cin, Cout, and flip unless it is -1),
 * `floats` per channel pair, in blocks of cob output channels. */
lu_status lu_conv_pack_launch(lu_device *dev, cl_kernel kp, const char *kname, cl_mem w, int Cin, int Cout, int cob,
                              size_t floats, int flip, cl_mem *out, size_t *bytes);
/* Gives back a buffer of lu_conv_pack_blocks / lu_conv_pack_launch, unless the cache of the lu_conv_fwd_cached
 * pass in flight keeps it (ops/conv.h). The packs look the cache up by kernel, weights, extents and flip. */
void lu_conv_pack_release(lu_device *dev, cl_mem wp, size_t bytes);
/* A row of zeros (`len` floats and slack) for the row kernels to read off the input. */
lu_status lu_conv_zero_row(lu_device *dev, int len, cl_mem *out, size_t *bytes);
/* The arguments the row and direct conv kernels share. */
lu_status lu_conv_kernel_args(cl_kernel kk, const char *kname, cl_mem x, cl_mem wp, cl_mem w, const lu_tensor *b,
                              cl_mem y, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX);

/* ---- the strategies (one file each) ---- */

/* What lu_conv_direct_run computes; also pack_weights' `flip` argument, except for
 * LU_DIRECT_BWD_DATA_STRIDED, which packs like LU_DIRECT_CONVT (unflipped, channels swapped). */
enum {
  LU_DIRECT_CONV = 0,            /* conv_direct / conv_cvec / conv_rows; w (Cout, Cin, k...) */
  LU_DIRECT_BWD_DATA = 1,        /* stride-1 backward data as a conv of dy: w (Cin', Cout', k...) flipped */
  LU_DIRECT_CONVT = 2,           /* transposed conv forward, k = s: convT_cvec; w (Cin, Cout, k...) */
  LU_DIRECT_BWD_DATA_STRIDED = 3 /* strided backward data: dgrad_cvec; w (Cin', Cout', k...) */
};

/* direct.c: y (N, Cout, OZ, OY, OX) from x (N, Cin, Z, Y, X), as `mode` says; for the backward-data
 * modes x is dy and y is dx, Cin / Cout the pass's own channel counts and k, s, p the forward
 * convolution's (stride 1: already flipped to k - 1 - p). */
lu_status lu_conv_direct_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int OZ, int OY, int OX,
                             const int *k, const int *s, const int *p, cl_mem x, cl_mem w, int mode,
                             const lu_tensor *b, cl_mem y);
/* direct.c: a transposed convolution's forward on convT_cvec (CPUs, >= 12 output channels). */
int lu_convT_fwd_direct_applies(const lu_conv_geom *g, const lu_device *dev);
lu_status lu_convT_fwd_direct(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y);

/* wino.c: stride-1 3x3 / 1x3x3 / 3x3x3 passes (forward, or backward data with flip = 1). */
int lu_conv_wino_applies(const lu_device *dev, int Cin, int Cout, int X, const int *k, const int *s, const int *p);
lu_status lu_conv_wino_run(lu_device *dev, int N, int Cin, int Cout, int Z, int Y, int X, int kz, cl_mem x, cl_mem w,
                           int flip, const lu_tensor *b, cl_mem y);

/* s2rows.c: stride-2 forwards. */
int lu_conv_s2rows_applies(const lu_device *dev, int X, const int *k, const int *s, const int *p);
lu_status lu_conv_s2rows_run(lu_device *dev, const lu_conv_geom *g, cl_mem x, cl_mem w, const lu_tensor *b,
                             cl_mem y);

/* dgrad.c: strided backward data. */
int lu_conv_dgrad_rows_applies(const lu_conv_geom *g, const lu_device *dev);
lu_status lu_conv_dgrad_rows_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);
int lu_conv_dgrad_phases_applies(const lu_conv_geom *g, const lu_device *dev);
lu_status lu_conv_dgrad_phases_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);
int lu_conv_dgrad_cvec_applies(const lu_conv_geom *g, const lu_device *dev);
lu_status lu_conv_dgrad_strided_run(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);

/* wgrad.c: dw (+)= the weight gradient on the direct kernels. */
lu_status lu_conv_wgrad_run(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                            int accumulate);

/* gemm.c: the three passes as im2col / col2im + SGEMM. */
lu_status lu_conv_gemm_fwd(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                           lu_tensor *y);
lu_status lu_conv_gemm_bwd_data(const lu_conv_geom *g, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);
lu_status lu_conv_gemm_bwd_weight(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                                  int accumulate);

/* igemm.c: the implicit-GEMM passes. x-side tensors are x / dx, y-side ones y / dy, as in the forward;
 * each may be float16 (activations), weights and gradients of weights are float32. */
enum {
  LU_IGEMM_FWD = 0,     /* y = conv(x, w) + b */
  LU_IGEMM_DGRAD = 1,   /* dx = conv^T(dy, w) */
  LU_IGEMM_WGRAD = 2,   /* dw (+)= grad */
  LU_IGEMM_T_FWD = 3,   /* transposed conv: y = convT(x, w) + b */
  LU_IGEMM_T_DGRAD = 4, /* dx */
  LU_IGEMM_T_WGRAD = 5  /* dw (+)= grad */
};
/* The implicit GEMM runs when the device's conv.igemm says so (1), never with 0; by default on GPUs exactly
 * when an activation of the call is float16 (elsewhere float16 goes through lu_conv_f32_view). */
int lu_conv_igemm_applies(const lu_device *dev, const lu_tensor *a, const lu_tensor *b);
/* One pass; the tensors a pass does not use are NULL (b: the forward's bias, or NULL). */
lu_status lu_conv_igemm_run(int pass, const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *dy,
                            const lu_tensor *w, const lu_tensor *b, lu_tensor *dx, lu_tensor *y, lu_tensor *dw,
                            int accumulate);
/* The same with the x side in two parts (passes FWD, DGRAD, WGRAD): channels [0, c1) in x / dx, the rest
 * in x2 / dx2, read and written in place (g describes the concatenation). */
lu_status lu_conv_igemm_run_cat(int pass, const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *x2, int c1,
                                const lu_tensor *dy, const lu_tensor *w, const lu_tensor *b, lu_tensor *dx,
                                lu_tensor *dx2, lu_tensor *y, lu_tensor *dw, int accumulate);


#endif
