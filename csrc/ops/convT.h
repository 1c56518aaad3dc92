/* Transposed convolution (kernel == stride) is declared with the convolutions in ops/conv.h.
 * This header holds the pieces conv.c and convT.c share (not part of the public API). */
#ifndef LU_CONVT_H
#define LU_CONVT_H

#include <stddef.h>

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
/* y (N, C, S) = b[c] (0 without b). */
lu_status lu_conv_bias_fill(lu_tensor *y, const lu_tensor *b, int N, int C, int64_t S);
/* db (+)= sum of dy (N, C, S) over N and S. */
lu_status lu_conv_bias_grad(lu_tensor *db, const lu_tensor *dy, int N, int C, int64_t S, int accumulate);
/* A transposed convolution's forward on the channel-vector direct kernel (CPUs, >= 12 output channels). */
int lu_convT_fwd_direct_applies(const lu_conv_geom *g, const lu_device *dev);
lu_status lu_convT_fwd_direct(const lu_conv_geom *g, const lu_tensor *x, const lu_tensor *w, const lu_tensor *b,
                              lu_tensor *y);
/* $name as an integer, or dflt when unset or empty: the tuning and path switches of conv and convT. */
int lu_conv_env_int(const char *name, int dflt);
/* k over the 3-D range gl as one work-group of gl[0] work-items per (row block, sample) where the device
 * allows (conv.c). */
lu_status lu_launch_by_rows(lu_device *dev, cl_kernel k, const size_t gl[3], const char *name);
/* Workspace budget in bytes: $LUNET_CONV_WORKSPACE_KB or LU_CONV_WORKSPACE_MB (64 MiB). */
size_t lu_conv_workspace_bytes(void);

/* Tiles of whole samples or of consecutive rows of one sample, sized so a tile's workspace
 * (row_floats per row) fits lu_conv_workspace_bytes(): the GEMM paths of conv and convT use it. */
typedef struct lu_conv_tile {
  int n0, nb;     /* samples [n0, n0 + nb) */
  int r0, nrows;  /* rows [r0, r0 + nrows) of each sample */
  int whole;      /* tile covers whole samples */
} lu_conv_tile;

typedef struct lu_conv_tiler {
  int N, rows, rows_per_tile, samples_per_tile;
  int n, r; /* cursor */
} lu_conv_tiler;

void lu_conv_tiler_init(lu_conv_tiler *t, int N, int rows, size_t row_floats);
/* Next tile into *o; 0 when done. */
int lu_conv_tiler_next(lu_conv_tiler *t, lu_conv_tile *o);

#endif
