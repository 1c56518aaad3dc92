/* libFuzzer harness for the TIFF reader (classic and BigTIFF, strips and tiles). */
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".tif", data, size, path, sizeof path)) return 0;
  lu_fuzz_read(path, ".tif");
  unlink(path);
  return 0;
}
