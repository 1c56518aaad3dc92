/* Blosc2 NDArray (.b2nd) reader: see b2nd.h for what is supported. The file is read whole; the frame
 * header and the b2nd metalayer are msgpack, parsed with a small bounds-checked cursor; each chunk is
 * decoded into a chunk-sized buffer (blocks in C order, each a C-order block of blockshape) and its
 * valid region is copied into the tensor, since b2nd pads both the chunk grid and the blocks. */
#include "fmt/b2nd.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define B2_MAXDIM 8 /* what b2nd allows; tensors take LU_MAX_DIMS */

/* Every failure names the file: the caller may be reading hundreds of cases. */
#define BAD(path, ...) b2_bad(path, __VA_ARGS__)
static lu_status b2_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lu_status b2_bad(const char *path, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lu_fail(LU_EFORMAT, "%s: b2nd: %s", path, msg);
}

static uint32_t rd32le(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64le(const uint8_t *p) { return (uint64_t)rd32le(p) | (uint64_t)rd32le(p + 4) << 32; }
static uint64_t rdbe(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* ---------- msgpack cursor (the subset frames use: ints, str, bin, array, map, bool, nil, ext) ---------- */

typedef struct {
  const uint8_t *p;
  size_t n, pos;
  const char *path, *what; /* what: the part being parsed, for messages */
} mp;

static lu_status mp_need(mp *m, size_t k) {
  if (k > m->n - m->pos) return BAD(m->path, "%s is cut short at byte %zu (truncated or corrupt)", m->what, m->pos);
  return LU_OK;
}

static lu_status mp_int(mp *m, int64_t *v) {
  LU_TRY(mp_need(m, 1));
  uint8_t t = m->p[m->pos];
  if (t <= 0x7f) { *v = t; m->pos++; return LU_OK; }
  if (t >= 0xe0) { *v = (int8_t)t; m->pos++; return LU_OK; }
  int n;
  int sgn;
  switch (t) {
  case 0xcc: n = 1; sgn = 0; break;
  case 0xcd: n = 2; sgn = 0; break;
  case 0xce: n = 4; sgn = 0; break;
  case 0xcf: n = 8; sgn = 0; break;
  case 0xd0: n = 1; sgn = 1; break;
  case 0xd1: n = 2; sgn = 1; break;
  case 0xd2: n = 4; sgn = 1; break;
  case 0xd3: n = 8; sgn = 1; break;
  default: return BAD(m->path, "%s: expected an integer at byte %zu, found type 0x%02x", m->what, m->pos, t);
  }
  LU_TRY(mp_need(m, 1 + (size_t)n));
  uint64_t u = rdbe(m->p + m->pos + 1, n);
  m->pos += 1 + (size_t)n;
  if (sgn) {
    int sh = 64 - 8 * n; /* sign-extend without relying on implementation-defined shifts */
    *v = n == 8 ? (int64_t)u : (int64_t)(u << sh) / ((int64_t)1 << sh);
  } else {
    if (u > INT64_MAX) return BAD(m->path, "%s: integer out of range at byte %zu", m->what, m->pos);
    *v = (int64_t)u;
  }
  return LU_OK;
}

/* str or bin: *s points into the buffer. */
static lu_status mp_bytes(mp *m, const uint8_t **s, size_t *len) {
  LU_TRY(mp_need(m, 1));
  uint8_t t = m->p[m->pos];
  size_t hl;
  uint64_t l;
  if ((t & 0xe0) == 0xa0) { hl = 1; l = t & 0x1f; }
  else if (t == 0xd9 || t == 0xc4) { hl = 2; LU_TRY(mp_need(m, 2)); l = m->p[m->pos + 1]; }
  else if (t == 0xda || t == 0xc5) { hl = 3; LU_TRY(mp_need(m, 3)); l = rdbe(m->p + m->pos + 1, 2); }
  else if (t == 0xdb || t == 0xc6) { hl = 5; LU_TRY(mp_need(m, 5)); l = rdbe(m->p + m->pos + 1, 4); }
  else return BAD(m->path, "%s: expected a string at byte %zu, found type 0x%02x", m->what, m->pos, t);
  LU_TRY(mp_need(m, hl + l));
  *s = m->p + m->pos + hl;
  *len = (size_t)l;
  m->pos += hl + (size_t)l;
  return LU_OK;
}

/* array (is_map 0) or map (is_map 1) header. */
static lu_status mp_container(mp *m, int is_map, uint32_t *count) {
  LU_TRY(mp_need(m, 1));
  uint8_t t = m->p[m->pos];
  uint8_t fix = is_map ? 0x80 : 0x90, t16 = is_map ? 0xde : 0xdc, t32 = is_map ? 0xdf : 0xdd;
  if ((t & 0xf0) == fix) { *count = t & 0x0f; m->pos++; return LU_OK; }
  if (t == t16) { LU_TRY(mp_need(m, 3)); *count = (uint32_t)rdbe(m->p + m->pos + 1, 2); m->pos += 3; return LU_OK; }
  if (t == t32) { LU_TRY(mp_need(m, 5)); *count = (uint32_t)rdbe(m->p + m->pos + 1, 4); m->pos += 5; return LU_OK; }
  return BAD(m->path, "%s: expected %s at byte %zu, found type 0x%02x", m->what, is_map ? "a map" : "an array", m->pos, t);
}

/* Skips one value of any type; depth bounds recursion on hostile nesting. */
static lu_status mp_skip(mp *m, int depth) {
  if (depth > 16) return BAD(m->path, "%s: msgpack nested too deeply at byte %zu", m->what, m->pos);
  LU_TRY(mp_need(m, 1));
  uint8_t t = m->p[m->pos];
  int64_t iv;
  const uint8_t *s;
  size_t l;
  uint32_t c;
  if (t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3)) return mp_int(m, &iv);
  if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb || t == 0xc4 || t == 0xc5 || t == 0xc6)
    return mp_bytes(m, &s, &l);
  if (t == 0xc0 || t == 0xc2 || t == 0xc3) { m->pos++; return LU_OK; }
  if (t == 0xca) { LU_TRY(mp_need(m, 5)); m->pos += 5; return LU_OK; }
  if (t == 0xcb) { LU_TRY(mp_need(m, 9)); m->pos += 9; return LU_OK; }
  if (t >= 0xd4 && t <= 0xd8) { /* fixext 1..16: type byte + 2^k bytes */
    size_t k = (size_t)1 << (t - 0xd4);
    LU_TRY(mp_need(m, 2 + k));
    m->pos += 2 + k;
    return LU_OK;
  }
  if (t == 0xc7 || t == 0xc8 || t == 0xc9) {
    int hl = t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4;
    LU_TRY(mp_need(m, 2 + (size_t)hl));
    uint64_t len = rdbe(m->p + m->pos + 1, hl);
    LU_TRY(mp_need(m, 2 + (size_t)hl + len));
    m->pos += 2 + (size_t)hl + (size_t)len;
    return LU_OK;
  }
  int is_map = (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
  LU_TRY(mp_container(m, is_map, &c));
  for (uint64_t i = 0; i < (uint64_t)c * (is_map ? 2 : 1); i++) LU_TRY(mp_skip(m, depth + 1));
  return LU_OK;
}

/* ---------- numpy dtypes ---------- */

static const struct { const char *descr; lu_dtype dt; } k_dtypes[] = {
  {"<f4", LU_F32}, {"<f2", LU_F16}, {"<f8", LU_F64}, {"|u1", LU_U8}, {"<u1", LU_U8}, {"|b1", LU_U8},
  {"|i1", LU_I8},  {"<i1", LU_I8},  {"<i2", LU_I16}, {"<u2", LU_U16}, {"<i4", LU_I32}, {"<u4", LU_U32},
  {"<i8", LU_I64},
};

/* ---------- chunk decoding ---------- */

/* BloscLZ (a FastLZ variant; format facts from c-blosc2's documentation and behaviour): a control byte
 * below 32 starts a literal run of ctrl+1 bytes; otherwise its top 3 bits are a match length (7: more
 * length bytes follow, summed while 255) and its low 5 bits the high byte of a back distance; a
 * distance byte of 255 after a high part of 31 means a 16-bit big-endian far distance follows.
 * The stream ends after a match only when no control byte follows it; that last match is not
 * emitted (the encoder never ends a stream that way). Returns the bytes written or -1. */
static int64_t blosclz_decode(const uint8_t *ip, size_t n, uint8_t *op0, size_t cap) {
  const uint8_t *end = ip + n;
  uint8_t *op = op0, *op_end = op0 + cap;
  if (n == 0) return 0;
  uint32_t ctrl = *ip++ & 31u;
  for (;;) {
    if (ctrl >= 32) {
      size_t len = (ctrl >> 5) - 1;
      size_t dist = (size_t)(ctrl & 31u) << 8;
      if (len == 6) {
        uint8_t code;
        do {
          if (ip + 1 >= end) return -1;
          code = *ip++;
          len += code;
        } while (code == 255);
      } else if (ip + 1 >= end) return -1;
      uint8_t code = *ip++;
      len += 3;
      dist += code;
      if (code == 255 && (ctrl & 31u) == 31u) {
        if (ip + 1 >= end) return -1;
        dist = ((size_t)ip[0] << 8 | ip[1]) + 8191;
        ip += 2;
      }
      dist += 1;
      if (len > (size_t)(op_end - op) || dist > (size_t)(op - op0)) return -1;
      if (ip >= end) break;
      ctrl = *ip++;
      const uint8_t *ref = op - dist;
      for (size_t i = 0; i < len; i++) op[i] = ref[i]; /* byte by byte: the match may overlap its output */
      op += len;
    } else {
      size_t len = ctrl + 1;
      if (len > (size_t)(op_end - op) || len > (size_t)(end - ip)) return -1;
      memcpy(op, ip, len);
      op += len;
      ip += len;
      if (ip >= end) break;
      ctrl = *ip++;
    }
  }
  return op - op0;
}

static const char *codec_name(int c) {
  static const char *names[8] = {"BloscLZ", "LZ4", "reserved(2)", "zlib", "ZSTD", "reserved(5)", "user-defined", "super-chunk"};
  return names[c & 7];
}

/* One compressed stream of a block into dst (exactly n bytes). */
static lu_status decode_stream(const char *path, int codec, const uint8_t *src, size_t cn, uint8_t *dst, size_t n,
                               const char *where) {
  int ok = 0;
  switch (codec) {
  case 0: ok = blosclz_decode(src, cn, dst, n) == (int64_t)n; break;
  case 1:
    ok = cn <= INT32_MAX && n <= INT32_MAX && LZ4_decompress_safe((const char *)src, (char *)dst, (int)cn, (int)n) == (int)n;
    break;
  case 3: {
    uLongf dn = (uLongf)n;
    ok = uncompress(dst, &dn, src, (uLong)cn) == Z_OK && dn == n;
    break;
  }
  case 4: {
    size_t r = ZSTD_decompress(dst, n, src, cn);
    ok = !ZSTD_isError(r) && r == n;
    break;
  }
  default: return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %s: codec %s is not supported", path, where, codec_name(codec));
  }
  if (!ok) return BAD(path, "%s: %s data does not decompress to %zu bytes (corrupt)", where, codec_name(codec), n);
  return LU_OK;
}

/* Undoes a byte shuffle of n bytes grouped by ts: byte k of element i was stored at k*nel + i; bytes past
 * the last whole element were left in place. */
static void unshuffle(size_t ts, size_t n, const uint8_t *src, uint8_t *dst) {
  size_t nel = n / ts;
  for (size_t k = 0; k < ts; k++)
    for (size_t i = 0; i < nel; i++) dst[i * ts + k] = src[k * nel + i];
  memcpy(dst + nel * ts, src + nel * ts, n - nel * ts);
}

static void fill_pattern(uint8_t *dst, size_t n, const uint8_t *val, size_t ts) {
  for (size_t i = 0; i + ts <= n; i += ts) memcpy(dst + i, val, ts);
}

static lu_status fill_nan(const char *path, uint8_t *dst, size_t n, size_t ts, const char *where) {
  if (ts == 4) { float f = NAN; fill_pattern(dst, n, (const uint8_t *)&f, 4); }
  else if (ts == 8) { double d = NAN; fill_pattern(dst, n, (const uint8_t *)&d, 8); }
  else return BAD(path, "%s: a NaN chunk needs 4- or 8-byte items, not %zu", where, ts);
  return LU_OK;
}

/* A Blosc2 chunk at c (at most avail bytes available) into dst, which must be exactly dn bytes.
 * typesize: the items' size the caller expects (checked against the chunk's). tmp: 2 * blocksize bytes
 * of scratch, allocated here on first need. */
static lu_status decode_chunk(const char *path, const uint8_t *c, size_t avail, uint8_t *dst, size_t dn, size_t typesize,
                              const char *where, uint8_t **tmp, size_t *tmpn) {
  if (avail < 16) return BAD(path, "%s: chunk header runs past the end of the file", where);
  uint8_t flags = c[2];
  size_t ts = c[3];
  size_t nbytes = rd32le(c + 4), blocksize = rd32le(c + 8), cbytes = rd32le(c + 12);
  if (cbytes < 16 || cbytes > avail) return BAD(path, "%s: chunk of %zu bytes runs past the end of the file (%zu left)", where, cbytes, avail);
  if (nbytes != dn) return BAD(path, "%s: chunk holds %zu bytes, the array layout needs %zu", where, nbytes, dn);
  if (ts != typesize) return BAD(path, "%s: chunk items are %zu bytes, the dtype's are %zu", where, ts, typesize);
  uint8_t filters[6] = {0}, fmeta[6] = {0};
  size_t hl = 16;
  int extended = (flags & 0x05) == 0x05; /* both shuffle bits set: the Blosc2 extended header */
  if (extended) {
    hl = 32;
    if (cbytes < 32) return BAD(path, "%s: chunk of %zu bytes is shorter than its 32-byte header", where, cbytes);
    memcpy(filters, c + 16, 6);
    memcpy(fmeta, c + 24, 6);
    uint8_t flags2 = c[30], bflags = c[31];
    int special = (bflags >> 4) & 7;
    if (special) {
      switch (special) {
      case 1: case 4: memset(dst, 0, dn); return LU_OK; /* zeros; uninitialized reads as zeros */
      case 2: return fill_nan(path, dst, dn, ts, where);
      case 3:
        if (cbytes != 32 + ts || ts == 0) return BAD(path, "%s: repeated-value chunk of %zu bytes for %zu-byte items", where, cbytes, ts);
        fill_pattern(dst, dn, c + 32, ts);
        return LU_OK;
      default: return BAD(path, "%s: unknown special chunk kind %d", where, special);
      }
    }
    if (bflags & 0x08) return BAD(path, "%s: lazy chunk stored in a file", where);
    if (bflags & 0x01) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %s: chunks compressed with a dictionary are not supported", path, where);
    if (flags2 & 0x01) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %s: variable-length blocks are not supported", path, where);
  } else {
    filters[5] = (flags & 0x01) ? 1 : (flags & 0x04) ? 2 : 0; /* Blosc1 header: shuffle bits in flags */
  }
  for (int i = 0; i < 6; i++) {
    int f = filters[i];
    if (f == 0 || f == 1 || f == 4) continue; /* none, shuffle, trunc_prec (nothing to undo) */
    const char *fname = f == 2 ? "BITSHUFFLE" : f == 3 ? "DELTA" : "a plugin filter";
    return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %s: filter %s (id %d) is not supported (only NOFILTER, SHUFFLE, TRUNC_PREC)",
                   path, where, fname, f);
  }
  if (flags & 0x02) { /* memcpyed: the data follows the header as is */
    if (cbytes - hl < dn) return BAD(path, "%s: stored chunk has %zu bytes of data, needs %zu", where, cbytes - hl, dn);
    memcpy(dst, c + hl, dn);
    return LU_OK;
  }
  int codec = flags >> 5;
  if (codec != 0 && codec != 1 && codec != 3 && codec != 4)
    return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %s: codec %s is not supported (ZSTD, LZ4, BloscLZ, zlib are)", path, where, codec_name(codec));
  if (dn == 0) return LU_OK;
  if (blocksize == 0 || ts == 0) return BAD(path, "%s: chunk has a block size of 0 or items of 0 bytes", where);
  if (blocksize > dn) return BAD(path, "%s: block size %zu exceeds the chunk's %zu bytes", where, blocksize, dn);
  size_t nblocks = (dn + blocksize - 1) / blocksize;
  if (nblocks > (cbytes - hl) / 4) return BAD(path, "%s: %zu block offsets do not fit in a chunk of %zu bytes", where, nblocks, cbytes);
  if (*tmpn < 2 * blocksize) {
    free(*tmp);
    *tmp = malloc(2 * blocksize);
    *tmpn = *tmp ? 2 * blocksize : 0;
    if (!*tmp) return lu_fail(LU_ENOMEM, "%s: b2nd: cannot allocate %zu bytes of scratch", path, 2 * blocksize);
  }
  int split = !(flags & 0x10);
  size_t data0 = hl + 4 * nblocks;
  for (size_t b = 0; b < nblocks; b++) {
    size_t bsize = b + 1 < nblocks || dn % blocksize == 0 ? blocksize : dn % blocksize;
    int leftover = bsize != blocksize;
    size_t nstreams = split && !leftover ? ts : 1;
    size_t neb = bsize / nstreams;
    if (neb * nstreams != bsize) return BAD(path, "%s: block of %zu bytes cannot split into %zu streams", where, bsize, nstreams);
    size_t pos = rd32le(c + hl + 4 * b);
    if (pos < data0 || pos > cbytes) return BAD(path, "%s: block %zu starts at %zu, outside its chunk of %zu bytes", where, b, pos, cbytes);
    uint8_t *out = *tmp;
    for (size_t j = 0; j < nstreams; j++) {
      if (cbytes - pos < 4) return BAD(path, "%s: block %zu stream %zu: size runs past the chunk", where, b, j);
      int32_t cs = (int32_t)rd32le(c + pos);
      pos += 4;
      uint8_t *o = out + j * neb;
      if (cs == 0) memset(o, 0, neb); /* a stream of zeros */
      else if (cs < 0) {
        if (pos >= cbytes) return BAD(path, "%s: block %zu stream %zu: token runs past the chunk", where, b, j);
        uint8_t token = c[pos++];
        if (!(token & 1) || cs < -255) return BAD(path, "%s: block %zu stream %zu: unknown stream encoding (size %" PRId32 ", token 0x%02x)", where, b, j, cs, token);
        memset(o, (uint8_t)-cs, neb); /* a run of one byte value */
      } else {
        size_t csz = (size_t)cs;
        if (csz > cbytes - pos) return BAD(path, "%s: block %zu stream %zu: %zu bytes run past the chunk", where, b, j, csz);
        if (csz == neb) memcpy(o, c + pos, neb); /* incompressible: stored */
        else {
          char w[160];
          snprintf(w, sizeof w, "%s block %zu stream %zu", where, b, j);
          LU_TRY(decode_stream(path, codec, c + pos, csz, o, neb, w));
        }
        pos += csz;
      }
    }
    /* filters are undone from the last slot to the first */
    uint8_t *cur = out, *other = *tmp + blocksize;
    for (int i = 5; i >= 0; i--)
      if (filters[i] == 1) {
        unshuffle(fmeta[i] ? fmeta[i] : ts, bsize, cur, other);
        uint8_t *t = cur; cur = other; other = t;
      }
    memcpy(dst + b * blocksize, cur, bsize);
  }
  return LU_OK;
}

/* ---------- frame ---------- */

typedef struct {
  const char *path;
  uint8_t *buf;
  size_t n;
} b2file;

static lu_status slurp(const char *path, b2file *f) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  lu_status st = LU_OK;
  long sz = -1;
  if (fseek(fp, 0, SEEK_END) == 0) sz = ftell(fp);
  if (sz < 0 || fseek(fp, 0, SEEK_SET) != 0) st = lu_fail(LU_EIO, "%s: cannot size the file: %s", path, strerror(errno));
  else {
    f->n = (size_t)sz;
    f->buf = malloc(f->n ? f->n : 1);
    if (!f->buf) st = lu_fail(LU_ENOMEM, "%s: cannot allocate %zu bytes to read it", path, f->n);
    else if (fread(f->buf, 1, f->n, fp) != f->n) st = lu_fail(LU_EIO, "%s: read failed", path);
  }
  fclose(fp);
  return st;
}

typedef struct {
  int64_t header_len, frame_len, cbytes, typesize, chunksize;
  int ndim;
  int64_t shape[B2_MAXDIM], chunk[B2_MAXDIM], block[B2_MAXDIM];
  char dtype[16];
} b2meta;

static lu_status parse_b2nd_meta(const b2file *f, size_t off, size_t lim, b2meta *h) {
  mp m = {f->buf, lim, off, f->path, "b2nd metalayer"};
  const uint8_t *s;
  size_t l;
  LU_TRY(mp_bytes(&m, &s, &l)); /* the bin32 holding the metalayer's own msgpack */
  mp b = {f->buf, (size_t)(s - f->buf) + l, (size_t)(s - f->buf), f->path, "b2nd metalayer"};
  uint32_t cnt;
  int64_t v, nd;
  LU_TRY(mp_container(&b, 0, &cnt));
  if (cnt < 7) return BAD(f->path, "b2nd metalayer has %u fields, expected 7", cnt);
  LU_TRY(mp_int(&b, &v)); /* format version */
  LU_TRY(mp_int(&b, &nd));
  if (nd < 0 || nd > B2_MAXDIM) return BAD(f->path, "b2nd metalayer gives %" PRId64 " dimensions", nd);
  if (nd == 0) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: 0-dimensional arrays are not supported", f->path);
  if (nd > LU_MAX_DIMS) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: %" PRId64 " dimensions (tensors have at most %d)", f->path, nd, LU_MAX_DIMS);
  h->ndim = (int)nd;
  int64_t *dst[3] = {h->shape, h->chunk, h->block};
  static const char *names[3] = {"shape", "chunkshape", "blockshape"};
  for (int k = 0; k < 3; k++) {
    LU_TRY(mp_container(&b, 0, &cnt));
    if (cnt != (uint32_t)nd) return BAD(f->path, "b2nd %s has %u entries for %d dimensions", names[k], cnt, h->ndim);
    for (int i = 0; i < h->ndim; i++) {
      LU_TRY(mp_int(&b, &dst[k][i]));
      if (dst[k][i] < (k ? 1 : 0) || dst[k][i] > ((int64_t)1 << 40))
        return BAD(f->path, "b2nd %s[%d] = %" PRId64 " is out of range", names[k], i, dst[k][i]);
    }
  }
  LU_TRY(mp_int(&b, &v));
  if (v != 0) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: dtype format %" PRId64 " is not supported (only 0, numpy)", f->path, v);
  LU_TRY(mp_bytes(&b, &s, &l));
  if (l >= sizeof h->dtype) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: dtype of %zu characters is not supported", f->path, l);
  memcpy(h->dtype, s, l);
  h->dtype[l] = 0;
  for (size_t i = 0; i < l; i++)
    if (h->dtype[i] < 0x20 || h->dtype[i] > 0x7e) h->dtype[i] = '?'; /* it ends up in messages */
  return LU_OK;
}

static lu_status parse_header(const b2file *f, b2meta *h) {
  mp m = {f->buf, f->n, 0, f->path, "frame header"};
  uint32_t cnt;
  const uint8_t *s;
  size_t l;
  int64_t v;
  if (f->n < 64) return BAD(f->path, "file of %zu bytes is too short for a Blosc2 frame", f->n);
  LU_TRY(mp_container(&m, 0, &cnt));
  LU_TRY(mp_bytes(&m, &s, &l));
  if (cnt < 14 || l != 8 || memcmp(s, "b2frame", 8) != 0) return BAD(f->path, "not a Blosc2 frame (no b2frame magic)");
  LU_TRY(mp_int(&m, &h->header_len));
  LU_TRY(mp_int(&m, &h->frame_len));
  if (h->frame_len > (int64_t)f->n)
    return BAD(f->path, "the frame is %" PRId64 " bytes but the file only %zu (truncated)", h->frame_len, f->n);
  if (h->header_len < 64 || h->header_len > h->frame_len)
    return BAD(f->path, "header length %" PRId64 " does not fit a frame of %" PRId64 " bytes", h->header_len, h->frame_len);
  m.n = (size_t)h->header_len; /* the rest of the header must stay inside it */
  LU_TRY(mp_bytes(&m, &s, &l));
  if (l != 4) return BAD(f->path, "frame flags are %zu bytes, expected 4", l);
  if (((s[0] >> 4) & 3) != 1) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: chunk offsets of %d bits are not supported", f->path, 32 << ((s[0] >> 4) & 3));
  if (s[0] & 0x80) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: frames of variable-length blocks are not supported", f->path);
  if ((s[1] & 0x0f) != 0) return lu_fail(LU_EUNSUPPORTED, "%s: b2nd: sparse (directory) frames are not supported; pass a contiguous .b2nd file", f->path);
  LU_TRY(mp_int(&m, &v)); /* uncompressed size */
  LU_TRY(mp_int(&m, &h->cbytes));
  LU_TRY(mp_int(&m, &h->typesize));
  LU_TRY(mp_int(&m, &v)); /* block size */
  LU_TRY(mp_int(&m, &h->chunksize));
  if (h->cbytes < 0 || h->cbytes > h->frame_len - h->header_len)
    return BAD(f->path, "chunks of %" PRId64 " bytes do not fit a frame of %" PRId64 " bytes", h->cbytes, h->frame_len);
  for (int i = 0; i < 4; i++) LU_TRY(mp_skip(&m, 0)); /* tcomp, tdecomp, has_vlmetalayers, filter pipeline */
  LU_TRY(mp_container(&m, 0, &cnt));
  if (cnt < 3) return BAD(f->path, "metalayers section has %u fields, expected 3", cnt);
  LU_TRY(mp_int(&m, &v));
  LU_TRY(mp_container(&m, 1, &cnt));
  int64_t moff = -1;
  for (uint32_t i = 0; i < cnt; i++) {
    LU_TRY(mp_bytes(&m, &s, &l));
    LU_TRY(mp_int(&m, &v));
    if (l == 4 && memcmp(s, "b2nd", 4) == 0) moff = v;
  }
  if (moff < 0) return BAD(f->path, "the frame has no b2nd metalayer (a plain Blosc2 super-chunk, not an NDArray)");
  if (moff >= h->header_len) return BAD(f->path, "b2nd metalayer offset %" PRId64 " is outside the header", moff);
  return parse_b2nd_meta(f, (size_t)moff, (size_t)h->header_len, h);
}

lu_status lu_b2nd_read(const char *path, lu_tensor **out) { return lu_b2nd_read_max(path, 0, out); }

lu_status lu_b2nd_read_max(const char *path, size_t max_bytes, lu_tensor **out) {
  *out = NULL;
  b2file f = {path, NULL, 0};
  b2meta h;
  memset(&h, 0, sizeof h);
  lu_tensor *t = NULL;
  uint8_t *offs = NULL, *cbuf = NULL, *tmp = NULL;
  size_t tmpn = 0;
  lu_status st = slurp(path, &f);
  if (st == LU_OK) st = parse_header(&f, &h);
  if (st != LU_OK) goto done;

  lu_dtype dt = LU_NDTYPES;
  for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
    if (strcmp(h.dtype, k_dtypes[i].descr) == 0) dt = k_dtypes[i].dt;
  if (dt == LU_NDTYPES) {
    st = lu_fail(LU_EUNSUPPORTED, "%s: b2nd: dtype '%s' is not supported (little-endian ints, uints, floats and bool)", path, h.dtype);
    goto done;
  }
  size_t isz = lu_dtype_size(dt);
  if (h.typesize != (int64_t)isz) {
    st = BAD(path, "frame items are %" PRId64 " bytes, dtype '%s' has %zu", h.typesize, h.dtype, isz);
    goto done;
  }
  int nd = h.ndim;
  int64_t nch[B2_MAXDIM], ext[B2_MAXDIM], nchunks = 1, chunk_el = 1;
  for (int i = 0; i < nd; i++) {
    if (h.block[i] > h.chunk[i]) {
      st = BAD(path, "blockshape[%d] = %" PRId64 " exceeds chunkshape[%d] = %" PRId64, i, h.block[i], i, h.chunk[i]);
      goto done;
    }
    nch[i] = (h.shape[i] + h.chunk[i] - 1) / h.chunk[i];
    ext[i] = (h.chunk[i] + h.block[i] - 1) / h.block[i] * h.block[i]; /* the chunk padded to whole blocks */
    /* Blosc2 chunks hold at most 2 GiB; the checks come before each product so that none overflows */
    if (ext[i] > INT32_MAX / ((int64_t)isz * chunk_el) || (nch[i] && nchunks > ((int64_t)1 << 40) / nch[i])) {
      st = BAD(path, "chunk of %" PRId64 " or grid of %" PRId64 " chunks on axis %d is too large", ext[i], nch[i], i);
      goto done;
    }
    nchunks *= nch[i];
    chunk_el *= ext[i];
  }
  size_t cbytes_need = (size_t)chunk_el * isz;
  if (max_bytes) { /* before anything is allocated; special chunks let a tiny file declare any size */
    uint64_t total = isz;
    for (int i = 0; i < nd && total <= max_bytes; i++) total = h.shape[i] ? total * (uint64_t)h.shape[i] : 0;
    if (total > max_bytes || cbytes_need > max_bytes) {
      st = lu_fail(LU_EUNSUPPORTED, "%s: b2nd: the array or its chunks exceed the limit of %zu bytes", path, max_bytes);
      goto done;
    }
  }
  if (nchunks && h.chunksize != 0 && h.chunksize != (int64_t)cbytes_need) { /* 0: chunks of varying size */
    st = BAD(path, "frame chunks are %" PRId64 " bytes, chunkshape and blockshape give %zu", h.chunksize, cbytes_need);
    goto done;
  }
  /* the chunk index (a chunk of int64 offsets right after the data chunks) first: its size checks the
   * shape against the file before the tensor is allocated */
  size_t data0 = (size_t)h.header_len, data_end = data0 + (size_t)h.cbytes;
  if (nchunks) {
    if ((size_t)h.frame_len - data_end < 16) {
      st = BAD(path, "the chunk index runs past the end of the frame");
      goto done;
    }
    size_t index_n = rd32le(f.buf + data_end + 4);
    if (index_n != (size_t)nchunks * 8) {
      st = BAD(path, "the chunk index holds %zu offsets, the shape needs %" PRId64 " chunks", index_n / 8, nchunks);
      goto done;
    }
    offs = malloc((size_t)nchunks * 8);
    cbuf = malloc(cbytes_need);
    if (!offs || !cbuf) {
      st = lu_fail(LU_ENOMEM, "%s: b2nd: cannot allocate the chunk index and a chunk buffer", path);
      goto done;
    }
    st = decode_chunk(path, f.buf + data_end, (size_t)h.frame_len - data_end, offs, (size_t)nchunks * 8, 8, "chunk index", &tmp, &tmpn);
    if (st != LU_OK) goto done;
  }
  st = lu_tensor_new_host(&t, dt, nd, h.shape); /* zero-filled: zero chunks need no copy */
  if (st != LU_OK) {
    lu_fail_context(st, "%s: b2nd", path);
    goto done;
  }
  if (nchunks == 0) goto done;

  int64_t ostride[B2_MAXDIM], bstride[B2_MAXDIM], nbl[B2_MAXDIM];
  int64_t block_el = 1;
  for (int i = nd - 1; i >= 0; i--) {
    ostride[i] = i == nd - 1 ? 1 : ostride[i + 1] * h.shape[i + 1];
    bstride[i] = i == nd - 1 ? 1 : bstride[i + 1] * h.block[i + 1];
    nbl[i] = ext[i] / h.block[i];
    block_el *= h.block[i];
  }
  int64_t blocks_per_chunk = chunk_el / block_el;
  uint8_t *dst = t->host;
  for (int64_t ci = 0; ci < nchunks; ci++) {
    char where[48];
    snprintf(where, sizeof where, "chunk %" PRId64, ci);
    const uint8_t *o = offs + 8 * ci;
    if (o[7] & 0x80) { /* a special chunk coded in the index itself */
      int kind = o[7] & 7;
      if (kind == 1 || kind == 4) continue; /* zeros or uninitialized: the tensor is zero already */
      if (kind != 2) { st = BAD(path, "%s: unknown special value %d in the chunk index", where, kind); goto done; }
      st = fill_nan(path, cbuf, cbytes_need, isz, where);
    } else {
      uint64_t off = rd64le(o);
      if (off >= (uint64_t)h.cbytes) {
        st = BAD(path, "%s: offset %" PRIu64 " is outside the %" PRId64 " bytes of chunks", where, off, h.cbytes);
        goto done;
      }
      st = decode_chunk(path, f.buf + data0 + off, data_end - data0 - (size_t)off, cbuf, cbytes_need, isz, where, &tmp, &tmpn);
    }
    if (st != LU_OK) goto done;
    /* chunk coordinates (C order over the chunk grid) */
    int64_t cc[B2_MAXDIM], r = ci;
    for (int i = nd - 1; i >= 0; i--) { cc[i] = r % nch[i]; r /= nch[i]; }
    for (int64_t bi = 0; bi < blocks_per_chunk; bi++) {
      int64_t g[B2_MAXDIM], v[B2_MAXDIM], rb = bi;
      int empty = 0;
      for (int i = nd - 1; i >= 0; i--) {
        int64_t bc = rb % nbl[i];
        rb /= nbl[i];
        int64_t in_chunk = bc * h.block[i];
        g[i] = cc[i] * h.chunk[i] + in_chunk;
        /* valid extent: inside the block, inside the chunk (not its padding to whole blocks), inside the array */
        v[i] = h.block[i];
        if (h.chunk[i] - in_chunk < v[i]) v[i] = h.chunk[i] - in_chunk;
        if (h.shape[i] - g[i] < v[i]) v[i] = h.shape[i] - g[i];
        if (v[i] <= 0) empty = 1;
      }
      if (empty) continue;
      const uint8_t *bsrc = cbuf + (size_t)(bi * block_el) * isz;
      int64_t idx[B2_MAXDIM] = {0};
      size_t row = (size_t)v[nd - 1] * isz;
      for (;;) {
        int64_t so = 0, dof = 0;
        for (int i = 0; i < nd; i++) {
          so += idx[i] * bstride[i];
          dof += (g[i] + idx[i]) * ostride[i];
        }
        memcpy(dst + (size_t)dof * isz, bsrc + (size_t)so * isz, row);
        int i = nd - 2;
        while (i >= 0 && ++idx[i] == v[i]) idx[i--] = 0;
        if (i < 0) break;
      }
    }
  }
done:
  free(f.buf);
  free(offs);
  free(cbuf);
  free(tmp);
  if (st != LU_OK) {
    lu_tensor_free(t);
    return st;
  }
  *out = t;
  return LU_OK;
}
