/* libFuzzer harness for the NIfTI reader (plain and gzip content, .nii and .nii.gz names). */
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  const char *ending = (size > 0 && (data[size - 1] & 1)) ? ".nii" : ".nii.gz";
  if (!lu_fuzz_write(ending, data, size, path, sizeof path)) return 0;
  lu_fuzz_read(path, ending);
  unlink(path);
  return 0;
}
