/* libFuzzer harness for the Blosc2 .b2nd reader (fmt/b2nd.h): every input is read as a file; a
 * failure must name the file, a success must give a host tensor whose bytes match its shape. Arrays
 * over 256 MiB are refused up front (lu_b2nd_read_max): the limit is libFuzzer's, not a bug. */
#include "fmt/b2nd.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".b2nd", data, size, path, sizeof path)) return 0;
  lu_tensor *t = NULL;
  if (lu_b2nd_read_max(path, (size_t)256 << 20, &t) == LU_OK) {
    if (!t || (size_t)lu_tensor_numel(t) * lu_dtype_size(t->dtype) != t->bytes) abort();
    lu_tensor_free(t);
  } else if (!strstr(lu_errmsg(), path)) {
    fprintf(stderr, "fuzz_b2nd: an error does not name the file: %s\n", lu_errmsg());
    abort(); /* every error names the file */
  }
  unlink(path);
  return 0;
}
