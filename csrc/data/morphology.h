/* Binary morphology on u8 masks {Z, Y, X} with a footprint given as runs (the cascade's random binary operator,
 * batchgeneratorsv2 random_binary_operator.py). A footprint run (dz, dy, a, b) means offsets (dz, dy, a..b); a
 * voxel p dilates to 1 when the mask is set at p + o for an offset o inside the patch (offsets leaving the patch
 * are ignored); erosion is the complement of the dilated complement. */
#ifndef LU_DATA_MORPHOLOGY_H
#define LU_DATA_MORPHOLOGY_H
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

enum { LU_MORPH_DILATE = 1, LU_MORPH_ERODE = 2, LU_MORPH_CLOSE = 3, LU_MORPH_OPEN = 4 };

/* op in LU_MORPH_*; runs: nruns * 4 ints; mask is read, out (same size, may not alias) receives the result. */
lu_status lu_morph_binary_op(const uint8_t *mask, uint8_t *out, int Z, int Y, int X, int op, const int *runs,
                             int nruns);
#endif
