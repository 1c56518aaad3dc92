/* ZIP reader and writer on zlib (see zip.h). */
#include "fmt/zip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zlib.h>

#include "core/atomic_file.h"

#define ZIP_MAX_ENTRIES 1000000
#define ZIP_MAX_NAME 4096

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, v & 0xffff); wr16(p + 2, v >> 16); }
static void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

static lu_status rd_at(lu_zip *z, uint64_t off, void *dst, size_t n) {
  if (off > z->fsize || n > z->fsize - off) return lu_fail(LU_EFORMAT, "%s: truncated zip file (%zu bytes at offset %llu, file has %llu)", z->path, n, (unsigned long long)off, (unsigned long long)z->fsize);
  if (fseeko(z->fp, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, z->fp) != n) return lu_fail(LU_EIO, "%s: read failed at offset %llu", z->path, (unsigned long long)off);
  return LU_OK;
}

void lu_zip_close(lu_zip *z) {
  if (!z) return;
  for (int i = 0; i < z->n; i++) free(z->e[i].name);
  free(z->e);
  if (z->fp) fclose(z->fp);
  free(z->path);
  free(z);
}

static lu_status parse_cd(lu_zip *z, const unsigned char *cd, uint64_t cd_size, uint64_t n_entries, uint64_t cd_off) {
  size_t p = 0;
  for (uint64_t k = 0; k < n_entries; k++) {
    if (p + 46 > cd_size || rd32(cd + p) != 0x02014b50) return lu_fail(LU_EFORMAT, "%s: corrupt zip central directory (entry %llu)", z->path, (unsigned long long)k);
    unsigned flags = rd16(cd + p + 8), method = rd16(cd + p + 10);
    uint32_t crc = rd32(cd + p + 16);
    uint64_t csize = rd32(cd + p + 20), usize = rd32(cd + p + 24);
    unsigned nlen = rd16(cd + p + 28), xlen = rd16(cd + p + 30), clen = rd16(cd + p + 32);
    uint64_t loff = rd32(cd + p + 42);
    if (p + 46 + (uint64_t)nlen + xlen + clen > cd_size) return lu_fail(LU_EFORMAT, "%s: corrupt zip central directory (entry %llu)", z->path, (unsigned long long)k);
    const unsigned char *x = cd + p + 46 + nlen, *xe = x + xlen;
    while (x + 4 <= xe) {
      unsigned id = rd16(x), sz = rd16(x + 2);
      if (x + 4 + sz > xe) break;
      if (id == 1) {
        const unsigned char *q = x + 4, *qe = x + 4 + sz;
        if (usize == 0xFFFFFFFF) { if (q + 8 > qe) return lu_fail(LU_EFORMAT, "%s: short zip64 extra field", z->path); usize = rd64(q); q += 8; }
        if (csize == 0xFFFFFFFF) { if (q + 8 > qe) return lu_fail(LU_EFORMAT, "%s: short zip64 extra field", z->path); csize = rd64(q); q += 8; }
        if (loff == 0xFFFFFFFF) { if (q + 8 > qe) return lu_fail(LU_EFORMAT, "%s: short zip64 extra field", z->path); loff = rd64(q); q += 8; }
      }
      x += 4 + sz;
    }
    if (nlen == 0 || memchr(cd + p + 46, 0, nlen)) return lu_fail(LU_EFORMAT, "%s: zip entry %llu has an empty or malformed name", z->path, (unsigned long long)k);
    lu_zip_entry *e = &z->e[z->n];
    e->name = malloc(nlen + 1u);
    if (!e->name) return lu_fail(LU_ENOMEM, "%s: no memory", z->path);
    memcpy(e->name, cd + p + 46, nlen);
    e->name[nlen] = 0;
    z->n++;
    if (flags & 1) return lu_fail(LU_EUNSUPPORTED, "%s: entry %s is encrypted", z->path, e->name);
    if (method != 0 && method != 8) return lu_fail(LU_EUNSUPPORTED, "%s: entry %s: compression method %u is not supported (stored and deflate are)", z->path, e->name, method);
    if (method == 0 && csize != usize) return lu_fail(LU_EFORMAT, "%s: entry %s: stored entry with different sizes", z->path, e->name);
    if (loff >= cd_off || csize > cd_off - loff) return lu_fail(LU_EFORMAT, "%s: entry %s lies outside the file", z->path, e->name);
    e->csize = csize;
    e->usize = usize;
    e->local_off = loff;
    e->crc = crc;
    e->method = method;
    p += 46 + (size_t)nlen + xlen + clen;
  }
  return LU_OK;
}

lu_status lu_zip_open(const char *path, lu_zip **out) {
  *out = NULL;
  lu_zip *z = calloc(1, sizeof *z);
  if (!z || !(z->path = strdup(path))) { free(z); return lu_fail(LU_ENOMEM, "%s: no memory", path); }
  lu_status st = LU_OK;
  unsigned char *tail = NULL, *cd = NULL;
  z->fp = fopen(path, "rb");
  if (!z->fp) { st = lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno)); goto done; }
  if (fseeko(z->fp, 0, SEEK_END) != 0) { st = lu_fail(LU_EIO, "%s: cannot seek", path); goto done; }
  off_t fs = ftello(z->fp);
  if (fs < 0) { st = lu_fail(LU_EIO, "%s: cannot seek", path); goto done; }
  z->fsize = (uint64_t)fs;
  size_t tl = z->fsize < 65557 ? (size_t)z->fsize : 65557;
  if (tl < 22) { st = lu_fail(LU_EFORMAT, "%s: not a zip file (no end of central directory in %llu bytes)", path, (unsigned long long)z->fsize); goto done; }
  tail = malloc(tl);
  if (!tail) { st = lu_fail(LU_ENOMEM, "%s: no memory", path); goto done; }
  uint64_t tail_off = z->fsize - tl;
  if ((st = rd_at(z, tail_off, tail, tl)) != LU_OK) goto done;
  long eocd = -1;
  for (long i = (long)tl - 22; i >= 0; i--)
    if (rd32(tail + i) == 0x06054b50) { eocd = i; break; }
  if (eocd < 0) { st = lu_fail(LU_EFORMAT, "%s: not a zip file (no end of central directory record)", path); goto done; }
  uint64_t n_entries = rd16(tail + eocd + 10), cd_size = rd32(tail + eocd + 12), cd_off = rd32(tail + eocd + 16);
  if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    if (eocd < 20 || rd32(tail + eocd - 20) != 0x07064b50) { st = lu_fail(LU_EFORMAT, "%s: zip64 end of central directory locator missing", path); goto done; }
    uint64_t z64 = rd64(tail + eocd - 20 + 8);
    unsigned char rec[56];
    if ((st = rd_at(z, z64, rec, 56)) != LU_OK) goto done;
    if (rd32(rec) != 0x06064b50) { st = lu_fail(LU_EFORMAT, "%s: bad zip64 end of central directory record", path); goto done; }
    n_entries = rd64(rec + 32);
    cd_size = rd64(rec + 40);
    cd_off = rd64(rec + 48);
  }
  if (cd_off > z->fsize || cd_size > z->fsize - cd_off) { st = lu_fail(LU_EFORMAT, "%s: zip central directory lies outside the file (truncated file?)", path); goto done; }
  if (n_entries > ZIP_MAX_ENTRIES || n_entries * 46 > cd_size) { st = lu_fail(LU_EFORMAT, "%s: zip central directory claims %llu entries in %llu bytes", path, (unsigned long long)n_entries, (unsigned long long)cd_size); goto done; }
  cd = malloc(cd_size ? cd_size : 1);
  z->e = calloc(n_entries ? n_entries : 1, sizeof *z->e);
  if (!cd || !z->e) { st = lu_fail(LU_ENOMEM, "%s: no memory for the zip directory", path); goto done; }
  if ((st = rd_at(z, cd_off, cd, cd_size)) != LU_OK) goto done;
  st = parse_cd(z, cd, cd_size, n_entries, cd_off);
done:
  free(tail);
  free(cd);
  if (st != LU_OK) { lu_zip_close(z); return st; }
  *out = z;
  return LU_OK;
}

int lu_zip_find(const lu_zip *z, const char *name) {
  for (int i = 0; i < z->n; i++)
    if (!strcmp(z->e[i].name, name)) return i;
  return -1;
}

/* ---------- streams ---------- */

struct lu_zip_stream {
  lu_zip *z;
  const lu_zip_entry *e;
  uint64_t pos;       /* file offset of the next compressed byte */
  uint64_t in_left;   /* compressed bytes not yet read */
  uint64_t out_left;  /* uncompressed bytes not yet produced */
  uint32_t crc;
  z_stream zs;
  int zinit;
  unsigned char *in;
  size_t in_cap;
};

void lu_zip_stream_close(lu_zip_stream *s) {
  if (!s) return;
  if (s->zinit) inflateEnd(&s->zs);
  free(s->in);
  free(s);
}

lu_status lu_zip_stream_open(lu_zip *z, int i, lu_zip_stream **out) {
  *out = NULL;
  if (i < 0 || i >= z->n) return lu_fail(LU_EARG, "%s: no zip entry %d", z->path, i);
  const lu_zip_entry *e = &z->e[i];
  unsigned char lh[30];
  LU_TRY(rd_at(z, e->local_off, lh, 30));
  if (rd32(lh) != 0x04034b50) return lu_fail(LU_EFORMAT, "%s: entry %s: bad local header", z->path, e->name);
  uint64_t data = e->local_off + 30 + rd16(lh + 26) + rd16(lh + 28);
  if (data > z->fsize || e->csize > z->fsize - data) return lu_fail(LU_EFORMAT, "%s: entry %s: data run past the end of the file (truncated file?)", z->path, e->name);
  lu_zip_stream *s = calloc(1, sizeof *s);
  if (!s) return lu_fail(LU_ENOMEM, "%s: no memory", z->path);
  s->z = z;
  s->e = e;
  s->pos = data;
  s->in_left = e->csize;
  s->out_left = e->usize;
  if (e->method == 8) {
    s->in_cap = 1 << 16;
    s->in = malloc(s->in_cap);
    if (!s->in || inflateInit2(&s->zs, -15) != Z_OK) { lu_zip_stream_close(s); return lu_fail(LU_ENOMEM, "%s: entry %s: inflateInit failed", z->path, e->name); }
    s->zinit = 1;
  }
  *out = s;
  return LU_OK;
}

uint64_t lu_zip_stream_left(const lu_zip_stream *s) { return s->out_left; }

lu_status lu_zip_stream_read(lu_zip_stream *s, void *dst, size_t n) {
  lu_zip *z = s->z;
  if (n > s->out_left) return lu_fail(LU_EFORMAT, "%s: entry %s is shorter than its content says", z->path, s->e->name);
  if (s->e->method == 0) {
    LU_TRY(rd_at(z, s->pos, dst, n));
    s->pos += n;
    s->in_left -= n;
  } else {
    s->zs.next_out = dst;
    size_t want = n;
    while (want > 0) {
      if (s->zs.avail_in == 0 && s->in_left > 0) {
        size_t k = s->in_left < s->in_cap ? (size_t)s->in_left : s->in_cap;
        LU_TRY(rd_at(z, s->pos, s->in, k));
        s->pos += k;
        s->in_left -= k;
        s->zs.next_in = s->in;
        s->zs.avail_in = (uInt)k;
      }
      uInt chunk = want > (1u << 30) ? (1u << 30) : (uInt)want;
      s->zs.avail_out = chunk;
      int r = inflate(&s->zs, Z_NO_FLUSH);
      size_t got = chunk - s->zs.avail_out;
      want -= got;
      if (r == Z_STREAM_END && want > 0) return lu_fail(LU_EFORMAT, "%s: entry %s: deflate stream ends early", z->path, s->e->name);
      if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && got > 0))
        return lu_fail(LU_EFORMAT, "%s: entry %s: corrupt deflate stream (zlib %d): the file is corrupted", z->path, s->e->name, r);
      if (got == 0 && s->zs.avail_in == 0 && s->in_left == 0) return lu_fail(LU_EFORMAT, "%s: entry %s: truncated deflate stream", z->path, s->e->name);
    }
  }
  s->out_left -= n;
  s->crc = (uint32_t)crc32_z(s->crc, dst, n);
  return LU_OK;
}

static lu_status check_crc(lu_zip_stream *s) {
  if (s->crc != s->e->crc)
    return lu_fail(LU_EFORMAT, "%s: entry %s: CRC mismatch (stored 0x%08x, computed 0x%08x): the file is corrupted", s->z->path, s->e->name, s->e->crc, s->crc);
  return LU_OK;
}

lu_status lu_zip_stream_finish(lu_zip_stream *s, int allow_rest) {
  if (s->out_left && !allow_rest)
    return lu_fail(LU_EFORMAT, "%s: entry %s: %llu bytes after the expected content", s->z->path, s->e->name, (unsigned long long)s->out_left);
  unsigned char buf[8192];
  while (s->out_left) {
    size_t k = s->out_left < sizeof buf ? (size_t)s->out_left : sizeof buf;
    LU_TRY(lu_zip_stream_read(s, buf, k));
  }
  return check_crc(s);
}

lu_status lu_zip_read(lu_zip *z, int i, size_t max_bytes, void **data, size_t *n) {
  *data = NULL;
  *n = 0;
  if (i < 0 || i >= z->n) return lu_fail(LU_EARG, "%s: no zip entry %d", z->path, i);
  const lu_zip_entry *e = &z->e[i];
  if ((max_bytes && e->usize > max_bytes) || e->usize >= SIZE_MAX)
    return lu_fail(LU_EFORMAT, "%s: entry %s: %llu bytes is more than the %zu allowed", z->path, e->name, (unsigned long long)e->usize, max_bytes);
  /* a stored entry cannot be larger than the file; deflate expands at most ~1032:1 */
  if (e->method == 8 && e->usize / 1032 > e->csize + 1)
    return lu_fail(LU_EFORMAT, "%s: entry %s: claims %llu bytes from %llu compressed bytes", z->path, e->name, (unsigned long long)e->usize, (unsigned long long)e->csize);
  lu_zip_stream *s;
  LU_TRY(lu_zip_stream_open(z, i, &s));
  unsigned char *buf = malloc((size_t)e->usize + 1);
  lu_status st = buf ? LU_OK : lu_fail(LU_ENOMEM, "%s: entry %s: no memory for %llu bytes", z->path, e->name, (unsigned long long)e->usize);
  if (st == LU_OK) st = lu_zip_stream_read(s, buf, (size_t)e->usize);
  if (st == LU_OK) st = check_crc(s);
  lu_zip_stream_close(s);
  if (st != LU_OK) { free(buf); return st; }
  buf[e->usize] = 0;
  *data = buf;
  *n = (size_t)e->usize;
  return LU_OK;
}

lu_status lu_zip_extract(lu_zip *z, int i, const char *dest) {
  if (i < 0 || i >= z->n) return lu_fail(LU_EARG, "%s: no zip entry %d", z->path, i);
  lu_zip_stream *s;
  LU_TRY(lu_zip_stream_open(z, i, &s));
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *fp;
  lu_status st = lu_atomic_fopen(dest, tmp, sizeof tmp, &fp);
  if (st != LU_OK) { lu_zip_stream_close(s); return st; }
  size_t cap = 1 << 20;
  unsigned char *buf = malloc(cap);
  if (!buf) st = lu_fail(LU_ENOMEM, "%s: no memory", dest);
  while (st == LU_OK && s->out_left) {
    size_t k = s->out_left < cap ? (size_t)s->out_left : cap;
    st = lu_zip_stream_read(s, buf, k);
    if (st == LU_OK && fwrite(buf, 1, k, fp) != k) st = lu_fail(LU_EIO, "%s: write failed: %s", dest, strerror(errno));
  }
  if (st == LU_OK) st = check_crc(s);
  free(buf);
  lu_zip_stream_close(s);
  return lu_atomic_fclose(fp, tmp, dest, st);
}

/* ---------- writer ---------- */

typedef struct {
  char *name;
  uint64_t off, csize, usize;
  uint32_t crc;
  unsigned method;
} went;

struct lu_zip_writer {
  char *path;
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *fp;
  uint64_t off;
  went *e;
  int n, cap;
  /* the open entry */
  int open, level, z64_local;
  uint64_t hdr_off, data_off;
  z_stream zs;
  unsigned char *obuf;
};

#define OBUF 65536

lu_status lu_zip_writer_open(const char *path, lu_zip_writer **out) {
  *out = NULL;
  lu_zip_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path)) || !(w->obuf = malloc(OBUF))) {
    if (w) { free(w->path); free(w); }
    return lu_fail(LU_ENOMEM, "%s: no memory", path);
  }
  lu_status st = lu_atomic_fopen(path, w->tmp, sizeof w->tmp, &w->fp);
  if (st != LU_OK) { free(w->obuf); free(w->path); free(w); return st; }
  *out = w;
  return LU_OK;
}

static void writer_free(lu_zip_writer *w) {
  for (int i = 0; i < w->n; i++) free(w->e[i].name);
  if (w->open && w->level) deflateEnd(&w->zs);
  free(w->e);
  free(w->obuf);
  free(w->path);
  free(w);
}

void lu_zip_writer_abort(lu_zip_writer *w) {
  if (!w) return;
  fclose(w->fp);
  lu_atomic_abort(w->tmp);
  writer_free(w);
}

static lu_status wbytes(lu_zip_writer *w, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, w->fp) != n) return lu_fail(LU_EIO, "%s: write failed: %s", w->path, strerror(errno));
  w->off += n;
  return LU_OK;
}

lu_status lu_zip_writer_begin(lu_zip_writer *w, const char *name, uint64_t size_hint, int level, unsigned align) {
  if (w->open) return lu_fail(LU_ESTATE, "%s: zip entry %s begun while another is open", w->path, name);
  size_t nlen = strlen(name);
  if (nlen == 0 || nlen > ZIP_MAX_NAME) return lu_fail(LU_EARG, "%s: bad zip entry name", w->path);
  if (level < 0 || level > 9) return lu_fail(LU_EARG, "%s: compression level %d not in 0..9", w->path, level);
  if (w->n >= 0xFFFFFF) return lu_fail(LU_EARG, "%s: too many zip entries", w->path);
  if (w->n == w->cap) {
    int nc = w->cap ? 2 * w->cap : 16;
    went *ne = realloc(w->e, (size_t)nc * sizeof *ne);
    if (!ne) return lu_fail(LU_ENOMEM, "%s: no memory", w->path);
    w->e = ne;
    w->cap = nc;
  }
  went *e = &w->e[w->n];
  memset(e, 0, sizeof *e);
  if (!(e->name = strdup(name))) return lu_fail(LU_ENOMEM, "%s: no memory", w->path);
  w->n++;
  e->off = w->off;
  e->method = level ? 8 : 0;
  uint64_t bound = level ? size_hint + size_hint / 1000 + 1024 : size_hint;
  w->z64_local = bound >= 0xFFFFFFFFull;
  size_t xlen = w->z64_local ? 20 : 0;
  size_t pad = 0;
  if (align > 1) {
    uint64_t base = w->off + 30 + nlen + xlen;
    if (base % align) {
      pad = (size_t)((align - (base + 4) % align) % align) + 4;
    }
  }
  unsigned char lh[30];
  memset(lh, 0, sizeof lh);
  wr32(lh, 0x04034b50);
  wr16(lh + 4, w->z64_local ? 45 : 20);
  wr16(lh + 6, 0x0800); /* UTF-8 names */
  wr16(lh + 8, e->method);
  wr16(lh + 12, 0x21); /* 1980-01-01 00:00, so output bytes do not depend on the clock */
  wr16(lh + 26, (unsigned)nlen);
  wr16(lh + 28, (unsigned)(xlen + pad));
  w->hdr_off = w->off;
  LU_TRY(wbytes(w, lh, 30));
  LU_TRY(wbytes(w, name, nlen));
  if (xlen) {
    unsigned char x[20] = {0};
    wr16(x, 1);
    wr16(x + 2, 16);
    LU_TRY(wbytes(w, x, 20));
  }
  if (pad) {
    unsigned char x[4 + 64 + 4];
    wr16(x, 0x4246); /* "FB": PyTorchStreamWriter's padding record */
    wr16(x + 2, (unsigned)(pad - 4));
    memset(x + 4, 'Z', pad - 4);
    LU_TRY(wbytes(w, x, pad));
  }
  w->data_off = w->off;
  w->level = level;
  if (level) {
    memset(&w->zs, 0, sizeof w->zs);
    if (deflateInit2(&w->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return lu_fail(LU_ENOMEM, "%s: deflateInit failed", w->path);
  }
  w->open = 1;
  return LU_OK;
}

static lu_status deflate_some(lu_zip_writer *w, const void *data, size_t n, int finish) {
  const unsigned char *p = data;
  size_t left = n;
  for (;;) {
    uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
    w->zs.next_in = (unsigned char *)p;
    w->zs.avail_in = chunk;
    int flush = (finish && chunk == left) ? Z_FINISH : Z_NO_FLUSH;
    int r;
    do {
      w->zs.next_out = w->obuf;
      w->zs.avail_out = OBUF;
      r = deflate(&w->zs, flush);
      if (r == Z_STREAM_ERROR) return lu_fail(LU_EFORMAT, "%s: deflate failed", w->path);
      LU_TRY(wbytes(w, w->obuf, OBUF - w->zs.avail_out));
    } while (w->zs.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
    p += chunk;
    left -= chunk;
    if (left == 0) break;
  }
  return LU_OK;
}

lu_status lu_zip_writer_write(lu_zip_writer *w, const void *data, size_t n) {
  if (!w->open) return lu_fail(LU_ESTATE, "%s: no open zip entry", w->path);
  went *e = &w->e[w->n - 1];
  e->crc = (uint32_t)crc32_z(e->crc, data, n);
  e->usize += n;
  if (w->level) return n ? deflate_some(w, data, n, 0) : LU_OK;
  return wbytes(w, data, n);
}

lu_status lu_zip_writer_end(lu_zip_writer *w) {
  if (!w->open) return lu_fail(LU_ESTATE, "%s: no open zip entry", w->path);
  went *e = &w->e[w->n - 1];
  if (w->level) {
    lu_status st = deflate_some(w, "", 0, 1);
    deflateEnd(&w->zs);
    w->open = 0;
    LU_TRY(st);
  }
  w->open = 0;
  e->csize = w->off - w->data_off;
  int big = e->usize >= 0xFFFFFFFFull || e->csize >= 0xFFFFFFFFull;
  if (big && !w->z64_local) return lu_fail(LU_EARG, "%s: entry %s grew past its announced size", w->path, e->name);
  unsigned char b[12];
  wr32(b, e->crc);
  wr32(b + 4, w->z64_local ? 0xFFFFFFFF : (uint32_t)e->csize);
  wr32(b + 8, w->z64_local ? 0xFFFFFFFF : (uint32_t)e->usize);
  if (fseeko(w->fp, (off_t)(w->hdr_off + 14), SEEK_SET) != 0 || fwrite(b, 1, 12, w->fp) != 12)
    return lu_fail(LU_EIO, "%s: cannot patch a zip header: %s", w->path, strerror(errno));
  if (w->z64_local) {
    unsigned char x[16];
    wr64(x, e->usize);
    wr64(x + 8, e->csize);
    size_t nlen = strlen(e->name);
    if (fseeko(w->fp, (off_t)(w->hdr_off + 30 + nlen + 4), SEEK_SET) != 0 || fwrite(x, 1, 16, w->fp) != 16)
      return lu_fail(LU_EIO, "%s: cannot patch a zip header: %s", w->path, strerror(errno));
  }
  if (fseeko(w->fp, (off_t)w->off, SEEK_SET) != 0) return lu_fail(LU_EIO, "%s: cannot seek: %s", w->path, strerror(errno));
  return LU_OK;
}

lu_status lu_zip_writer_add(lu_zip_writer *w, const char *name, const void *data, size_t n, int level, unsigned align) {
  LU_TRY(lu_zip_writer_begin(w, name, n, level, align));
  LU_TRY(lu_zip_writer_write(w, data, n));
  return lu_zip_writer_end(w);
}

lu_status lu_zip_writer_add_file(lu_zip_writer *w, const char *name, const char *src, int level, unsigned align) {
  FILE *f = fopen(src, "rb");
  if (!f) return lu_fail(LU_EIO, "%s: cannot open: %s", src, strerror(errno));
  lu_status st = LU_OK;
  off_t sz = -1;
  if (fseeko(f, 0, SEEK_END) != 0 || (sz = ftello(f)) < 0 || fseeko(f, 0, SEEK_SET) != 0) st = lu_fail(LU_EIO, "%s: cannot seek", src);
  unsigned char *buf = st == LU_OK ? malloc(1 << 20) : NULL;
  if (st == LU_OK && !buf) st = lu_fail(LU_ENOMEM, "%s: no memory", src);
  if (st == LU_OK) st = lu_zip_writer_begin(w, name, (uint64_t)sz, level, align);
  while (st == LU_OK) {
    size_t k = fread(buf, 1, 1 << 20, f);
    if (k == 0) {
      if (ferror(f)) st = lu_fail(LU_EIO, "%s: read failed", src);
      break;
    }
    st = lu_zip_writer_write(w, buf, k);
  }
  if (st == LU_OK) st = lu_zip_writer_end(w);
  free(buf);
  fclose(f);
  return st;
}

lu_status lu_zip_writer_finish(lu_zip_writer *w) {
  lu_status st = w->open ? lu_fail(LU_ESTATE, "%s: zip entry left open", w->path) : LU_OK;
  uint64_t cd_off = w->off;
  for (int i = 0; i < w->n && st == LU_OK; i++) {
    went *e = &w->e[i];
    size_t nlen = strlen(e->name);
    unsigned char ch[46], x[28];
    memset(ch, 0, sizeof ch);
    size_t xl = 0;
    int big_u = e->usize >= 0xFFFFFFFFull, big_c = e->csize >= 0xFFFFFFFFull, big_o = e->off >= 0xFFFFFFFFull;
    if (big_u || big_c || big_o) {
      size_t q = 4;
      if (big_u) { wr64(x + q, e->usize); q += 8; }
      if (big_c) { wr64(x + q, e->csize); q += 8; }
      if (big_o) { wr64(x + q, e->off); q += 8; }
      wr16(x, 1);
      wr16(x + 2, (unsigned)(q - 4));
      xl = q;
    }
    wr32(ch, 0x02014b50);
    wr16(ch + 4, 45 | (3 << 8));
    wr16(ch + 6, xl ? 45 : 20);
    wr16(ch + 8, 0x0800);
    wr16(ch + 10, e->method);
    wr16(ch + 14, 0x21);
    wr32(ch + 16, e->crc);
    wr32(ch + 20, big_c ? 0xFFFFFFFF : (uint32_t)e->csize);
    wr32(ch + 24, big_u ? 0xFFFFFFFF : (uint32_t)e->usize);
    wr16(ch + 28, (unsigned)nlen);
    wr16(ch + 30, (unsigned)xl);
    wr32(ch + 38, (0100644u) << 16);
    wr32(ch + 42, big_o ? 0xFFFFFFFF : (uint32_t)e->off);
    st = wbytes(w, ch, 46);
    if (st == LU_OK) st = wbytes(w, e->name, nlen);
    if (st == LU_OK) st = wbytes(w, x, xl);
  }
  uint64_t cd_size = w->off - cd_off;
  if (st == LU_OK && (cd_off >= 0xFFFFFFFFull || cd_size >= 0xFFFFFFFFull || w->n >= 0xFFFF)) {
    unsigned char z[76];
    memset(z, 0, sizeof z);
    uint64_t z64_off = w->off;
    wr32(z, 0x06064b50);
    wr64(z + 4, 44);
    wr16(z + 12, 45 | (3 << 8));
    wr16(z + 14, 45);
    wr64(z + 24, (uint64_t)w->n);
    wr64(z + 32, (uint64_t)w->n);
    wr64(z + 40, cd_size);
    wr64(z + 48, cd_off);
    wr32(z + 56, 0x07064b50);
    wr64(z + 64, z64_off);
    wr32(z + 72, 1);
    st = wbytes(w, z, sizeof z);
  }
  if (st == LU_OK) {
    unsigned char eocd[22];
    memset(eocd, 0, sizeof eocd);
    wr32(eocd, 0x06054b50);
    wr16(eocd + 8, w->n >= 0xFFFF ? 0xFFFF : (unsigned)w->n);
    wr16(eocd + 10, w->n >= 0xFFFF ? 0xFFFF : (unsigned)w->n);
    wr32(eocd + 12, cd_size >= 0xFFFFFFFFull ? 0xFFFFFFFF : (uint32_t)cd_size);
    wr32(eocd + 16, cd_off >= 0xFFFFFFFFull ? 0xFFFFFFFF : (uint32_t)cd_off);
    st = wbytes(w, eocd, 22);
  }
  st = lu_atomic_fclose(w->fp, w->tmp, w->path, st);
  writer_free(w);
  return st;
}
