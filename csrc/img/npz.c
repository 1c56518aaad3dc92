/* npy/npz I/O with zlib. Reading streams each entry: the .npy header is parsed from the first
 * decompressed bytes and the array data is inflated (or read) straight into the tensor. Writing
 * streams the npy header and data through deflate, then patches the local header's CRC and sizes. */
#include "img/npz.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/atomic_file.h"

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

/* A byte source: reads exactly n bytes or fails. */
typedef struct src {
  lu_status (*read)(struct src *s, void *dst, size_t n);
  const char *where;
  FILE *fp;
  /* deflate */
  z_stream zs;
  int zinit;
  unsigned char *in;
  size_t in_cap;
  uint64_t in_left; /* compressed bytes not yet read from fp */
  uint64_t out_left; /* uncompressed bytes not yet produced */
  uint32_t crc;
} src;

static lu_status read_stored(src *s, void *dst, size_t n) {
  if (n > s->out_left) return lu_fail(LU_EFORMAT, "%s: entry shorter than its npy header says", s->where);
  if (fread(dst, 1, n, s->fp) != n) return lu_fail(LU_EIO, "%s: truncated file", s->where);
  s->out_left -= n;
  s->crc = (uint32_t)crc32_z(s->crc, dst, n);
  return LU_OK;
}

static lu_status read_inflate(src *s, void *dst, size_t n) {
  if (n > s->out_left) return lu_fail(LU_EFORMAT, "%s: entry shorter than its npy header says", s->where);
  s->zs.next_out = dst;
  size_t want = n;
  while (want > 0) {
    if (s->zs.avail_in == 0 && s->in_left > 0) {
      size_t k = s->in_left < s->in_cap ? (size_t)s->in_left : s->in_cap;
      if (fread(s->in, 1, k, s->fp) != k) return lu_fail(LU_EIO, "%s: truncated file", s->where);
      s->in_left -= k;
      s->zs.next_in = s->in;
      s->zs.avail_in = (uInt)k;
    }
    uInt chunk = want > (1u << 30) ? (1u << 30) : (uInt)want;
    s->zs.avail_out = chunk;
    int r = inflate(&s->zs, Z_NO_FLUSH);
    size_t got = chunk - s->zs.avail_out;
    want -= got;
    if (r == Z_STREAM_END && want > 0) return lu_fail(LU_EFORMAT, "%s: deflate stream ends early", s->where);
    if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && got > 0))
      return lu_fail(LU_EFORMAT, "%s: corrupt deflate stream (zlib %d)", s->where, r);
    if (got == 0 && s->zs.avail_in == 0 && s->in_left == 0) return lu_fail(LU_EFORMAT, "%s: truncated deflate stream", s->where);
  }
  s->out_left -= n;
  s->crc = (uint32_t)crc32_z(s->crc, dst, n);
  return LU_OK;
}

/* Reads an npy from the source into a new tensor. */
static lu_status read_npy_from(src *s, lu_tensor **out) {
  unsigned char pre[12];
  LU_TRY(s->read(s, pre, 10));
  if (memcmp(pre, "\x93NUMPY", 6)) return lu_fail(LU_EFORMAT, "%s: not an npy array (bad magic)", s->where);
  uint32_t hlen;
  if (pre[6] == 1) hlen = pre[8] | (uint32_t)pre[9] << 8;
  else if (pre[6] == 2 || pre[6] == 3) {
    LU_TRY(s->read(s, pre + 10, 2));
    hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  } else return lu_fail(LU_EUNSUPPORTED, "%s: npy format version %d is not supported", s->where, pre[6]);
  if (hlen > (1u << 24)) return lu_fail(LU_EFORMAT, "%s: npy header of %u bytes is implausible", s->where, hlen);
  char *h = malloc(hlen + 1);
  if (!h) return lu_fail(LU_ENOMEM, "%s: no memory for the npy header", s->where);
  lu_status st = s->read(s, h, hlen);
  h[hlen] = 0;
  lu_dtype dt = LU_F32;
  int ndim = 0;
  int64_t shape[LU_MAX_DIMS];
  if (st == LU_OK) st = parse_dict(s->where, h, &dt, &ndim, shape);
  free(h);
  if (st != LU_OK) return st;
  /* The array must fit in what is left of the file (or the zip entry) before anything is allocated. */
  uint64_t bytes = lu_dtype_size(dt), nonzero = bytes;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 0) { bytes = 0; continue; } /* an empty array needs no bytes... */
    if (nonzero > (UINT64_MAX >> 1) / (uint64_t)shape[i]) /* ...but its other extents must still be sane */
      return lu_fail(LU_EFORMAT, "%s: npy shape is too large", s->where);
    nonzero *= (uint64_t)shape[i];
  }
  for (int i = 0; i < ndim && bytes; i++) {
    if (shape[i] && bytes > s->out_left / (uint64_t)shape[i])
      return lu_fail(LU_EFORMAT, "%s: npy shape needs more bytes than the file holds", s->where);
    bytes *= (uint64_t)shape[i];
  }
  if (bytes > s->out_left) return lu_fail(LU_EFORMAT, "%s: npy shape needs more bytes than the file holds", s->where);
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, dt, ndim, shape));
  if (bytes && (st = s->read(s, t->host, bytes)) != LU_OK) { lu_tensor_free(t); return st; }
  *out = t;
  return LU_OK;
}

lu_status lu_npy_read(const char *path, lu_tensor **out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  src s = {0};
  s.read = read_stored;
  s.where = path;
  s.fp = fp;
  struct stat sb;
  s.out_left = fstat(fileno(fp), &sb) == 0 && sb.st_size >= 0 ? (uint64_t)sb.st_size : 0;
  lu_status st = read_npy_from(&s, out);
  fclose(fp);
  return st;
}

/* ---------- zip reading ---------- */

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void lu_npz_free_list(int n, char **names, lu_tensor **tensors) {
  for (int i = 0; i < n; i++) {
    if (names) free(names[i]);
    if (tensors) lu_tensor_free(tensors[i]);
  }
  free(names);
  free(tensors);
}

lu_status lu_npz_read(const char *path, int *n_out, char ***names_out, lu_tensor ***tensors_out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  lu_status st = LU_OK;
  unsigned char *tail = NULL, *cd = NULL;
  char **names = NULL;
  lu_tensor **tensors = NULL;
  int n = 0;
  src s = {0};
  if (fseeko(fp, 0, SEEK_END) != 0) { st = lu_fail(LU_EIO, "%s: cannot seek", path); goto done; }
  off_t fsize = ftello(fp);
  size_t tl = fsize < 65557 ? (size_t)fsize : 65557;
  tail = malloc(tl ? tl : 1);
  if (!tail) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); goto done; }
  if (fseeko(fp, fsize - (off_t)tl, SEEK_SET) != 0 || fread(tail, 1, tl, fp) != tl) { st = lu_fail(LU_EIO, "%s: cannot read the zip directory", path); goto done; }
  long eocd = -1;
  for (long i = (long)tl - 22; i >= 0; i--)
    if (rd32(tail + i) == 0x06054b50) { eocd = i; break; }
  if (eocd < 0) { st = lu_fail(LU_EFORMAT, "%s: not a zip/npz file (no end of central directory)", path); goto done; }
  uint64_t n_entries = rd16(tail + eocd + 10), cd_size = rd32(tail + eocd + 12), cd_off = rd32(tail + eocd + 16);
  if ((n_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) && eocd >= 20 && rd32(tail + eocd - 20) == 0x07064b50) {
    uint64_t z64 = rd64(tail + eocd - 20 + 8);
    unsigned char rec[56];
    if (fseeko(fp, (off_t)z64, SEEK_SET) != 0 || fread(rec, 1, 56, fp) != 56 || rd32(rec) != 0x06064b50) { st = lu_fail(LU_EFORMAT, "%s: bad zip64 end of central directory", path); goto done; }
    n_entries = rd64(rec + 32);
    cd_size = rd64(rec + 40);
    cd_off = rd64(rec + 48);
  }
  if (cd_size > (uint64_t)fsize || cd_off > (uint64_t)fsize - cd_size || n_entries > 100000) { st = lu_fail(LU_EFORMAT, "%s: zip central directory out of range", path); goto done; }
  cd = malloc(cd_size ? cd_size : 1);
  names = calloc(n_entries ? n_entries : 1, sizeof(char *));
  tensors = calloc(n_entries ? n_entries : 1, sizeof(lu_tensor *));
  s.in_cap = 1 << 20;
  s.in = malloc(s.in_cap);
  if (!cd || !names || !tensors || !s.in) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); goto done; }
  if (fseeko(fp, (off_t)cd_off, SEEK_SET) != 0 || fread(cd, 1, cd_size, fp) != cd_size) { st = lu_fail(LU_EIO, "%s: cannot read the zip directory", path); goto done; }
  size_t p = 0;
  for (uint64_t e = 0; e < n_entries; e++) {
    if (p + 46 > cd_size || rd32(cd + p) != 0x02014b50) { st = lu_fail(LU_EFORMAT, "%s: corrupt zip central directory", path); goto done; }
    unsigned method = rd16(cd + p + 10);
    uint32_t crc = rd32(cd + p + 16);
    uint64_t csize = rd32(cd + p + 20), usize = rd32(cd + p + 24);
    unsigned nlen = rd16(cd + p + 28), xlen = rd16(cd + p + 30), clen = rd16(cd + p + 32);
    uint64_t loff = rd32(cd + p + 42);
    if (p + 46 + nlen + xlen + clen > cd_size) { st = lu_fail(LU_EFORMAT, "%s: corrupt zip central directory", path); goto done; }
    const unsigned char *x = cd + p + 46 + nlen, *xe = x + xlen;
    while (x + 4 <= xe) {
      unsigned id = rd16(x), sz = rd16(x + 2);
      if (id == 1) {
        const unsigned char *q = x + 4, *qe = sz <= xe - q ? q + sz : xe;
        if (usize == 0xFFFFFFFF && q + 8 <= qe) { usize = rd64(q); q += 8; }
        if (csize == 0xFFFFFFFF && q + 8 <= qe) { csize = rd64(q); q += 8; }
        if (loff == 0xFFFFFFFF && q + 8 <= qe) { loff = rd64(q); q += 8; }
      }
      if (sz > xe - x - 4) break;
      x += 4 + sz;
    }
    char *name = malloc(nlen + 1);
    if (!name) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); goto done; }
    memcpy(name, cd + p + 46, nlen);
    name[nlen] = 0;
    if (nlen > 4 && !strcmp(name + nlen - 4, ".npy")) name[nlen - 4] = 0;
    names[n] = name;
    p += 46 + nlen + xlen + clen;

    char where[512];
    snprintf(where, sizeof where, "%s[%s]", path, name);
    unsigned char lh[30];
    if (fseeko(fp, (off_t)loff, SEEK_SET) != 0 || fread(lh, 1, 30, fp) != 30 || rd32(lh) != 0x04034b50) { st = lu_fail(LU_EFORMAT, "%s: bad local zip header", where); n++; goto done; }
    if (fseeko(fp, (off_t)(loff + 30 + rd16(lh + 26) + rd16(lh + 28)), SEEK_SET) != 0) { st = lu_fail(LU_EIO, "%s: cannot seek", where); n++; goto done; }
    uint64_t data_off = loff + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (csize > (uint64_t)fsize || data_off > (uint64_t)fsize - csize) { st = lu_fail(LU_EFORMAT, "%s: zip entry runs past the end of the file", where); n++; goto done; }
    if (method == 0 ? usize != csize : usize / 1032 > csize) { st = lu_fail(LU_EFORMAT, "%s: zip entry sizes are inconsistent", where); n++; goto done; }
    s.where = where;
    s.fp = fp;
    s.crc = 0;
    s.out_left = usize;
    s.in_left = csize;
    if (method == 0) s.read = read_stored;
    else if (method == 8) {
      s.read = read_inflate;
      memset(&s.zs, 0, sizeof s.zs);
      if (inflateInit2(&s.zs, -15) != Z_OK) { st = lu_fail(LU_ENOMEM, "%s: inflateInit failed", where); n++; goto done; }
      s.zinit = 1;
    } else { st = lu_fail(LU_EUNSUPPORTED, "%s: zip compression method %u is not supported", where, method); n++; goto done; }
    st = read_npy_from(&s, &tensors[n]);
    if (s.zinit) { inflateEnd(&s.zs); s.zinit = 0; }
    n++;
    if (st != LU_OK) goto done;
    if (s.out_left != 0) { st = lu_fail(LU_EFORMAT, "%s: %llu bytes after the array data", where, (unsigned long long)s.out_left); goto done; }
    if (s.crc != crc) { st = lu_fail(LU_EFORMAT, "%s: CRC mismatch", where); goto done; }
  }
done:
  if (s.zinit) inflateEnd(&s.zs);
  free(s.in);
  free(tail);
  free(cd);
  fclose(fp);
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

static void wr16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, v & 0xffff); wr16(p + 2, v >> 16); }
static void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

typedef struct { uint64_t off, csize, usize; uint32_t crc; unsigned method; } zent;

/* Writes bytes through deflate (level > 0) or as is, updating crc and csize. */
static lu_status put(FILE *fp, z_stream *zs, int level, const void *data, size_t n, int finish, unsigned char *obuf,
                     size_t ocap, zent *e, const char *path) {
  if (level == 0) {
    if (n && fwrite(data, 1, n, fp) != n) return lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
    e->csize += n;
    return LU_OK;
  }
  const unsigned char *p = data;
  size_t left = n;
  for (;;) {
    uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
    zs->next_in = (unsigned char *)p;
    zs->avail_in = chunk;
    int flush = (finish && chunk == left) ? Z_FINISH : Z_NO_FLUSH;
    int r;
    do {
      zs->next_out = obuf;
      zs->avail_out = (uInt)ocap;
      r = deflate(zs, flush);
      if (r == Z_STREAM_ERROR) return lu_fail(LU_EFORMAT, "%s: deflate failed", path);
      size_t got = ocap - zs->avail_out;
      if (got && fwrite(obuf, 1, got, fp) != got) return lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
      e->csize += got;
    } while (zs->avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
    p += chunk;
    left -= chunk;
    if (left == 0) break;
  }
  return LU_OK;
}

lu_status lu_npz_write(const char *path, int n, const char *const *names, const lu_tensor *const *tensors, int level) {
  if (level < 0 || level > 9) return lu_fail(LU_EARG, "%s: compression level %d not in 0..9", path, level);
  for (int i = 0; i < n; i++) {
    LU_TRY(check_host(path, tensors[i]));
    if (!descr_of(tensors[i]->dtype)) return lu_fail(LU_EUNSUPPORTED, "%s: dtype %s of '%s' cannot be written", path, lu_dtype_name(tensors[i]->dtype), names[i]);
    if (strlen(names[i]) > 1000 || !names[i][0]) return lu_fail(LU_EARG, "%s: bad array name", path);
  }
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *fp;
  LU_TRY(lu_atomic_fopen(path, tmp, sizeof tmp, &fp));
  zent *ents = calloc((size_t)(n ? n : 1), sizeof(zent));
  size_t ocap = 1 << 20;
  unsigned char *obuf = malloc(ocap);
  lu_status st = LU_OK;
  if (!ents || !obuf) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); goto done; }
  uint64_t off = 0;
  for (int i = 0; i < n && st == LU_OK; i++) {
    const lu_tensor *t = tensors[i];
    char fname[1100];
    snprintf(fname, sizeof fname, "%s.npy", names[i]);
    size_t nlen = strlen(fname);
    char hdr[512];
    size_t hlen;
    if ((st = npy_header(t, hdr, sizeof hdr, &hlen)) != LU_OK) break;
    size_t bytes = (size_t)lu_tensor_numel(t) * lu_dtype_size(t->dtype);
    zent *e = &ents[i];
    e->off = off;
    e->method = level ? 8 : 0;
    e->usize = hlen + bytes;
    e->crc = (uint32_t)crc32_z(crc32_z(0, (const unsigned char *)hdr, hlen), t->host, bytes);
    /* local header with a zip64 extra (sizes patched after the data) */
    unsigned char lh[30 + 20];
    memset(lh, 0, sizeof lh);
    wr32(lh, 0x04034b50);
    wr16(lh + 4, 45);
    wr16(lh + 8, e->method);
    wr16(lh + 12, 0x21); /* 1980-01-01 */
    wr32(lh + 18, 0xFFFFFFFF);
    wr32(lh + 22, 0xFFFFFFFF);
    wr16(lh + 26, (unsigned)nlen);
    wr16(lh + 28, 20);
    if (fwrite(lh, 1, 30, fp) != 30 || fwrite(fname, 1, nlen, fp) != nlen) { st = lu_fail(LU_EIO, "%s: write failed", path); break; }
    unsigned char x64[20];
    wr16(x64, 1);
    wr16(x64 + 2, 16);
    wr64(x64 + 4, 0);
    wr64(x64 + 12, 0);
    if (fwrite(x64, 1, 20, fp) != 20) { st = lu_fail(LU_EIO, "%s: write failed", path); break; }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (level && deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) { st = lu_fail(LU_ENOMEM, "%s: deflateInit failed", path); break; }
    st = put(fp, &zs, level, hdr, hlen, 0, obuf, ocap, e, path);
    if (st == LU_OK) st = put(fp, &zs, level, t->host, bytes, 1, obuf, ocap, e, path);
    if (level) deflateEnd(&zs);
    if (st != LU_OK) break;
    uint64_t end = off + 30 + nlen + 20 + e->csize;
    /* patch crc and the zip64 sizes */
    unsigned char c4[4];
    wr32(c4, e->crc);
    wr64(x64 + 4, e->usize);
    wr64(x64 + 12, e->csize);
    if (fseeko(fp, (off_t)(off + 14), SEEK_SET) != 0 || fwrite(c4, 1, 4, fp) != 4 ||
        fseeko(fp, (off_t)(off + 30 + nlen), SEEK_SET) != 0 || fwrite(x64, 1, 20, fp) != 20 ||
        fseeko(fp, (off_t)end, SEEK_SET) != 0) { st = lu_fail(LU_EIO, "%s: cannot patch the zip header", path); break; }
    off = end;
  }
  if (st != LU_OK) goto done;
  uint64_t cd_off = off;
  for (int i = 0; i < n && st == LU_OK; i++) {
    zent *e = &ents[i];
    char fname[1100];
    snprintf(fname, sizeof fname, "%s.npy", names[i]);
    size_t nlen = strlen(fname);
    unsigned char ch[46], x64[28];
    memset(ch, 0, sizeof ch);
    size_t xl = 0;
    int big_u = e->usize >= 0xFFFFFFFF, big_c = e->csize >= 0xFFFFFFFF, big_o = e->off >= 0xFFFFFFFF;
    if (big_u || big_c || big_o) {
      size_t q = 4;
      if (big_u) { wr64(x64 + q, e->usize); q += 8; }
      if (big_c) { wr64(x64 + q, e->csize); q += 8; }
      if (big_o) { wr64(x64 + q, e->off); q += 8; }
      wr16(x64, 1);
      wr16(x64 + 2, (unsigned)(q - 4));
      xl = q;
    }
    wr32(ch, 0x02014b50);
    wr16(ch + 4, 45 | (3 << 8));
    wr16(ch + 6, 45);
    wr16(ch + 10, e->method);
    wr16(ch + 14, 0x21);
    wr32(ch + 16, e->crc);
    wr32(ch + 20, big_c ? 0xFFFFFFFF : (uint32_t)e->csize);
    wr32(ch + 24, big_u ? 0xFFFFFFFF : (uint32_t)e->usize);
    wr16(ch + 28, (unsigned)nlen);
    wr16(ch + 30, (unsigned)xl);
    wr32(ch + 38, 0644u << 16 | 0100000u << 16);
    wr32(ch + 42, big_o ? 0xFFFFFFFF : (uint32_t)e->off);
    if (fwrite(ch, 1, 46, fp) != 46 || fwrite(fname, 1, nlen, fp) != nlen || (xl && fwrite(x64, 1, xl, fp) != xl))
      st = lu_fail(LU_EIO, "%s: write failed", path);
    off += 46 + nlen + xl;
  }
  if (st != LU_OK) goto done;
  uint64_t cd_size = off - cd_off;
  if (cd_off >= 0xFFFFFFFF || n >= 0xFFFF) {
    unsigned char z[56 + 20];
    memset(z, 0, sizeof z);
    wr32(z, 0x06064b50);
    wr64(z + 4, 44);
    wr16(z + 12, 45);
    wr16(z + 14, 45);
    wr64(z + 24, (uint64_t)n);
    wr64(z + 32, (uint64_t)n);
    wr64(z + 40, cd_size);
    wr64(z + 48, cd_off);
    wr32(z + 56, 0x07064b50);
    wr64(z + 64, off);
    wr32(z + 72, 1);
    if (fwrite(z, 1, sizeof z, fp) != sizeof z) { st = lu_fail(LU_EIO, "%s: write failed", path); goto done; }
  }
  unsigned char eocd[22];
  memset(eocd, 0, sizeof eocd);
  wr32(eocd, 0x06054b50);
  wr16(eocd + 8, n >= 0xFFFF ? 0xFFFF : (unsigned)n);
  wr16(eocd + 10, n >= 0xFFFF ? 0xFFFF : (unsigned)n);
  wr32(eocd + 12, cd_size >= 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t)cd_size);
  wr32(eocd + 16, cd_off >= 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t)cd_off);
  if (fwrite(eocd, 1, 22, fp) != 22) st = lu_fail(LU_EIO, "%s: write failed", path);
done:
  free(ents);
  free(obuf);
  return lu_atomic_fclose(fp, tmp, path, st);
}
