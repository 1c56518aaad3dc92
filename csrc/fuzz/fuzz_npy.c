/* libFuzzer harness for the .npy and .npz readers (img/npz.h), through their public API only:
 * every input is read both as an .npy file and as an .npz (zip) file. A successful .npy read is
 * written back and read again; the round trip must give the same dtype, shape and bytes. */
#include "fuzz/fuzz_common.h"
#include "img/npz.h"

static void same_or_abort(const lu_tensor *a, const lu_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim || a->bytes != b->bytes) abort();
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) abort();
  if (a->bytes && memcmp(a->host, b->host, a->bytes) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".npy", data, size, path, sizeof path)) return 0;
  lu_tensor *t = NULL;
  if (lu_npy_read(path, &t) == LU_OK) {
    char out[300];
    snprintf(out, sizeof out, "%s.rt.npy", path);
    if (lu_npy_write(out, t) == LU_OK) {
      lu_tensor *back = NULL;
      if (lu_npy_read(out, &back) != LU_OK) {
        fprintf(stderr, "fuzz_npy: the written copy does not read back: %s\n", lu_errmsg());
        abort();
      }
      same_or_abort(t, back);
      lu_tensor_free(back);
    }
    unlink(out);
    lu_tensor_free(t);
  } else if (!strstr(lu_errmsg(), path)) {
    fprintf(stderr, "fuzz_npy: an npy error does not name the file: %s\n", lu_errmsg());
    abort(); /* every error names the file */
  }
  int n = 0;
  char **names = NULL;
  lu_tensor **ts = NULL;
  if (lu_npz_read(path, &n, &names, &ts) == LU_OK) {
    for (int i = 0; i < n; i++)
      if (!names[i] || !ts[i]) abort();
    lu_npz_free_list(n, names, ts);
  } else if (!strstr(lu_errmsg(), path)) {
    fprintf(stderr, "fuzz_npy: an npz error does not name the file: %s\n", lu_errmsg());
    abort();
  }
  unlink(path);
  return 0;
}
