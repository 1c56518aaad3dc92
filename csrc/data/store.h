/* The chunked case store: one file per preprocessed case holding data (float32, C channels) and seg (int8 or
 * int16, 1 channel) cut into chunks (e.g. 64^3 voxels per channel), each zstd-compressed, with an index, so a
 * patch read decompresses only the chunks it touches. Format in docs/formats.md ("Case store"). Writes go to a
 * temporary file renamed into place; a file is valid only with its trailer (resume skips valid files). */
#ifndef LU_STORE_H
#define LU_STORE_H

#include <stdint.h>

#include "tensor.h"

typedef struct lu_store lu_store;

/* data: F32 (C, Z, Y, X); seg: I8 or I16 (S, Z, Y, X) with the same spatial shape (or NULL). chunk: voxels per
 * chunk along (Z, Y, X), each clipped to the shape. level: zstd level (1..19). threads: compressors. */
lu_status lu_store_write(const char *path, const lu_tensor *data, const lu_tensor *seg, const int64_t chunk[3],
                         int level, int threads);

/* Format limits the reader enforces on a header (the writer's chunks are 64^3 or 1x256x256). */
#define LU_STORE_MAX_EXTENT ((int64_t)1 << 31)
#define LU_STORE_MAX_CHUNK_VOXELS (1 << 27)

lu_status lu_store_open(const char *path, lu_store **out);
void lu_store_close(lu_store *s);
/* Spatial shape (Z, Y, X), channels of data and seg, chunk shape, seg dtype. */
void lu_store_info(const lu_store *s, int64_t shape[3], int64_t *data_channels, int64_t *seg_channels,
                   int64_t chunk[3], lu_dtype *seg_dtype);
/* Box [lo, hi) per spatial axis, any integers with lo <= hi (may extend outside the image). Returns new tensors:
 * data F32 (C, hz-lz, ...) padded with 0 outside the image and seg (S, ...) in the stored dtype padded with -1 (as
 * nnU-Net's data loader). Either output pointer may be NULL to skip that array. */
lu_status lu_store_read_patch(lu_store *s, const int64_t lo[3], const int64_t hi[3], lu_tensor **data,
                              lu_tensor **seg);
/* 1 when path holds a complete store file (header, index and trailer consistent), else 0. */
int lu_store_valid(const char *path);

#endif
