/* CLBlast glue: GEMM on device buffers, with tuned kernel parameters applied once per device. */
#ifndef LU_BLAS_H
#define LU_BLAS_H

#include "cl/device.h"

/* C[m x n] = alpha * op(A) * op(B) + beta * C, row-major, with element offsets and leading dims. */
lu_status lu_sgemm(lu_device *dev, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, float beta,
                   cl_mem c, size_t c_off, size_t ldc);
/* Batched: `batch` GEMMs whose operands are `stride_*` elements apart. */
lu_status lu_sgemm_strided_batched(lu_device *dev, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                                   float alpha, cl_mem a, size_t a_off, size_t lda, size_t stride_a, cl_mem b,
                                   size_t b_off, size_t ldb, size_t stride_b, float beta, cl_mem c, size_t c_off,
                                   size_t ldc, size_t stride_c, size_t batch);

/* Where the tuned parameters for this device came from: "file:<path>", "builtin:<entry>" or "default". */
const char *lu_blas_tuning_source(lu_device *dev);
/* Path of the per-device tuning file written by `lunet tune` (under the cache dir). */
void lu_blas_tuning_path(const lu_device *dev, char *buf, size_t n);
/* (Re)applies tuning for the device; called lazily before the first GEMM. */
lu_status lu_blas_apply_tuning(lu_device *dev);
/* Teardown (lu_cl_shutdown): drops CLBlast's cached programs, which hold the contexts. */
void lu_blas_shutdown(void);

#endif
