/* OpenCL devices: discovery, selection, one context and one in-order queue per device, and the one
 * teardown (lu_cl_shutdown) that finishes and releases them before the process exits. */
#ifndef LU_DEVICE_H
#define LU_DEVICE_H

#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct lu_pool lu_pool;
typedef struct lu_progcache lu_progcache;
struct lu_tunables;

typedef struct lu_device {
  int index;                 /* position in lu_devices() order */
  int platform_index, platform_device; /* for tools that take -platform P -device D */
  cl_platform_id platform;
  cl_device_id id;
  cl_context ctx;            /* created on first use */
  cl_command_queue queue;    /* in-order */
  char name[256];
  char vendor[128];
  char platform_name[128];
  char driver[128];
  char version[128];
  int is_gpu, is_cpu;
  uint64_t global_mem, local_mem, max_alloc;
  unsigned compute_units;
  size_t max_wg;
  int has_fp16;
  int host_buffers;          /* CPU device: buffers use host memory Lunet allocates (cl/pool.c) */
  size_t mem_align;          /* CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes (at least 128) */
  lu_pool *pool;
  lu_progcache *progs;
  struct lu_tunables *tune; /* kernel parameters (cl/tunables.h) */
  void *conv_wcache;         /* the lu_conv_wcache of the lu_conv_fwd_cached pass in flight, else NULL */
} lu_device;

/* Number of OpenCL devices over all platforms (discovers once). */
lu_status lu_devices_count(int *n);
/* Device by index, initialised (context, queue) on first call. */
lu_status lu_device_get(int index, lu_device **out);
/* The default device: LUNET_DEVICE=cpu|gpu|<index>, else the first GPU, else the first device. */
lu_status lu_device_default(lu_device **out);
/* Device info without creating its context (for listing). */
lu_status lu_device_info(int index, const lu_device **out);
/* Waits for all queued work on the device. */
lu_status lu_device_finish(lu_device *dev);

/* Teardown, process-wide and idempotent: waits for the threads that hold the devices (lu_cl_hold),
 * finishes every queue, then releases CLBlast's cache, programs and kernels, cached buffers, queues
 * and contexts, in that order. Afterwards lu_device_get fails with LU_ESTATE and buffers still held
 * by tensors are released one by one as those are freed (each keeps its context alive until then).
 * Called by the Lua module's close (its registry sentinel's __gc), by lunet.core.shutdown() and by
 * an atexit handler registered when the first device starts, whichever comes first. */
void lu_cl_shutdown(void);
int lu_cl_is_shut_down(void);
/* A thread that enqueues device work beside the caller (core.async's worker) holds the devices
 * for its duration, so that the teardown waits for it; hold fails with LU_ESTATE after shutdown. */
lu_status lu_cl_hold(void);
void lu_cl_unhold(void);
/* LU_ESTATE unless the device has a queue (it was started and OpenCL was not shut down). */
lu_status lu_device_check_live(const lu_device *dev, const char *what);

/* The OpenCL error name, e.g. "CL_OUT_OF_RESOURCES". */
const char *lu_cl_errname(cl_int err);
/* Fails with LU_ECL naming the call and the OpenCL error. */
#define LU_CL_CHECK(call, what, ...)                                                        \
  do {                                                                                      \
    cl_int lu_cl_err_ = (call);                                                             \
    if (lu_cl_err_ != CL_SUCCESS)                                                           \
      return lu_fail(LU_ECL, "%s (" what ")", lu_cl_errname(lu_cl_err_), ##__VA_ARGS__);    \
  } while (0)

#endif
