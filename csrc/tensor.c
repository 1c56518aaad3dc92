#include "tensor.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/device.h"
#include "cl/pool.h"
#include "cl/profile.h"

static const struct { const char *name, *alias; size_t size; } lu_dtypes[LU_NDTYPES] = {
  [LU_F32] = {"f32", "float32", 4}, [LU_F16] = {"f16", "float16", 2}, [LU_U8] = {"u8", "uint8", 1},
  [LU_I16] = {"i16", "int16", 2},   [LU_I32] = {"i32", "int32", 4},   [LU_I8] = {"i8", "int8", 1},
  [LU_U16] = {"u16", "uint16", 2},  [LU_U32] = {"u32", "uint32", 4},  [LU_I64] = {"i64", "int64", 8},
  [LU_F64] = {"f64", "float64", 8},
};

size_t lu_dtype_size(lu_dtype dt) { return (unsigned)dt < LU_NDTYPES ? lu_dtypes[dt].size : 0; }
const char *lu_dtype_name(lu_dtype dt) { return (unsigned)dt < LU_NDTYPES ? lu_dtypes[dt].name : "?"; }

lu_status lu_dtype_parse(const char *name, lu_dtype *out) {
  for (int i = 0; i < LU_NDTYPES; i++)
    if (strcmp(name, lu_dtypes[i].name) == 0 || strcmp(name, lu_dtypes[i].alias) == 0) {
      *out = (lu_dtype)i;
      return LU_OK;
    }
  return lu_fail(LU_EARG, "unknown dtype '%s' (f32 f16 u8 i16 i32 i8 u16 u32 i64 f64)", name);
}

int64_t lu_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

const char *lu_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t pos = 0;
  buf[0] = 0;
  for (int i = 0; i < ndim && pos < n; i++)
    pos += (size_t)snprintf(buf + pos, n - pos, i ? "x%" PRId64 : "%" PRId64, shape[i]);
  if (ndim == 0) snprintf(buf, n, "scalar");
  return buf;
}

/* Validates dims and computes the byte size without overflow. */
static lu_status check_shape(lu_dtype dt, int ndim, const int64_t *shape, size_t *bytes) {
  if ((unsigned)dt >= LU_NDTYPES) return lu_fail(LU_EARG, "tensor: bad dtype %d", (int)dt);
  if (ndim < 0 || ndim > LU_MAX_DIMS) return lu_fail(LU_EARG, "tensor: %d dimensions (at most %d)", ndim, LU_MAX_DIMS);
  uint64_t n = lu_dtype_size(dt);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return lu_fail(LU_EARG, "tensor: negative extent %" PRId64 " on axis %d", shape[i], i);
    if (shape[i] && n > (UINT64_MAX >> 1) / (uint64_t)shape[i])
      return lu_fail(LU_EARG, "tensor: shape too large (overflow on axis %d)", i);
    n *= (uint64_t)shape[i];
  }
  *bytes = (size_t)n;
  return LU_OK;
}

static lu_tensor *tensor_shell(lu_dtype dt, int ndim, const int64_t *shape, size_t bytes) {
  lu_tensor *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->dtype = dt;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->bytes = bytes;
  return t;
}

/* Bytes held by host tensors now and at most since the last reset: memory bounds are specs, not guesses. */
static _Atomic int64_t host_live, host_peak;

static void host_add(int64_t n) {
  int64_t now = atomic_fetch_add(&host_live, n) + n, p = atomic_load(&host_peak);
  while (now > p && !atomic_compare_exchange_weak(&host_peak, &p, now)) {
  }
}

void lu_host_mem(int64_t *live, int64_t *peak) {
  *live = atomic_load(&host_live);
  *peak = atomic_load(&host_peak);
}

void lu_host_mem_reset_peak(void) { atomic_store(&host_peak, atomic_load(&host_live)); }

lu_status lu_tensor_new_host(lu_tensor **out, lu_dtype dt, int ndim, const int64_t *shape) {
  size_t bytes;
  LU_TRY(check_shape(dt, ndim, shape, &bytes));
  lu_tensor *t = tensor_shell(dt, ndim, shape, bytes);
  if (!t) return lu_fail(LU_ENOMEM, "tensor: out of host memory");
  t->host = calloc(bytes ? bytes : 1, 1);
  if (!t->host) {
    free(t);
    char s[96];
    return lu_fail(LU_ENOMEM, "tensor: cannot allocate %zu bytes on the host for %s %s", bytes,
                   lu_dtype_name(dt), lu_shape_str(ndim, shape, s, sizeof s));
  }
  host_add((int64_t)bytes);
  *out = t;
  return LU_OK;
}

lu_status lu_tensor_wrap_host(lu_tensor **out, lu_dtype dt, int ndim, const int64_t *shape, void *data) {
  size_t bytes;
  LU_TRY(check_shape(dt, ndim, shape, &bytes));
  lu_tensor *t = tensor_shell(dt, ndim, shape, bytes);
  if (!t) return lu_fail(LU_ENOMEM, "tensor: out of host memory");
  t->host = data;
  host_add((int64_t)bytes);
  *out = t;
  return LU_OK;
}

lu_status lu_tensor_new_device(lu_tensor **out, lu_device *dev, lu_dtype dt, int ndim, const int64_t *shape) {
  size_t bytes;
  LU_TRY(check_shape(dt, ndim, shape, &bytes));
  if (!dev) return lu_fail(LU_ESTATE, "tensor: no device");
  lu_tensor *t = tensor_shell(dt, ndim, shape, bytes);
  if (!t) return lu_fail(LU_ENOMEM, "tensor: out of host memory");
  cl_mem m = NULL;
  char s[96], what[128];
  snprintf(what, sizeof what, "tensor %s %s", lu_dtype_name(dt), lu_shape_str(ndim, shape, s, sizeof s));
  lu_status st = lu_buffer_alloc_for(dev, bytes ? bytes : 4, what, &m);
  if (st != LU_OK) { /* the message names the bytes, the tensor and the device */
    free(t);
    return st;
  }
  t->dev = dev;
  t->buf = m;
  *out = t;
  return LU_OK;
}

void lu_tensor_free(lu_tensor *t) {
  if (!t) return;
  if (t->buf) lu_buffer_release(t->dev, (cl_mem)t->buf, t->bytes ? t->bytes : 4);
  if (t->host) host_add(-(int64_t)t->bytes);
  free(t->host);
  free(t);
}

lu_status lu_tensor_write(lu_tensor *t, const void *src) {
  if (!t->buf) return lu_fail(LU_ESTATE, "tensor write: not a device tensor");
  if (!t->bytes) return LU_OK;
  if (!t->dev->queue) return lu_fail(LU_ESTATE, "tensor write: %s is closed (OpenCL was shut down)", t->dev->name);
  lu_note_host_wait("tensor write");
  LU_CL_CHECK(clEnqueueWriteBuffer(t->dev->queue, (cl_mem)t->buf, CL_TRUE, 0, t->bytes, src, 0, NULL, NULL),
              "upload of %zu bytes", t->bytes);
  return LU_OK;
}

lu_status lu_tensor_read(const lu_tensor *t, void *dst) {
  if (!t->buf) return lu_fail(LU_ESTATE, "tensor read: not a device tensor");
  if (!t->bytes) return LU_OK;
  if (!t->dev->queue) return lu_fail(LU_ESTATE, "tensor read: %s is closed (OpenCL was shut down)", t->dev->name);
  lu_note_host_wait("tensor read");
  LU_CL_CHECK(clEnqueueReadBuffer(t->dev->queue, (cl_mem)t->buf, CL_TRUE, 0, t->bytes, dst, 0, NULL, NULL),
              "download of %zu bytes", t->bytes);
  return LU_OK;
}

lu_status lu_tensor_to_device(const lu_tensor *t, lu_device *dev, lu_tensor **out) {
  lu_tensor *d;
  LU_TRY(lu_tensor_new_device(&d, dev, t->dtype, t->ndim, t->shape));
  lu_status st;
  if (t->host) {
    st = lu_tensor_write(d, t->host);
  } else if (t->dev == dev) {
    if (!dev->queue) { lu_tensor_free(d); return lu_fail(LU_ESTATE, "device copy: %s is closed (OpenCL was shut down)", dev->name); }
    cl_int e = t->bytes ? clEnqueueCopyBuffer(dev->queue, (cl_mem)t->buf, (cl_mem)d->buf, 0, 0, t->bytes, 0, NULL, NULL)
                        : CL_SUCCESS;
    st = e == CL_SUCCESS ? LU_OK : lu_fail(LU_ECL, "%s (device copy of %zu bytes)", lu_cl_errname(e), t->bytes);
  } else {
    void *tmp = malloc(t->bytes ? t->bytes : 1);
    if (!tmp) { lu_tensor_free(d); return lu_fail(LU_ENOMEM, "tensor: staging buffer"); }
    st = lu_tensor_read(t, tmp);
    if (st == LU_OK) st = lu_tensor_write(d, tmp);
    free(tmp);
  }
  if (st != LU_OK) { lu_tensor_free(d); return st; }
  *out = d;
  return LU_OK;
}

lu_status lu_tensor_to_host(const lu_tensor *t, lu_tensor **out) {
  lu_tensor *h;
  LU_TRY(lu_tensor_new_host(&h, t->dtype, t->ndim, t->shape));
  lu_status st = t->host ? (memcpy(h->host, t->host, t->bytes), LU_OK) : lu_tensor_read(t, h->host);
  if (st != LU_OK) { lu_tensor_free(h); return st; }
  *out = h;
  return LU_OK;
}

lu_status lu_tensor_reshape(lu_tensor *t, int ndim, const int64_t *shape) {
  size_t bytes;
  LU_TRY(check_shape(t->dtype, ndim, shape, &bytes));
  if (bytes != t->bytes) {
    char a[96], b[96];
    return lu_fail(LU_EARG, "reshape %s -> %s changes the element count", lu_shape_str(t->ndim, t->shape, a, sizeof a),
                   lu_shape_str(ndim, shape, b, sizeof b));
  }
  t->ndim = ndim;
  for (int i = 0; i < LU_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
  return LU_OK;
}

float lu_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else { /* subnormal: normalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t lu_float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    man |= 0x800000;
    int shift = 14 - e;
    uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

double lu_host_get(const lu_tensor *t, int64_t i) {
  const void *p = t->host;
  switch (t->dtype) {
  case LU_F32: return ((const float *)p)[i];
  case LU_F16: return lu_half_to_float(((const uint16_t *)p)[i]);
  case LU_U8: return ((const uint8_t *)p)[i];
  case LU_I16: return ((const int16_t *)p)[i];
  case LU_I32: return ((const int32_t *)p)[i];
  case LU_I8: return ((const int8_t *)p)[i];
  case LU_U16: return ((const uint16_t *)p)[i];
  case LU_U32: return ((const uint32_t *)p)[i];
  case LU_I64: return (double)((const int64_t *)p)[i];
  case LU_F64: return ((const double *)p)[i];
  default: return 0;
  }
}

void lu_host_set(lu_tensor *t, int64_t i, double v) {
  void *p = t->host;
  switch (t->dtype) {
  case LU_F32: ((float *)p)[i] = (float)v; break;
  case LU_F16: ((uint16_t *)p)[i] = lu_float_to_half((float)v); break;
  case LU_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
  case LU_I16: ((int16_t *)p)[i] = (int16_t)v; break;
  case LU_I32: ((int32_t *)p)[i] = (int32_t)v; break;
  case LU_I8: ((int8_t *)p)[i] = (int8_t)v; break;
  case LU_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
  case LU_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
  case LU_I64: ((int64_t *)p)[i] = (int64_t)v; break;
  case LU_F64: ((double *)p)[i] = v; break;
  default: break;
  }
}

lu_status lu_tensor_convert_host(const lu_tensor *t, lu_dtype dt, lu_tensor **out) {
  if (!t->host) return lu_fail(LU_ESTATE, "convert: not a host tensor");
  lu_tensor *o;
  LU_TRY(lu_tensor_new_host(&o, dt, t->ndim, t->shape));
  int64_t n = lu_tensor_numel(t);
  if (dt == t->dtype) memcpy(o->host, t->host, t->bytes);
  else if (t->dtype == LU_F32 && dt == LU_F16)
    for (int64_t i = 0; i < n; i++) ((uint16_t *)o->host)[i] = lu_float_to_half(((const float *)t->host)[i]);
  else
    for (int64_t i = 0; i < n; i++) lu_host_set(o, i, lu_host_get(t, i));
  *out = o;
  return LU_OK;
}
