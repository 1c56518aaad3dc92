/* XXH64 and file identity (see fileid.h). The hash follows xxHash's XXH64 specification
 * (github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md): 32-byte stripes in four lanes, then 8/4/1-byte tails
 * and the avalanche. Input words are read little-endian whatever the host. */
#include "core/fileid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define P1 11400714785074694791ULL
#define P2 14029467366897019727ULL
#define P3 1609587929392839161ULL
#define P4 9650029242287828579ULL
#define P5 2870177450012600261ULL

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t rd64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static uint32_t rd32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t round1(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
static uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round1(0, v)) * P1 + P4; }

/* Streaming state: four lanes, a buffer of < 32 pending bytes, the total length. */
typedef struct xxh64_state {
  uint64_t v[4], total;
  unsigned char buf[32];
  size_t nbuf;
} xxh64_state;

static void st_init(xxh64_state *s) {
  memset(s, 0, sizeof *s);
  s->v[0] = P1 + P2;
  s->v[1] = P2;
  s->v[2] = 0;
  s->v[3] = (uint64_t)0 - P1;
}

static void stripe(xxh64_state *s, const unsigned char *p) {
  for (int i = 0; i < 4; i++) s->v[i] = round1(s->v[i], rd64(p + 8 * i));
}

static void st_update(xxh64_state *s, const unsigned char *p, size_t n) {
  s->total += n;
  if (s->nbuf) {
    size_t k = 32 - s->nbuf < n ? 32 - s->nbuf : n;
    memcpy(s->buf + s->nbuf, p, k);
    s->nbuf += k;
    p += k;
    n -= k;
    if (s->nbuf < 32) return;
    stripe(s, s->buf);
    s->nbuf = 0;
  }
  while (n >= 32) {
    stripe(s, p);
    p += 32;
    n -= 32;
  }
  memcpy(s->buf, p, n);
  s->nbuf = n;
}

static uint64_t st_digest(const xxh64_state *s) {
  uint64_t h;
  if (s->total >= 32) {
    h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
    for (int i = 0; i < 4; i++) h = merge(h, s->v[i]);
  } else {
    h = P5;
  }
  h += s->total;
  const unsigned char *p = s->buf;
  size_t n = s->nbuf;
  while (n >= 8) {
    h = rotl(h ^ round1(0, rd64(p)), 27) * P1 + P4;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    h = rotl(h ^ ((uint64_t)rd32(p) * P1), 23) * P2 + P3;
    p += 4;
    n -= 4;
  }
  while (n > 0) {
    h = rotl(h ^ (*p * P5), 11) * P1;
    p++;
    n--;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

uint64_t lu_xxh64(const void *p, size_t n) {
  xxh64_state s;
  st_init(&s);
  st_update(&s, p, n);
  return st_digest(&s);
}

lu_status lu_xxh64_file(const char *path, uint64_t *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lu_fail(LU_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 20;
  unsigned char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return lu_fail(LU_ENOMEM, "%s: no memory to hash", path);
  }
  xxh64_state s;
  st_init(&s);
  lu_status st = LU_OK;
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r < 0) {
      if (errno == EINTR) continue;
      st = lu_fail(LU_EIO, "%s: read failed: %s", path, strerror(errno));
      break;
    }
    if (r == 0) break;
    st_update(&s, buf, (size_t)r);
  }
  free(buf);
  close(fd);
  if (st == LU_OK) *out = st_digest(&s);
  return st;
}

lu_status lu_file_stat(const char *path, int64_t *size, int64_t *mtime_ns) {
  struct stat sb;
  if (stat(path, &sb) != 0) return lu_fail(LU_EIO, "%s: stat failed: %s", path, strerror(errno));
  if (size) *size = (int64_t)sb.st_size;
  if (mtime_ns) *mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + (int64_t)sb.st_mtim.tv_nsec;
  return LU_OK;
}

lu_status lu_file_copy_mtime(const char *src, const char *dst) {
  struct stat sb;
  if (stat(src, &sb) != 0) return lu_fail(LU_EIO, "%s: stat failed: %s", src, strerror(errno));
  struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
  if (utimensat(AT_FDCWD, dst, ts, 0) != 0) return lu_fail(LU_EIO, "%s: cannot set its time: %s", dst, strerror(errno));
  return LU_OK;
}
