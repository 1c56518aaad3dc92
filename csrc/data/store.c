/* Chunked zstd case store (see store.h and docs/formats.md). */
#include "data/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_decompressBound */
#include <zstd.h>

#include "core/atomic_file.h"
#include "core/threads.h"

#define MAGIC "LUNETCS1"
#define TRAILER "LUNETEND"
#define HEADER_BYTES 96

typedef struct chunk_ref {
  uint64_t off, size;
} chunk_ref;

struct lu_store {
  int fd;
  char *path;
  int64_t shape[3], chunk[3], nck[3];
  int64_t cdata, cseg;
  lu_dtype seg_dtype;
  int64_t nchunks; /* per channel */
  chunk_ref *index; /* (cdata + cseg) * nchunks */
  uint64_t file_size;
  void *buf;        /* decompression buffer, one chunk, grown on first use */
  size_t buf_cap;
  void *cbuf;       /* compressed bytes */
  size_t cbuf_cap;
};

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* ---------------------------------------------------------------- writing */

typedef struct wctx {
  const lu_tensor *data, *seg;
  int64_t shape[3], chunk[3], nck[3], nchunks, cdata;
  int level;
  void **out;   /* compressed chunk buffers */
  size_t *outn;
  int failed;
} wctx;

static void gather_chunk(const lu_tensor *t, int64_t ch, const int64_t shape[3], const int64_t lo[3],
                         const int64_t ext[3], unsigned char *dst) {
  size_t es = lu_dtype_size(t->dtype);
  const unsigned char *src = (const unsigned char *)t->host + (size_t)(ch * shape[0] * shape[1] * shape[2]) * es;
  for (int64_t z = 0; z < ext[0]; z++)
    for (int64_t y = 0; y < ext[1]; y++) {
      memcpy(dst, src + (size_t)(((lo[0] + z) * shape[1] + lo[1] + y) * shape[2] + lo[2]) * es, (size_t)ext[2] * es);
      dst += (size_t)ext[2] * es;
    }
}

static void chunk_box(const int64_t shape[3], const int64_t chunk[3], const int64_t nck[3], int64_t k,
                      int64_t lo[3], int64_t ext[3]) {
  int64_t ci[3] = {k / (nck[1] * nck[2]), (k / nck[2]) % nck[1], k % nck[2]};
  for (int a = 0; a < 3; a++) {
    lo[a] = ci[a] * chunk[a];
    ext[a] = shape[a] - lo[a] < chunk[a] ? shape[a] - lo[a] : chunk[a];
  }
}

static void compress_worker(void *vc, int64_t lo_i, int64_t hi_i) {
  wctx *c = vc;
  size_t maxraw = (size_t)(c->chunk[0] * c->chunk[1] * c->chunk[2]) * 4;
  unsigned char *raw = malloc(maxraw);
  ZSTD_CCtx *z = ZSTD_createCCtx();
  if (!raw || !z) {
    c->failed = 1;
    free(raw);
    ZSTD_freeCCtx(z);
    return;
  }
  for (int64_t j = lo_i; j < hi_i; j++) {
    int64_t ch = j / c->nchunks, k = j % c->nchunks;
    const lu_tensor *t = ch < c->cdata ? c->data : c->seg;
    int64_t tch = ch < c->cdata ? ch : ch - c->cdata;
    int64_t lo[3], ext[3];
    chunk_box(c->shape, c->chunk, c->nck, k, lo, ext);
    gather_chunk(t, tch, c->shape, lo, ext, raw);
    size_t n = (size_t)(ext[0] * ext[1] * ext[2]) * lu_dtype_size(t->dtype);
    size_t cap = ZSTD_compressBound(n);
    void *o = malloc(cap);
    if (!o) {
      c->failed = 1;
      break;
    }
    /* content checksum: a damaged chunk is reported on read instead of decoding to wrong voxels */
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, c->level);
    ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
    size_t r = ZSTD_compress2(z, o, cap, raw, n);
    if (ZSTD_isError(r)) {
      free(o);
      c->failed = 2;
      break;
    }
    c->out[j] = o;
    c->outn[j] = r;
  }
  free(raw);
  ZSTD_freeCCtx(z);
}

static lu_status write_all(int fd, const void *p, size_t n, const char *path) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    b += w;
    n -= (size_t)w;
  }
  return LU_OK;
}

lu_status lu_store_write(const char *path, const lu_tensor *data, const lu_tensor *seg, const int64_t chunk[3],
                         int level, int threads) {
  if (!data || !data->host || data->ndim != 4 || data->dtype != LU_F32)
    return lu_fail(LU_EARG, "%s: store data must be a host f32 tensor (C, Z, Y, X)", path);
  if (seg && (!seg->host || seg->ndim != 4 || (seg->dtype != LU_I8 && seg->dtype != LU_I16) ||
              seg->shape[1] != data->shape[1] || seg->shape[2] != data->shape[2] || seg->shape[3] != data->shape[3]))
    return lu_fail(LU_EARG, "%s: store seg must be a host i8/i16 tensor with the data's spatial shape", path);
  wctx c;
  memset(&c, 0, sizeof c);
  c.data = data;
  c.seg = seg;
  c.level = level;
  c.cdata = data->shape[0];
  int64_t cseg = seg ? seg->shape[0] : 0;
  c.nchunks = 1;
  for (int a = 0; a < 3; a++) {
    c.shape[a] = data->shape[a + 1];
    if (c.shape[a] < 1) return lu_fail(LU_EARG, "%s: empty axis %d", path, a);
    c.chunk[a] = chunk[a] < 1 ? 64 : (chunk[a] > c.shape[a] ? c.shape[a] : chunk[a]);
    c.nck[a] = (c.shape[a] + c.chunk[a] - 1) / c.chunk[a];
    c.nchunks *= c.nck[a];
  }
  if (c.shape[0] > LU_STORE_MAX_EXTENT || c.shape[1] > LU_STORE_MAX_EXTENT || c.shape[2] > LU_STORE_MAX_EXTENT ||
      c.chunk[0] * c.chunk[1] * c.chunk[2] > LU_STORE_MAX_CHUNK_VOXELS)
    return lu_fail(LU_EARG, "%s: chunk of more than %d voxels (the reader's limit)", path, LU_STORE_MAX_CHUNK_VOXELS);
  int64_t total = (c.cdata + cseg) * c.nchunks;
  c.out = calloc((size_t)total, sizeof(void *));
  c.outn = calloc((size_t)total, sizeof(size_t));
  lu_status st = LU_OK;
  if (!c.out || !c.outn) st = lu_fail(LU_ENOMEM, "%s: no memory for the chunk index", path);
  if (st == LU_OK) st = lu_parallel_for(threads, total, compress_worker, &c);
  if (st == LU_OK && c.failed) st = lu_fail(c.failed == 1 ? LU_ENOMEM : LU_EIO, "%s: chunk compression failed", path);
  size_t idx_bytes = (size_t)total * 16;
  unsigned char *head = st == LU_OK ? calloc(1, HEADER_BYTES + idx_bytes + 8) : NULL;
  if (st == LU_OK && !head) st = lu_fail(LU_ENOMEM, "%s: no memory for the header", path);
  if (st == LU_OK) {
    memcpy(head, MAGIC, 8);
    put_u32(head + 8, 1);
    put_u32(head + 12, HEADER_BYTES);
    put_u32(head + 16, (uint32_t)c.cdata);
    put_u32(head + 20, (uint32_t)cseg);
    for (int a = 0; a < 3; a++) {
      put_u64(head + 24 + 8 * a, (uint64_t)c.shape[a]);
      put_u64(head + 48 + 8 * a, (uint64_t)c.chunk[a]);
    }
    head[72] = (unsigned char)LU_F32;
    head[73] = (unsigned char)(seg ? seg->dtype : LU_I8);
    put_u64(head + 80, (uint64_t)c.nchunks);
    uint64_t off = HEADER_BYTES + idx_bytes + 8;
    for (int64_t j = 0; j < total; j++) {
      put_u64(head + HEADER_BYTES + 16 * j, off);
      put_u64(head + HEADER_BYTES + 16 * j + 8, c.outn[j]);
      off += c.outn[j];
    }
    put_u64(head + 88, off); /* payload end = trailer position */
    put_u64(head + HEADER_BYTES + idx_bytes, fnv1a(head, HEADER_BYTES + idx_bytes, 1469598103934665603ULL));
    char tmp[LU_ATOMIC_TMP_MAX];
    int fd = -1;
    st = lu_atomic_open(path, tmp, sizeof tmp, &fd);
    if (st == LU_OK) {
      st = write_all(fd, head, HEADER_BYTES + idx_bytes + 8, path);
      for (int64_t j = 0; j < total && st == LU_OK; j++) st = write_all(fd, c.out[j], c.outn[j], path);
      unsigned char tr[16];
      memcpy(tr, TRAILER, 8);
      put_u64(tr + 8, off + 16);
      if (st == LU_OK) st = write_all(fd, tr, 16, path);
      if (close(fd) != 0 && st == LU_OK) st = lu_fail(LU_EIO, "%s: close failed: %s", path, strerror(errno));
      if (st == LU_OK) st = lu_atomic_commit(tmp, path);
      else lu_atomic_abort(tmp);
    }
  }
  free(head);
  if (c.out)
    for (int64_t j = 0; j < total; j++) free(c.out[j]);
  free(c.out);
  free(c.outn);
  return st;
}

/* ---------------------------------------------------------------- reading */

static lu_status read_at(int fd, void *p, size_t n, uint64_t off, const char *path) {
  unsigned char *b = p;
  while (n > 0) {
    ssize_t r = pread(fd, b, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return lu_fail(LU_EIO, "%s: read failed: %s", path, strerror(errno));
    }
    if (r == 0) return lu_fail(LU_EFORMAT, "%s: truncated case store", path);
    b += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return LU_OK;
}

lu_status lu_store_open(const char *path, lu_store **out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lu_fail(LU_EIO, "%s: cannot open case store: %s", path, strerror(errno));
  struct stat sb;
  unsigned char h[HEADER_BYTES];
  lu_status st = LU_OK;
  if (fstat(fd, &sb) != 0) st = lu_fail(LU_EIO, "%s: stat failed: %s", path, strerror(errno));
  if (st == LU_OK) st = read_at(fd, h, HEADER_BYTES, 0, path);
  if (st == LU_OK && memcmp(h, MAGIC, 8) != 0) st = lu_fail(LU_EFORMAT, "%s: not a Lunet case store (bad magic)", path);
  if (st == LU_OK && get_u32(h + 8) != 1) st = lu_fail(LU_EFORMAT, "%s: unsupported case store version %u", path, get_u32(h + 8));
  lu_store *s = NULL;
  if (st == LU_OK) {
    s = calloc(1, sizeof *s);
    if (!s) st = lu_fail(LU_ENOMEM, "%s: no memory", path);
  }
  if (st != LU_OK) {
    close(fd);
    return st;
  }
  s->fd = fd;
  s->path = strdup(path);
  s->cdata = get_u32(h + 16);
  s->cseg = get_u32(h + 20);
  /* Every count below is checked against the file's size before it is multiplied or allocated: a
   * corrupt header must not overflow an index computation or ask for gigabytes. */
  uint64_t fsize = (uint64_t)sb.st_size, max_index = fsize / 16, chunk_vox = 1;
  s->nchunks = 1;
  for (int a = 0; a < 3 && st == LU_OK; a++) {
    s->shape[a] = (int64_t)get_u64(h + 24 + 8 * a);
    s->chunk[a] = (int64_t)get_u64(h + 48 + 8 * a);
    if (s->shape[a] < 1 || s->shape[a] > LU_STORE_MAX_EXTENT || s->chunk[a] < 1 || s->chunk[a] > s->shape[a]) {
      st = lu_fail(LU_EFORMAT, "%s: bad shape/chunk in header", path);
    } else {
      s->nck[a] = (s->shape[a] + s->chunk[a] - 1) / s->chunk[a];
      if ((uint64_t)s->nck[a] > max_index / (uint64_t)s->nchunks)
        st = lu_fail(LU_EFORMAT, "%s: the header's chunk grid has more chunks than the file can index", path);
      else s->nchunks *= s->nck[a];
      chunk_vox *= (uint64_t)s->chunk[a]; /* <= 2^31 per axis while the product stays <= 2^27 */
      if (chunk_vox > LU_STORE_MAX_CHUNK_VOXELS)
        st = lu_fail(LU_EFORMAT, "%s: chunk of more than %d voxels in header", path, LU_STORE_MAX_CHUNK_VOXELS);
    }
  }
  s->seg_dtype = (lu_dtype)h[73];
  uint64_t payload_end = get_u64(h + 88);
  if (st == LU_OK && (h[72] != LU_F32 || (s->seg_dtype != LU_I8 && s->seg_dtype != LU_I16) ||
                      (uint64_t)s->nchunks != get_u64(h + 80)))
    st = lu_fail(LU_EFORMAT, "%s: inconsistent case store header", path);
  if (st == LU_OK && (uint64_t)(s->cdata + s->cseg) > max_index / (uint64_t)s->nchunks)
    st = lu_fail(LU_EFORMAT, "%s: the header's channel count needs a larger index than the file holds", path);
  int64_t total = st == LU_OK ? (s->cdata + s->cseg) * s->nchunks : 0;
  size_t idx_bytes = (size_t)total * 16;
  unsigned char *ib = NULL;
  if (st == LU_OK && (payload_end < HEADER_BYTES + idx_bytes + 8 || fsize != payload_end + 16))
    st = lu_fail(LU_EFORMAT, "%s: case store is truncated or has trailing bytes (%lld bytes, expected %llu)", path,
                 (long long)sb.st_size, (unsigned long long)(payload_end + 16));
  if (st == LU_OK) {
    ib = malloc(HEADER_BYTES + idx_bytes + 8);
    s->index = malloc(sizeof(chunk_ref) * (size_t)(total ? total : 1));
    if (!ib || !s->index) st = lu_fail(LU_ENOMEM, "%s: no memory for the index", path);
  }
  if (st == LU_OK) st = read_at(fd, ib, HEADER_BYTES + idx_bytes + 8, 0, path);
  if (st == LU_OK && get_u64(ib + HEADER_BYTES + idx_bytes) != fnv1a(ib, HEADER_BYTES + idx_bytes, 1469598103934665603ULL))
    st = lu_fail(LU_EFORMAT, "%s: case store index checksum mismatch", path);
  unsigned char tr[16];
  if (st == LU_OK) st = read_at(fd, tr, 16, payload_end, path);
  if (st == LU_OK && (memcmp(tr, TRAILER, 8) != 0 || get_u64(tr + 8) != payload_end + 16))
    st = lu_fail(LU_EFORMAT, "%s: case store trailer missing (incomplete write)", path);
  size_t maxc = 0;
  for (int64_t j = 0; st == LU_OK && j < total; j++) {
    s->index[j].off = get_u64(ib + HEADER_BYTES + 16 * j);
    s->index[j].size = get_u64(ib + HEADER_BYTES + 16 * j + 8);
    if (s->index[j].off > payload_end || s->index[j].size > payload_end - s->index[j].off) st = lu_fail(LU_EFORMAT, "%s: chunk %lld outside the file", path, (long long)j);
    if (s->index[j].size > maxc) maxc = s->index[j].size;
  }
  free(ib);
  if (st == LU_OK) {
    s->file_size = (uint64_t)sb.st_size;
    s->cbuf_cap = maxc ? maxc : 1;
    s->cbuf = malloc(s->cbuf_cap);
    if (!s->cbuf) st = lu_fail(LU_ENOMEM, "%s: no memory for chunk buffers", path);
  }
  if (st != LU_OK) {
    lu_store_close(s);
    return st;
  }
  *out = s;
  return LU_OK;
}

void lu_store_close(lu_store *s) {
  if (!s) return;
  if (s->fd >= 0) close(s->fd);
  free(s->path);
  free(s->index);
  free(s->buf);
  free(s->cbuf);
  free(s);
}

void lu_store_info(const lu_store *s, int64_t shape[3], int64_t *cd, int64_t *cs, int64_t chunk[3], lu_dtype *sd) {
  for (int a = 0; a < 3; a++) {
    if (shape) shape[a] = s->shape[a];
    if (chunk) chunk[a] = s->chunk[a];
  }
  if (cd) *cd = s->cdata;
  if (cs) *cs = s->cseg;
  if (sd) *sd = s->seg_dtype;
}

/* Decompresses chunk j (array-channel-major) into s->buf; returns its element size via es. */
static lu_status load_chunk(lu_store *s, int64_t j, size_t expect) {
  chunk_ref r = s->index[j];
  LU_TRY(read_at(s->fd, s->cbuf, (size_t)r.size, r.off, s->path));
  /* The frame must say it holds expect bytes, and its blocks must be able to: only then is the chunk
   * buffer grown (a corrupt chunk never allocates more than its compressed bytes can expand to). */
  unsigned long long fcs = ZSTD_getFrameContentSize(s->cbuf, (size_t)r.size);
  unsigned long long bound = ZSTD_decompressBound(s->cbuf, (size_t)r.size);
  if (fcs != expect || bound == ZSTD_CONTENTSIZE_ERROR || bound < expect)
    return lu_fail(LU_EFORMAT, "%s: chunk %lld is not a zstd frame of %zu bytes", s->path, (long long)j, expect);
  if (expect > s->buf_cap) {
    void *nb = realloc(s->buf, expect);
    if (!nb) return lu_fail(LU_ENOMEM, "%s: no memory for a %zu-byte chunk", s->path, expect);
    s->buf = nb;
    s->buf_cap = expect;
  }
  size_t n = ZSTD_decompress(s->buf, expect, s->cbuf, (size_t)r.size);
  if (ZSTD_isError(n) || n != expect)
    return lu_fail(LU_EFORMAT, "%s: chunk %lld does not decompress to %zu bytes (%s)", s->path, (long long)j, expect,
                   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size mismatch");
  return LU_OK;
}

static lu_status read_array(lu_store *s, int is_seg, const int64_t lo[3], const int64_t hi[3], lu_tensor **out) {
  int64_t C = is_seg ? s->cseg : s->cdata;
  lu_dtype dt = is_seg ? s->seg_dtype : LU_F32;
  size_t es = lu_dtype_size(dt);
  int64_t ext[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
  int64_t shp[4] = {C, ext[0], ext[1], ext[2]};
  lu_tensor *t = NULL;
  LU_TRY(lu_tensor_new_host(&t, dt, 4, shp));
  int64_t n = ext[0] * ext[1] * ext[2];
  if (is_seg) {
    for (int64_t i = 0; i < C * n; i++) {
      if (dt == LU_I8) ((int8_t *)t->host)[i] = -1;
      else ((int16_t *)t->host)[i] = -1;
    }
  }
  /* chunk range overlapping the box (clipped to the image) */
  int64_t c0[3], c1[3];
  for (int a = 0; a < 3; a++) {
    int64_t l = lo[a] < 0 ? 0 : lo[a], h = hi[a] > s->shape[a] ? s->shape[a] : hi[a];
    if (l >= h) {
      *out = t;
      return LU_OK;
    }
    c0[a] = l / s->chunk[a];
    c1[a] = (h - 1) / s->chunk[a] + 1;
  }
  lu_status st = LU_OK;
  for (int64_t ch = 0; ch < C && st == LU_OK; ch++)
    for (int64_t cz = c0[0]; cz < c1[0] && st == LU_OK; cz++)
      for (int64_t cy = c0[1]; cy < c1[1] && st == LU_OK; cy++)
        for (int64_t cx = c0[2]; cx < c1[2] && st == LU_OK; cx++) {
          int64_t k = (cz * s->nck[1] + cy) * s->nck[2] + cx;
          int64_t clo[3], cext[3];
          chunk_box(s->shape, s->chunk, s->nck, k, clo, cext);
          int64_t j = ((is_seg ? s->cdata : 0) + ch) * s->nchunks + k;
          st = load_chunk(s, j, (size_t)(cext[0] * cext[1] * cext[2]) * es);
          if (st != LU_OK) break;
          /* overlap of chunk and box */
          int64_t ol[3], oh[3];
          for (int a = 0; a < 3; a++) {
            ol[a] = clo[a] > lo[a] ? clo[a] : lo[a];
            oh[a] = clo[a] + cext[a] < hi[a] ? clo[a] + cext[a] : hi[a];
          }
          for (int64_t z = ol[0]; z < oh[0]; z++)
            for (int64_t y = ol[1]; y < oh[1]; y++) {
              const unsigned char *src =
                  (const unsigned char *)s->buf + (size_t)(((z - clo[0]) * cext[1] + y - clo[1]) * cext[2] + ol[2] - clo[2]) * es;
              unsigned char *dst = (unsigned char *)t->host +
                                   (size_t)(ch * n + ((z - lo[0]) * ext[1] + y - lo[1]) * ext[2] + ol[2] - lo[2]) * es;
              memcpy(dst, src, (size_t)(oh[2] - ol[2]) * es);
            }
        }
  if (st != LU_OK) {
    lu_tensor_free(t);
    return st;
  }
  *out = t;
  return LU_OK;
}

lu_status lu_store_read_patch(lu_store *s, const int64_t lo[3], const int64_t hi[3], lu_tensor **data,
                              lu_tensor **seg) {
  for (int a = 0; a < 3; a++)
    if (hi[a] < lo[a]) return lu_fail(LU_EARG, "%s: patch box axis %d has end %lld < start %lld", s->path, a,
                                      (long long)hi[a], (long long)lo[a]);
  if (data) LU_TRY(read_array(s, 0, lo, hi, data));
  if (seg) {
    if (s->cseg == 0) {
      if (data) {
        lu_tensor_free(*data);
        *data = NULL;
      }
      return lu_fail(LU_ESTATE, "%s: the case store has no segmentation", s->path);
    }
    lu_status st = read_array(s, 1, lo, hi, seg);
    if (st != LU_OK && data) {
      lu_tensor_free(*data);
      *data = NULL;
    }
    return st;
  }
  return LU_OK;
}

int lu_store_valid(const char *path) {
  lu_store *s = NULL;
  if (lu_store_open(path, &s) != LU_OK) {
    lu_clear_error();
    return 0;
  }
  lu_store_close(s);
  return 1;
}
