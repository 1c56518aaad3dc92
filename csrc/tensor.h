/* The tensor: a dtype, up to 5 dimensions (N, C, Z, Y, X by convention, row-major, last axis
 * fastest), and one storage: host memory (for I/O and preprocessing) or a device buffer (for ops).
 * Moving between them is explicit (lu_tensor_to_device / lu_tensor_to_host). */
#ifndef LU_TENSOR_H
#define LU_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define LU_MAX_DIMS 5

typedef enum lu_dtype {
  LU_F32 = 0, LU_F16, LU_U8, LU_I16, LU_I32, /* device dtypes */
  LU_I8, LU_U16, LU_U32, LU_I64, LU_F64,     /* host-only: exact image round trips */
  LU_NDTYPES
} lu_dtype;

typedef struct lu_device lu_device;

typedef struct lu_tensor {
  lu_dtype dtype;
  int ndim;
  int64_t shape[LU_MAX_DIMS];
  void *host;       /* host storage (malloc'd, owned) or NULL */
  lu_device *dev;   /* device the buffer lives on, or NULL */
  void *buf;        /* cl_mem, from the device's buffer pool */
  size_t bytes;     /* storage size in bytes */
} lu_tensor;

size_t lu_dtype_size(lu_dtype dt);
const char *lu_dtype_name(lu_dtype dt);
/* Parses "f32", "float32", "u8", ... ; returns LU_EARG with a message for an unknown name. */
lu_status lu_dtype_parse(const char *name, lu_dtype *out);

int64_t lu_shape_numel(int ndim, const int64_t *shape);
static inline int64_t lu_tensor_numel(const lu_tensor *t) { return lu_shape_numel(t->ndim, t->shape); }
/* "2x3x4" into buf, for error messages. */
const char *lu_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* New host tensor, zero-filled. */
lu_status lu_tensor_new_host(lu_tensor **out, lu_dtype dt, int ndim, const int64_t *shape);
/* New host tensor taking ownership of malloc'd data (freed with the tensor). */
lu_status lu_tensor_wrap_host(lu_tensor **out, lu_dtype dt, int ndim, const int64_t *shape, void *data);
/* New device tensor, contents undefined. */
lu_status lu_tensor_new_device(lu_tensor **out, lu_device *dev, lu_dtype dt, int ndim, const int64_t *shape);
void lu_tensor_free(lu_tensor *t);

/* Bytes of host tensor data alive now and the most alive at once since the last reset (process-wide). */
void lu_host_mem(int64_t *live, int64_t *peak);
void lu_host_mem_reset_peak(void);

/* Copies between storages; *out is a new tensor, t is unchanged. */
lu_status lu_tensor_to_device(const lu_tensor *t, lu_device *dev, lu_tensor **out);
lu_status lu_tensor_to_host(const lu_tensor *t, lu_tensor **out);
/* Raw transfers for device tensors (bytes = t->bytes). */
lu_status lu_tensor_write(lu_tensor *t, const void *src);
lu_status lu_tensor_read(const lu_tensor *t, void *dst);
/* Same dtype and element count, new shape; storage is shared through ownership transfer:
 * reshape is done in place on t. */
lu_status lu_tensor_reshape(lu_tensor *t, int ndim, const int64_t *shape);

/* IEEE half <-> float, round to nearest even (the one conversion every host f16 path uses). */
float lu_half_to_float(uint16_t h);
uint16_t lu_float_to_half(float f);

/* Host-side element access as double, for specs and small utilities (not hot paths). */
double lu_host_get(const lu_tensor *t, int64_t i);
void lu_host_set(lu_tensor *t, int64_t i, double v);
/* Host dtype conversion into a new host tensor (saturating casts are NOT applied: C semantics). */
lu_status lu_tensor_convert_host(const lu_tensor *t, lu_dtype dt, lu_tensor **out);

#endif
