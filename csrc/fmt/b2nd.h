/* Blosc2 NDArray (.b2nd) files, as nnunetv2 (2.6+) writes its preprocessed cases and the cascade's
 * predicted_next_stage segmentations: a Blosc2 contiguous frame (cframe) whose "b2nd" metalayer gives
 * shape, chunk and block shapes and a numpy dtype. Read only, decoder written from the public format
 * documents (README_CFRAME_FORMAT, README_CHUNK_FORMAT, README_B2ND_METALAYER in c-blosc2), since
 * c-blosc2 is not packaged in Debian 12.
 *
 * Supported: codecs ZSTD, LZ4/LZ4HC, BloscLZ and zlib; filters NOFILTER, SHUFFLE (any byte group) and
 * TRUNC_PREC (nothing to undo); split and unsplit blocks; memcpyed chunks and streams; special chunks
 * and streams (zeros, NaN, repeated value, uninitialized); chunks and blocks overhanging the array.
 * Refused with a message naming the file: BITSHUFFLE, DELTA and plugin filters, dictionaries,
 * user-defined codecs, variable-length blocks, sparse frames, big-endian dtypes, more than
 * LU_MAX_DIMS dimensions. Every offset and length is checked against the file size. */
#ifndef LU_FMT_B2ND_H
#define LU_FMT_B2ND_H

#include "tensor.h"

/* The whole array as a new host tensor (numpy dtype mapped to lu_dtype; '|b1' reads as u8). */
lu_status lu_b2nd_read(const char *path, lu_tensor **out);
/* The same, refusing (before allocating) an array or a chunk larger than max_bytes (0: no limit), since
 * special chunks let a file of a few hundred bytes declare any size (the fuzz harness uses it). */
lu_status lu_b2nd_read_max(const char *path, size_t max_bytes, lu_tensor **out);

#endif
