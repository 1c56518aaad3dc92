/* libFuzzer harness for the PNG reader (libpng: grey, grey+alpha, RGB(A), palette, 1..16 bits,
 * interlaced), with the write/read round trip of fuzz_common.h. */
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".png", data, size, path, sizeof path)) return 0;
  lu_fuzz_read(path, ".png");
  unlink(path);
  return 0;
}
