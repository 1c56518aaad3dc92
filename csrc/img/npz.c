/* npy/npz I/O on the zip layer (fmt/zip.h). Reading streams each entry: the .npy header is parsed from
 * the first decompressed bytes and the array data is inflated (or read) straight into the tensor.
 * Writing streams the npy header and data into one zip entry. */
#include "img/npz.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/atomic_file.h"
#include "fmt/zip.h"

/* ---------- npy header ---------- */

static const struct { const char *descr; lu_dtype dt; } k_descr[] = {
  {"<f4", LU_F32}, {"<f2", LU_F16}, {"<f8", LU_F64}, {"|u1", LU_U8}, {"<u1", LU_U8}, {"|b1", LU_U8},
  {"|i1", LU_I8}, {"<i1", LU_I8}, {"<i2", LU_I16}, {"<u2", LU_U16}, {"<i4", LU_I32}, {"<u4", LU_U32},
  {"<i8", LU_I64},
};

static const char *descr_of(lu_dtype dt) {
  switch (dt) {
  case LU_F32: return "<f4";
  case LU_F16: return "<f2";
  case LU_F64: return "<f8";
  case LU_U8: return "|u1";
  case LU_I8: return "|i1";
  case LU_I16: return "<i2";
  case LU_U16: return "<u2";
  case LU_I32: return "<i4";
  case LU_U32: return "<u4";
  case LU_I64: return "<i8";
  default: return NULL;
  }
}

/* Parses the python-dict header text h (nul-terminated). */
static lu_status parse_dict(const char *where, const char *h, lu_dtype *dt, int *ndim, int64_t *shape) {
  const char *d = strstr(h, "'descr'");
  const char *f = strstr(h, "'fortran_order'");
  const char *s = strstr(h, "'shape'");
  if (!d || !f || !s) return lu_fail(LU_EFORMAT, "%s: npy header lacks descr, fortran_order or shape", where);
  d = strchr(d + 7, '\'');
  if (!d) return lu_fail(LU_EFORMAT, "%s: npy header: malformed descr", where);
  d++;
  const char *de = strchr(d, '\'');
  if (!de || de - d > 15) return lu_fail(LU_EFORMAT, "%s: npy header: malformed descr", where);
  char descr[16];
  memcpy(descr, d, (size_t)(de - d));
  descr[de - d] = 0;
  int found = 0;
  for (size_t i = 0; i < sizeof k_descr / sizeof k_descr[0]; i++)
    if (!strcmp(descr, k_descr[i].descr)) { *dt = k_descr[i].dt; found = 1; }
  if (!found) return lu_fail(LU_EUNSUPPORTED, "%s: npy dtype '%s' is not supported", where, descr);
  f += strlen("'fortran_order'");
  while (*f == ' ' || *f == ':') f++;
  if (!strncmp(f, "True", 4)) return lu_fail(LU_EUNSUPPORTED, "%s: fortran-ordered npy arrays are not supported", where);
  s = strchr(s + 7, '(');
  if (!s) return lu_fail(LU_EFORMAT, "%s: npy header: malformed shape", where);
  s++;
  int n = 0;
  for (;;) {
    while (*s == ' ' || *s == ',') s++;
    if (*s == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || errno == ERANGE) return lu_fail(LU_EFORMAT, "%s: npy header: malformed shape", where);
    if (n >= LU_MAX_DIMS) return lu_fail(LU_EUNSUPPORTED, "%s: npy array has more than %d dimensions", where, LU_MAX_DIMS);
    shape[n++] = v;
    s = end;
    while (*s == 'L') s++;
  }
  *ndim = n;
  return LU_OK;
}

/* A byte source: reads exactly n bytes or fails (a plain .npy file or a zip entry). */
typedef struct src {
  const char *where;
  FILE *fp;
  lu_zip_stream *zs;
  uint64_t left; /* bytes the source still holds after the header (file size or entry size bound) */
} src;

static lu_status src_read(src *s, void *dst, size_t n) {
  if (s->zs) return lu_zip_stream_read(s->zs, dst, n);
  if (fread(dst, 1, n, s->fp) != n) return lu_fail(LU_EIO, "%s: truncated file", s->where);
  return LU_OK;
}

/* Reads an npy from the source into a new tensor. */
static lu_status read_npy_from(src *s, lu_tensor **out) {
  unsigned char pre[12];
  LU_TRY(src_read(s, pre, 10));
  if (memcmp(pre, "\x93NUMPY", 6)) return lu_fail(LU_EFORMAT, "%s: not an npy array (bad magic)", s->where);
  uint32_t hlen;
  if (pre[6] == 1) hlen = pre[8] | (uint32_t)pre[9] << 8;
  else if (pre[6] == 2 || pre[6] == 3) {
    LU_TRY(src_read(s, pre + 10, 2));
    hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  } else return lu_fail(LU_EUNSUPPORTED, "%s: npy format version %d is not supported", s->where, pre[6]);
  if (hlen > (1u << 24)) return lu_fail(LU_EFORMAT, "%s: npy header of %u bytes is implausible", s->where, hlen);
  char *h = malloc(hlen + 1);
  if (!h) return lu_fail(LU_ENOMEM, "%s: no memory for the npy header", s->where);
  lu_status st = src_read(s, h, hlen);
  h[hlen] = 0;
  lu_dtype dt = LU_F32;
  int ndim = 0;
  int64_t shape[LU_MAX_DIMS];
  if (st == LU_OK) st = parse_dict(s->where, h, &dt, &ndim, shape);
  free(h);
  if (st != LU_OK) return st;
  /* The array must fit in what the file (or zip entry) holds before anything is allocated: a 200-byte file
   * must not ask for gigabytes. An empty array needs no bytes, but its other extents must still be sane. */
  uint64_t need = lu_dtype_size(dt), nonzero = need;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 0) { need = 0; continue; }
    if (nonzero > (UINT64_MAX >> 1) / (uint64_t)shape[i]) return lu_fail(LU_EFORMAT, "%s: npy shape is too large", s->where);
    nonzero *= (uint64_t)shape[i];
  }
  if (need && nonzero > s->left)
    return lu_fail(LU_EFORMAT, "%s: npy shape needs more bytes than the file holds", s->where);
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, dt, ndim, shape));
  size_t bytes = (size_t)lu_shape_numel(ndim, shape) * lu_dtype_size(dt);
  if (bytes && (st = src_read(s, t->host, bytes)) != LU_OK) { lu_tensor_free(t); return st; }
  *out = t;
  return LU_OK;
}

lu_status lu_npy_read(const char *path, lu_tensor **out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  src s = {0};
  s.where = path;
  s.fp = fp;
  struct stat sb;
  s.left = fstat(fileno(fp), &sb) == 0 && sb.st_size >= 0 ? (uint64_t)sb.st_size : 0;
  lu_status st = read_npy_from(&s, out);
  fclose(fp);
  return st;
}

/* ---------- npz reading ---------- */

void lu_npz_free_list(int n, char **names, lu_tensor **tensors) {
  for (int i = 0; i < n; i++) {
    if (names) free(names[i]);
    if (tensors) lu_tensor_free(tensors[i]);
  }
  free(names);
  free(tensors);
}

lu_status lu_npz_read(const char *path, int *n_out, char ***names_out, lu_tensor ***tensors_out) {
  lu_zip *z;
  LU_TRY(lu_zip_open(path, &z));
  lu_status st = LU_OK;
  int n = 0;
  char **names = calloc((size_t)(z->n ? z->n : 1), sizeof(char *));
  lu_tensor **tensors = calloc((size_t)(z->n ? z->n : 1), sizeof(lu_tensor *));
  if (!names || !tensors) st = lu_fail(LU_ENOMEM, "%s: no memory", path);
  for (int e = 0; e < z->n && st == LU_OK; e++) {
    size_t nlen = strlen(z->e[e].name);
    char *name = strdup(z->e[e].name);
    if (!name) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); break; }
    if (nlen > 4 && !strcmp(name + nlen - 4, ".npy")) name[nlen - 4] = 0;
    names[n] = name;
    char where[512];
    snprintf(where, sizeof where, "%s[%s]", path, name);
    src s = {0};
    s.where = where;
    s.left = z->e[e].usize;
    st = lu_zip_stream_open(z, e, &s.zs);
    if (st == LU_OK) st = read_npy_from(&s, &tensors[n]);
    n++;
    if (st == LU_OK) st = lu_zip_stream_finish(s.zs, 0);
    lu_zip_stream_close(s.zs);
  }
  lu_zip_close(z);
  if (st != LU_OK) { lu_npz_free_list(n, names, tensors); return st; }
  *n_out = n;
  *names_out = names;
  *tensors_out = tensors;
  return LU_OK;
}

/* ---------- writing ---------- */

/* npy v1.0 header, padded with spaces so data starts at a multiple of 64 (as numpy >= 1.? does). */
static lu_status npy_header(const lu_tensor *t, char *buf, size_t cap, size_t *len) {
  const char *descr = descr_of(t->dtype);
  if (!descr) return lu_fail(LU_EUNSUPPORTED, "npy: dtype %s cannot be written", lu_dtype_name(t->dtype));
  char shape[256];
  size_t k = 0;
  k += (size_t)snprintf(shape + k, sizeof shape - k, "(");
  for (int d = 0; d < t->ndim; d++)
    k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld%s", (long long)t->shape[d], t->ndim == 1 ? "," : (d + 1 < t->ndim ? ", " : ""));
  snprintf(shape + k, sizeof shape - k, ")");
  char dict[400];
  int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  size_t total = 10 + (size_t)dl + 1;
  size_t padded = (total + 63) / 64 * 64;
  if (padded > cap) return lu_fail(LU_EARG, "npy: header too long");
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  uint16_t hl = (uint16_t)(padded - 10);
  buf[8] = (char)(hl & 0xff);
  buf[9] = (char)(hl >> 8);
  memcpy(buf + 10, dict, (size_t)dl);
  memset(buf + 10 + dl, ' ', padded - total);
  buf[padded - 1] = '\n';
  *len = padded;
  return LU_OK;
}

static lu_status check_host(const char *path, const lu_tensor *t) {
  if (!t || !t->host) return lu_fail(LU_EARG, "%s: array is not a host tensor", path);
  return LU_OK;
}

lu_status lu_npy_write(const char *path, const lu_tensor *t) {
  LU_TRY(check_host(path, t));
  char hdr[512];
  size_t hlen;
  LU_TRY(npy_header(t, hdr, sizeof hdr, &hlen));
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *fp;
  LU_TRY(lu_atomic_fopen(path, tmp, sizeof tmp, &fp));
  size_t bytes = (size_t)lu_tensor_numel(t) * lu_dtype_size(t->dtype);
  lu_status st = LU_OK;
  if (fwrite(hdr, 1, hlen, fp) != hlen || (bytes && fwrite(t->host, 1, bytes, fp) != bytes))
    st = lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
  return lu_atomic_fclose(fp, tmp, path, st);
}

lu_status lu_npz_write(const char *path, int n, const char *const *names, const lu_tensor *const *tensors, int level) {
  if (level < 0 || level > 9) return lu_fail(LU_EARG, "%s: compression level %d not in 0..9", path, level);
  for (int i = 0; i < n; i++) {
    LU_TRY(check_host(path, tensors[i]));
    if (!descr_of(tensors[i]->dtype)) return lu_fail(LU_EUNSUPPORTED, "%s: dtype %s of '%s' cannot be written", path, lu_dtype_name(tensors[i]->dtype), names[i]);
    if (strlen(names[i]) > 1000 || !names[i][0]) return lu_fail(LU_EARG, "%s: bad array name", path);
  }
  lu_zip_writer *w;
  LU_TRY(lu_zip_writer_open(path, &w));
  lu_status st = LU_OK;
  for (int i = 0; i < n && st == LU_OK; i++) {
    const lu_tensor *t = tensors[i];
    char fname[1100];
    snprintf(fname, sizeof fname, "%s.npy", names[i]);
    char hdr[512];
    size_t hlen;
    if ((st = npy_header(t, hdr, sizeof hdr, &hlen)) != LU_OK) break;
    size_t bytes = (size_t)lu_tensor_numel(t) * lu_dtype_size(t->dtype);
    st = lu_zip_writer_begin(w, fname, hlen + bytes, level, 0);
    if (st == LU_OK) st = lu_zip_writer_write(w, hdr, hlen);
    if (st == LU_OK) st = lu_zip_writer_write(w, t->host, bytes);
    if (st == LU_OK) st = lu_zip_writer_end(w);
  }
  if (st != LU_OK) { lu_zip_writer_abort(w); return st; }
  return lu_zip_writer_finish(w);
}
