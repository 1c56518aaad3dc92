/* Naive double-precision convolutions: the reference the specs compare every conv strategy against.
 * Test-only: built into lunet.testing, never into lunet.core, and written independently of ops/conv
 * (its own shape arithmetic) so that a bug there cannot hide in both. */
#ifndef LU_REF_CONV_H
#define LU_REF_CONV_H

#include <stdint.h>

/* A convolution (tr = 0) or a transposed convolution with kernel == stride (tr = 1), normalised to
 * three spatial axes; `in` is the forward pass's input side, `out` its output side. */
typedef struct lu_ref_geom {
  int N, Cin, Cout, tr;
  int64_t in[3], out[3];
  int k[3], s[3], p[3];
} lu_ref_geom;

typedef enum { LU_REF_FWD = 0, LU_REF_BWD_DATA = 1, LU_REF_BWD_WEIGHT = 2 } lu_ref_pass;

/* Fills out[3] from in[3]; 0 when an axis is smaller than its kernel. */
int lu_ref_out_extent(lu_ref_geom *g);
/* One enumeration serves all three passes: for every (n, co, ci, output voxel o, tap t) with input
 * voxel i = o * s - p + t (conv) or output o = i * s - p + t (transposed) in range, the forward adds
 * w * x into y, backward data w * dy into dx, backward weight x * dy into dw. Arrays are (N, C,
 * spatial) and weights (Cout, Cin, k) or, transposed, (Cin, Cout, k); `acc` is added to. */
void lu_ref_conv(const lu_ref_geom *g, lu_ref_pass pass, const double *x, const double *w, const double *dy,
                 double *acc);

#endif
