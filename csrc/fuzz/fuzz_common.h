/* Shared by the libFuzzer harnesses: the readers take paths, so each input is written to a
 * private file under /dev/shm (or /tmp) with the ending the reader dispatches on. */
#ifndef LU_FUZZ_COMMON_H
#define LU_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "img/image.h"

static int lu_fuzz_write(const char *ending, const uint8_t *data, size_t size, char *path, size_t n) {
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(path, n, "%s/lunet-fuzz-%ld%s", dir, (long)getpid(), ending);
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  return 1;
}

/* Reads path, and when it succeeds writes it back and reads that again (round trip must hold). */
static void lu_fuzz_read(const char *path, const char *ending) {
  lu_image img;
  if (lu_image_read(path, &img) != LU_OK) {
    if (!strstr(lu_errmsg(), path)) abort(); /* every error names the file */
    return;
  }
  char out[512];
  snprintf(out, sizeof out, "%s.rt%s", path, ending);
  if (lu_image_write(out, &img) == LU_OK) {
    lu_image back;
    if (lu_image_read(out, &back) != LU_OK) abort();
    if (back.data->bytes != img.data->bytes || memcmp(back.data->host, img.data->host, img.data->bytes) != 0) abort();
    lu_image_clear(&back);
  }
  unlink(out);
  lu_image_clear(&img);
}

#endif
