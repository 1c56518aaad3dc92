/* Device ops on float32 tensors. All tensors must live on the same device; outputs may alias
 * inputs where noted. Errors name the op and the shapes involved. */
#ifndef LU_OPS_H
#define LU_OPS_H

#include "tensor.h"

/* Checks that t is a device tensor of dtype dt; `op` and `arg` name it in the message. */
lu_status lu_check_device_tensor(const lu_tensor *t, lu_dtype dt, const char *op, const char *arg);
/* Same, for an activation: float32, or float16 storage (mixed precision; kernels compute in float). */
lu_status lu_check_act_tensor(const lu_tensor *t, const char *op, const char *arg);
/* N, C and S (product of the axes after the channel axis) of an (N, C, ...) tensor; `op` and `arg`
 * name it when it has fewer than 2 axes. */
lu_status lu_shape_ncs(const lu_tensor *t, const char *op, const char *arg, int64_t *n, int64_t *c, int64_t *s);
/* Rounds n up to a multiple of the work-group size used for 1-D element kernels. */
size_t lu_global_1d(size_t n, size_t wg);

lu_status lu_fill(lu_tensor *y, float v);
lu_status lu_scale(lu_tensor *y, float a);             /* y *= a */
lu_status lu_axpy(lu_tensor *y, float a, const lu_tensor *x); /* y += a x */
lu_status lu_add(lu_tensor *z, const lu_tensor *x, const lu_tensor *y); /* z = x + y */
lu_status lu_mul(lu_tensor *z, const lu_tensor *x, const lu_tensor *y); /* z = x * y */
lu_status lu_copy(lu_tensor *dst, const lu_tensor *src); /* same byte size, any dtype */
lu_status lu_cast(lu_tensor *dst, const lu_tensor *src); /* same shape; float16 <-> float32, rounding to nearest even */

typedef enum { LU_REDUCE_SUM = 0, LU_REDUCE_SUMSQ = 1, LU_REDUCE_MAX = 2 } lu_reduce_op;
/* Full reduction to a host double (sum, sum of squares, max). */
lu_status lu_reduce(const lu_tensor *x, lu_reduce_op op, double *out);

/* C = alpha op(A) op(B) + beta C for 2-D tensors (or 3-D: batched over the first axis). */
lu_status lu_gemm(lu_tensor *c, const lu_tensor *a, const lu_tensor *b, int trans_a, int trans_b, float alpha,
                  float beta);

#endif
