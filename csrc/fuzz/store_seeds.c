/* Writes the seed corpus of the store harness (spec/fixtures/fuzz/store/): small case stores with
 * one and two data channels, i8 and i16 segmentations, whole and clipped chunks. Build and run:
 *   cc -std=c11 -D_GNU_SOURCE -Icsrc csrc/fuzz/store_seeds.c csrc/data/store.c csrc/core/threads.c \
 *     csrc/core/atomic_file.c csrc/core/status.c csrc/tensor.c csrc/fuzz/stubs.c -DCL_TARGET_OPENCL_VERSION=120 \
 *     -lzstd -lpthread -lm -lOpenCL \
 *     -o /tmp/store_seeds && /tmp/store_seeds spec/fixtures/fuzz/store */
#include <stdio.h>
#include <stdlib.h>

#include "data/store.h"

static void one(const char *dir, const char *name, int64_t c, int64_t s, lu_dtype sd, int64_t z, int64_t y,
                int64_t x, int64_t ch) {
  int64_t ds[4] = {c, z, y, x}, ss[4] = {s, z, y, x}, chunk[3] = {ch, ch, ch};
  lu_tensor *d = NULL, *g = NULL;
  if (lu_tensor_new_host(&d, LU_F32, 4, ds) != LU_OK) exit(1);
  for (int64_t i = 0; i < c * z * y * x; i++) ((float *)d->host)[i] = (float)(i % 7) * 0.5f - 1.0f;
  if (s && lu_tensor_new_host(&g, sd, 4, ss) != LU_OK) exit(1);
  for (int64_t i = 0; g && i < s * z * y * x; i++) {
    if (sd == LU_I8) ((int8_t *)g->host)[i] = (int8_t)(i % 3);
    else ((int16_t *)g->host)[i] = (int16_t)(i % 300 - 1);
  }
  char path[512];
  snprintf(path, sizeof path, "%s/%s.lcs", dir, name);
  if (lu_store_write(path, d, g, chunk, 3, 1) != LU_OK) { fprintf(stderr, "%s\n", lu_errmsg()); exit(1); }
  lu_tensor_free(d);
  if (g) lu_tensor_free(g);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  one(dir, "c1_i8_4x5x6_chunk2", 1, 1, LU_I8, 4, 5, 6, 2);
  one(dir, "c2_i16_3x3x3_chunk3", 2, 1, LU_I16, 3, 3, 3, 3);
  one(dir, "c1_noseg_2x7x5_chunk4", 1, 0, LU_I8, 2, 7, 5, 4);
  one(dir, "c1_i8_1x1x1", 1, 1, LU_I8, 1, 1, 1, 1);
  return 0;
}
