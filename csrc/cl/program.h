/* Program cache: each kernel source is compiled once per process, device and build options. Across
 * processes, binaries are kept on disk under $LUNET_CACHE_DIR (default $XDG_CACHE_HOME/lunet or
 * ~/.cache/lunet), keyed by device name, driver version, options and source hash, so later processes
 * skip the driver's compile; on PoCL, whose own cache does this better, Lunet keeps no binaries
 * (LUNET_BINARY_CACHE=1 or 0 overrides; see program.c). */
#ifndef LU_PROGRAM_H
#define LU_PROGRAM_H

#include "cl/device.h"

/* Kernel `kname` from source file `file` (path under kernels/, e.g. "elementwise/elementwise.cl"),
 * built with `options` (may be NULL). The kernel object is owned by the cache: do not release it.
 * Not thread-safe per device: launch kernels of one device from one thread. */
lu_status lu_kernel_get(lu_device *dev, const char *file, const char *kname, const char *options,
                        cl_kernel *out);

/* Statistics since process start (for specs and logs). */
typedef struct lu_progcache_stats {
  long compiles;     /* programs built from source (on PoCL its own cache may answer) */
  long disk_hits;    /* programs loaded from a cached binary */
  long memory_hits;  /* kernels found already built in this process */
} lu_progcache_stats;
lu_progcache_stats lu_progcache_get_stats(void);

/* Source text of a kernel file as the driver gets it: $LUNET_KERNELS/<file> when that exists, else
 * the embedded copy, with its `#include "NAME"` lines (NAME a path under kernels/, each resolved the
 * same way) expanded, each file once (see program.c). */
lu_status lu_kernel_source(const char *file, char **out_malloced);

void lu_progcache_free(lu_progcache *pc);

/* Launch helper: sets args from a list of (size, pointer) pairs terminated by size 0, then runs
 * an N-D range (local may be NULL). */
lu_status lu_launch(lu_device *dev, cl_kernel k, int dims, const size_t *global, const size_t *local,
                    const char *what);
#define LU_ARG(k, i, v) clSetKernelArg((k), (i), sizeof(v), &(v))

#endif
