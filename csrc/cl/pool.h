/* Buffer pool per device: freed buffers are kept by size class and reused, so a training loop
 * that allocates the same shapes every step reaches a steady state without driver allocations. */
#ifndef LU_POOL_H
#define LU_POOL_H

#include "cl/device.h"

lu_status lu_buffer_alloc(lu_device *dev, size_t bytes, cl_mem *out);
void lu_buffer_release(lu_device *dev, cl_mem m, size_t bytes);
/* Releases every cached (unused) buffer. */
void lu_pool_trim(lu_device *dev);
typedef struct lu_pool_stats { size_t in_use, cached, peak; long allocs, reuses; } lu_pool_stats;
lu_pool_stats lu_pool_get_stats(lu_device *dev);
void lu_pool_free(lu_pool *p);

#endif
