/* libFuzzer harness for the chunked case store reader (data/store.h): lu_store_valid, lu_store_open
 * and lu_store_read_patch over a few boxes (whole image, a corner, one straddling the far edge,
 * one wholly outside), each bounded so a legitimately huge store does not allocate gigabytes. */
#include "fuzz/fuzz_common.h"
#include "data/store.h"

#define MAX_PATCH_BYTES (16u << 20)

static void read_box(lu_store *s, const int64_t lo[3], const int64_t hi[3], int64_t channels) {
  uint64_t vox = 1;
  for (int a = 0; a < 3; a++) vox *= (uint64_t)(hi[a] - lo[a]);
  if (vox * (uint64_t)(channels ? channels : 1) * 4 > MAX_PATCH_BYTES) return;
  lu_tensor *d = NULL, *g = NULL;
  if (lu_store_read_patch(s, lo, hi, &d, &g) == LU_OK) {
    if (!d || !g) abort();
    lu_tensor_free(d);
    lu_tensor_free(g);
  } else if (d || g) {
    abort(); /* a failed read leaves no tensors behind */
  }
  d = NULL;
  if (lu_store_read_patch(s, lo, hi, &d, NULL) == LU_OK) lu_tensor_free(d);
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static void wr64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Unless bit 0 of the reserved header byte 74 is set, the input's index checksum, payload end and
 * trailer are made consistent first: a mutated header or index then reaches the chunk reads instead
 * of stopping at the checksum (bit 0 set leaves the bytes as they are, to fuzz those checks too). */
static uint8_t *fix_up(const uint8_t *data, size_t size) {
  uint8_t *b = malloc(size ? size : 1);
  if (!b) abort();
  memcpy(b, data, size);
  if (size < 96 + 8 + 16 || (b[74] & 1)) return b;
  uint64_t n = 1, lim = size / 16;
  for (int a = 0; a < 3; a++) {
    uint64_t sh = rd64(b + 24 + 8 * a), ch = rd64(b + 48 + 8 * a);
    if (ch == 0 || sh == 0 || sh > lim * ch) return b;
    n *= (sh + ch - 1) / ch;
    if (n > lim) return b;
  }
  uint64_t c = (uint64_t)(b[16] | b[17] << 8 | b[18] << 16 | (uint32_t)b[19] << 24) +
               (uint64_t)(b[20] | b[21] << 8 | b[22] << 16 | (uint32_t)b[23] << 24);
  if (c > lim || c * n > lim) return b;
  size_t idx_end = 96 + (size_t)(c * n) * 16;
  if (idx_end + 8 + 16 > size) return b;
  wr64(b + 80, n);
  wr64(b + 88, size - 16);
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < idx_end; i++) {
    h ^= b[i];
    h *= 1099511628211ULL;
  }
  wr64(b + idx_end, h);
  memcpy(b + size - 16, "LUNETEND", 8);
  wr64(b + size - 8, size);
  return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  uint8_t *fixed = fix_up(data, size);
  int wrote = lu_fuzz_write(".lcs", fixed, size, path, sizeof path);
  free(fixed);
  if (!wrote) return 0;
  int valid = lu_store_valid(path);
  lu_store *s = NULL;
  lu_status st = lu_store_open(path, &s);
  if ((st == LU_OK) != (valid == 1)) abort(); /* valid and open agree */
  if (st == LU_OK) {
    int64_t shape[3], chunk[3], cd = 0, cs = 0;
    lu_dtype sd;
    lu_store_info(s, shape, &cd, &cs, chunk, &sd);
    int64_t C = cd > cs ? cd : cs;
    int64_t zero[3] = {0, 0, 0}, lo[3], hi[3];
    read_box(s, zero, shape, C);                              /* the whole image */
    for (int a = 0; a < 3; a++) hi[a] = shape[a] < 8 ? shape[a] : 8;
    read_box(s, zero, hi, C);                                 /* a corner */
    for (int a = 0; a < 3; a++) { lo[a] = shape[a] - 3; hi[a] = shape[a] + 2; }
    read_box(s, lo, hi, C);                                   /* straddling the far edge */
    for (int a = 0; a < 3; a++) { lo[a] = -5; hi[a] = -1; }
    read_box(s, lo, hi, C);                                   /* wholly outside */
    lu_store_close(s);
  } else if (!strstr(lu_errmsg(), path)) {
    abort(); /* every error names the file */
  }
  unlink(path);
  return 0;
}
