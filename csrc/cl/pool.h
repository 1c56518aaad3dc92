/* Buffer pool per device: freed buffers are kept by size class and reused, so a training loop
 * that allocates the same shapes every step reaches a steady state without driver allocations. */
#ifndef LU_POOL_H
#define LU_POOL_H

#include "cl/device.h"

/* A buffer of at least `bytes`. On CPU devices (dev->host_buffers) its memory is a host allocation Lunet
 * makes and frees (CL_MEM_USE_HOST_PTR), checked against the address-space limit first, so running out
 * fails here with LU_ENOMEM ("out of memory: <bytes> bytes for <what> on <device> (...)") instead of
 * aborting inside the driver at the buffer's first use. */
lu_status lu_buffer_alloc(lu_device *dev, size_t bytes, cl_mem *out);
lu_status lu_buffer_alloc_for(lu_device *dev, size_t bytes, const char *what, cl_mem *out);
void lu_buffer_release(lu_device *dev, cl_mem m, size_t bytes);
/* Releases every cached (unused) buffer. */
void lu_pool_trim(lu_device *dev);
typedef struct lu_pool_stats { size_t in_use, cached, peak; long allocs, reuses; } lu_pool_stats;
lu_pool_stats lu_pool_get_stats(lu_device *dev);
void lu_pool_free(lu_pool *p);
/* Teardown (lu_cl_shutdown): releases the cached buffers; later releases go straight to the driver. */
void lu_pool_close(lu_device *dev);

#endif
