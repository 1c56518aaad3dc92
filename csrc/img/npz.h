/* .npy (format 1.0/2.0/3.0 read, 1.0 written) and .npz (zip: stored or deflate, zip64 aware) files,
 * as numpy writes them with np.save / np.savez / np.savez_compressed. Little-endian, C order;
 * dtypes f2 f4 f8 i1 u1 b1 (read as u8) i2 u2 i4 u4 i8. */
#ifndef LU_IMG_NPZ_H
#define LU_IMG_NPZ_H

#include <stddef.h>

#include "tensor.h"

lu_status lu_npy_read(const char *path, lu_tensor **out);
/* Writes path atomically (core/atomic_file.h). */
lu_status lu_npy_write(const char *path, const lu_tensor *t);

/* All arrays of an npz: *names[i] (malloc'd, without ".npy") and *tensors[i] (host). Free with
 * lu_npz_free_list. */
lu_status lu_npz_read(const char *path, int *n_out, char ***names, lu_tensor ***tensors);
void lu_npz_free_list(int n, char **names, lu_tensor **tensors);

/* level 0: stored entries (np.savez); 1..9: deflate at that zlib level (np.savez_compressed uses 6).
 * Written atomically (core/atomic_file.h). */
lu_status lu_npz_write(const char *path, int n, const char *const *names, const lu_tensor *const *tensors, int level);

#endif
