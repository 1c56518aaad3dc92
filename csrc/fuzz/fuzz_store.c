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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".lcs", data, size, path, sizeof path)) return 0;
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
