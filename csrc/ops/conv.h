/* Convolutions on device tensors (float32), forward and backward, 2-D and 3-D.
 *
 * Layout: x (N, Cin, [Z,] Y, X), y (N, Cout, [Z',] Y', X'), row-major, last axis fastest.
 * Weights as PyTorch: conv (Cout, Cin, [kz,] ky, kx); transposed conv (Cin, Cout, [kz,] ky, kx)
 * (ConvTranspose layout). Bias (Cout) or NULL.
 *
 * The descriptor lists per-spatial-axis parameters in array-axis order: entries 0..nsp-1 are
 * (z, y, x) for nsp = 3 and (y, x) for nsp = 2. Entries past nsp are ignored.
 * Output size per axis: out = (in + 2 pad - k) / stride + 1 (conv), out = in * stride (convT,
 * kernel == stride, pad 0).
 *
 * Outputs are fully overwritten (no need to clear them) except where `accumulate` asks to add.
 * All tensors must live on the same device. Workspace is taken from the device's buffer pool and
 * bounded by the device's tunable conv.workspace_kb (64 MiB): a 3-D patch never gets a full im2col
 * buffer. Which kernels run is the device's choice too (cl/tunables.h, ops/conv/base.h). */
#ifndef LU_CONV_H
#define LU_CONV_H

#include "tensor.h"

typedef struct lu_conv_desc {
  int nsp;        /* number of spatial dims: 2 or 3 */
  int k[3];       /* kernel size per spatial axis (1 or 3 tested; any odd or even size works) */
  int stride[3];  /* stride per spatial axis (1 or 2 tested; any >= 1 works) */
  int pad[3];     /* zero padding per side; "same" = (k - 1) / 2 */
} lu_conv_desc;

/* Fills d with kernel k, stride s (NULL = all 1) and "same" padding (k - 1) / 2. */
lu_status lu_conv_desc_init(lu_conv_desc *d, int nsp, const int *k, const int *stride);
/* Checks nsp, k >= 1, stride >= 1, 0 <= pad < k. */
lu_status lu_conv_desc_check(const lu_conv_desc *d);

/* Shapes. x_shape has 2 + nsp entries (N, C, spatial...). Outputs have 2 + nsp entries. */
lu_status lu_conv_out_shape(const lu_conv_desc *d, const int64_t *x_shape, int64_t cout, int64_t *y_shape);
void lu_conv_weight_shape(const lu_conv_desc *d, int64_t cin, int64_t cout, int64_t *w_shape);
/* Transposed conv with kernel == stride: y spatial = x spatial * stride; d->k must equal d->stride, pad 0. */
lu_status lu_convT_desc_init(lu_conv_desc *d, int nsp, const int *stride);
lu_status lu_convT_out_shape(const lu_conv_desc *d, const int64_t *x_shape, int64_t cout, int64_t *y_shape);
void lu_convT_weight_shape(const lu_conv_desc *d, int64_t cin, int64_t cout, int64_t *w_shape);
/* Multiply-adds of one forward pass (batch included); bwd_data and bwd_weight cost the same. */
double lu_conv_flops(const lu_conv_desc *d, const int64_t *x_shape, int64_t cout);
double lu_convT_flops(const lu_conv_desc *d, const int64_t *x_shape, int64_t cout);

/* y = conv(x, w) + b */
lu_status lu_conv_fwd(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                      lu_tensor *y);
/* Packed weights of one convolution kept between forwards whose weights do not change (inference plans of
 * a network whose weights were frozen, lu_unet_freeze_weights): lu_conv_fwd_cached packs on first use and
 * reuses the buffer while the pass packs the same weights buffer with the same kernel and extents (a
 * 512-channel 2-D layer's pack is 3-6 ms, 7% of the 2d plan's forward); wc NULL: lu_conv_fwd / lu_convT_fwd.
 * The owner clears it (the buffer goes back to the pool) before the weights change. */
typedef struct lu_conv_wcache {
  void *buf; /* cl_mem from the buffer pool, NULL while empty */
  size_t bytes;
  const void *kernel, *w; /* the pack kernel (one per build options) and the weights' buffer */
  int cin, cout, flip;
} lu_conv_wcache;
lu_status lu_conv_fwd_cached(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                             lu_tensor *y, lu_conv_wcache *wc);
lu_status lu_convT_fwd_cached(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y, lu_conv_wcache *wc);
void lu_conv_wcache_clear(lu_device *dev, lu_conv_wcache *wc);

/* dx = conv^T(dy, w) (gradient w.r.t. x; dx is overwritten) */
lu_status lu_conv_bwd_data(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);
/* dw (+)= grad w.r.t. w; db (+)= sum of dy over N and space (db may be NULL).
 * accumulate = 0: overwrite dw/db; 1: add to their contents. */
lu_status lu_conv_bwd_weight(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                             lu_tensor *db, int accumulate);

/* Transposed convolution, kernel == stride (nnU-Net's upsampling): same contracts as above.
 * x (N, Cin, s...), w (Cin, Cout, k...), y (N, Cout, s*k...). */
lu_status lu_convT_fwd(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                       lu_tensor *y);
lu_status lu_convT_bwd_data(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx);
lu_status lu_convT_bwd_weight(const lu_conv_desc *d, const lu_tensor *x, const lu_tensor *dy, lu_tensor *dw,
                              lu_tensor *db, int accumulate);

/* Whether the implicit GEMM's inline-PTX mma.sync (f16 = 1: m16n8k16 f16, else m16n8k8 tf32) ran correctly on
 * dev: probed once per device (NVIDIA, compute capability >= 8) with a product checked exactly. */
int lu_conv_mma_available(lu_device *dev, int f16);
/* Whether ldmatrix feeding the f16 mma.sync ran correctly on dev (probed once, after the f16 mma). */
int lu_conv_ldmatrix_available(lu_device *dev);

/* Convolutions whose input is the channel concatenation [x1, x2] (a U-Net decoder's upsampled map and skip):
 * where the implicit GEMM runs (lu_conv_cat_in_place: GPUs with float16 activations, or conv.igemm = 1) the
 * parts are read and their gradients written in place, with no concatenated copy; elsewhere through a
 * scratch concatenation. Results equal the one-tensor passes on the concatenation. dx1 / dx2 are written,
 * not accumulated. */
int lu_conv_cat_in_place(const lu_device *dev, lu_dtype activations);
lu_status lu_conv_fwd_cat(const lu_conv_desc *d, const lu_tensor *x1, const lu_tensor *x2, const lu_tensor *w,
                          const lu_tensor *b, lu_tensor *y);
lu_status lu_conv_bwd_data_cat(const lu_conv_desc *d, const lu_tensor *dy, const lu_tensor *w, lu_tensor *dx1,
                               lu_tensor *dx2);
lu_status lu_conv_bwd_weight_cat(const lu_conv_desc *d, const lu_tensor *x1, const lu_tensor *x2, const lu_tensor *dy,
                                 lu_tensor *dw, lu_tensor *db, int accumulate);
/* Implicit-GEMM tuning (lunet tune --igemm): while recording is on, every distinct GEMM shape the passes run is kept
 * (turning it on forgets the last recording); lu_conv_igemm_recorded names the i-th (its conv.igemm_tile
 * key, its pass, the tile it ran with, the one the rule picks, and whether its kernel takes the ldmatrix tiles; 0 past
 * the end), lu_conv_igemm_time runs it on scratch
 * buffers with one tile (an index into conv.igemm_tile's values; LU_EUNSUPPORTED where it does not fit the
 * device) and gives the fastest of `repeats` runs after a warm-up. Process-wide state: tuning runs only. */
lu_status lu_conv_igemm_record(int on);
int lu_conv_igemm_recorded(int i, const char **key, int *pass, int *tile, int *tile_rule, int *ldmatrix_tiles);
int lu_conv_igemm_tiles(void);
lu_status lu_conv_igemm_time(lu_device *dev, int i, int tile, int repeats, double *seconds);

#endif
