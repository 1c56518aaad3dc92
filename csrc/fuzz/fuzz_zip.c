/* libFuzzer harness for the zip reader and the torch loader on top of it: every entry is read (CRC
 * checked) and extracted; the input is also loaded as a torch checkpoint. Errors must name the file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmt/torch.h"
#include "fmt/zip.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  if (!lu_fuzz_write(".pt", data, size, path, sizeof path)) return 0;
  lu_zip *z;
  if (lu_zip_open(path, &z) == LU_OK) {
    for (int i = 0; i < z->n && i < 64; i++) {
      void *buf;
      size_t n;
      if (lu_zip_read(z, i, 1 << 24, &buf, &n) == LU_OK) free(buf);
      else if (!strstr(lu_errmsg(), path)) abort();
      char out[300];
      snprintf(out, sizeof out, "%s.x", path);
      if (z->e[i].usize < (1 << 24) && lu_zip_extract(z, i, out) == LU_OK) unlink(out);
    }
    lu_zip_close(z);
  } else if (!strstr(lu_errmsg(), path)) abort();
  lu_unpickler *u;
  lu_pv *root;
  if (lu_torch_load(path, NULL, &u, &root) == LU_OK) lu_unpickler_free(u);
  else if (!strstr(lu_errmsg(), path)) abort();
  unlink(path);
  return 0;
}
