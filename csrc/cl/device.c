#include "cl/device.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <unistd.h>

#include "cl/blas.h"
#include "cl/pool.h"
#include "cl/profile.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "core/addrspace.h"
#include "core/env.h"

#define LU_MAX_DEVICES 32

static struct {
  pthread_mutex_t lock;
  pthread_cond_t idle;   /* signalled when holds drops to 0 */
  int discovered, count;
  int shut;              /* lu_cl_shutdown ran */
  int holds;             /* threads holding the devices (lu_cl_hold) */
  int atexit_set;
  pid_t owner;           /* the process that started the devices (a forked child owns none of it) */
  lu_device devs[LU_MAX_DEVICES];
} lu_reg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, {{0}}};

const char *lu_cl_errname(cl_int err) {
  switch (err) {
#define E(x) case x: return #x;
  E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
  E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
  E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_IMAGE_FORMAT_MISMATCH)
  E(CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
  E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE)
  E(CL_LINK_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM)
  E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT) E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE)
  E(CL_INVALID_HOST_PTR) E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E(CL_INVALID_IMAGE_SIZE)
  E(CL_INVALID_SAMPLER) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM)
  E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL)
  E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS)
  E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE)
  E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT) E(CL_INVALID_OPERATION)
  E(CL_INVALID_GL_OBJECT) E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_MIP_LEVEL) E(CL_INVALID_GLOBAL_WORK_SIZE)
  E(CL_INVALID_PROPERTY) E(CL_INVALID_IMAGE_DESCRIPTOR) E(CL_INVALID_COMPILER_OPTIONS)
  E(CL_INVALID_LINKER_OPTIONS) E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
  case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL driver installed: install pocl-opencl-icd or a GPU driver)";
  default: return "CL_UNKNOWN_ERROR";
  }
}

static void info_str(cl_device_id d, cl_device_info what, char *buf, size_t n) {
  buf[0] = 0;
  if (clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS) buf[0] = 0;
  buf[n - 1] = 0;
  /* drivers pad names with spaces */
  size_t l = strlen(buf);
  while (l && isspace((unsigned char)buf[l - 1])) buf[--l] = 0;
}

static lu_status discover_locked(void) {
  if (lu_reg.discovered) return LU_OK;
  cl_uint np = 0;
  cl_int e = clGetPlatformIDs(0, NULL, &np);
  if (e == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (e == CL_SUCCESS && np == 0)) {
    lu_reg.discovered = 1;
    lu_reg.count = 0;
    return LU_OK;
  }
  LU_CL_CHECK(e, "listing OpenCL platforms");
  cl_platform_id plats[16];
  if (np > 16) np = 16;
  LU_CL_CHECK(clGetPlatformIDs(np, plats, NULL), "listing OpenCL platforms");
  int count = 0;
  for (cl_uint p = 0; p < np; p++) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
    cl_device_id ids[LU_MAX_DEVICES];
    if (nd > LU_MAX_DEVICES) nd = LU_MAX_DEVICES;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS) continue;
    for (cl_uint i = 0; i < nd && count < LU_MAX_DEVICES; i++) {
      lu_device *d = &lu_reg.devs[count];
      memset(d, 0, sizeof *d);
      d->index = count;
      d->platform_index = (int)p;
      d->platform_device = (int)i;
      d->platform = plats[p];
      d->id = ids[i];
      info_str(ids[i], CL_DEVICE_NAME, d->name, sizeof d->name);
      info_str(ids[i], CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
      info_str(ids[i], CL_DRIVER_VERSION, d->driver, sizeof d->driver);
      info_str(ids[i], CL_DEVICE_VERSION, d->version, sizeof d->version);
      clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof d->platform_name, d->platform_name, NULL);
      d->platform_name[sizeof d->platform_name - 1] = 0;
      cl_device_type type = 0;
      clGetDeviceInfo(ids[i], CL_DEVICE_TYPE, sizeof type, &type, NULL);
      d->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
      d->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
      cl_ulong v = 0;
      clGetDeviceInfo(ids[i], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, NULL); d->global_mem = v;
      clGetDeviceInfo(ids[i], CL_DEVICE_LOCAL_MEM_SIZE, sizeof v, &v, NULL); d->local_mem = v;
      clGetDeviceInfo(ids[i], CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, NULL); d->max_alloc = v;
      cl_uint cu = 0;
      clGetDeviceInfo(ids[i], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL); d->compute_units = cu;
      size_t wg = 0;
      clGetDeviceInfo(ids[i], CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL); d->max_wg = wg;
      char ext[4096];
      info_str(ids[i], CL_DEVICE_EXTENSIONS, ext, sizeof ext);
      d->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
      cl_uint align_bits = 0;
      clGetDeviceInfo(ids[i], CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
      d->mem_align = align_bits / 8 > 128 ? align_bits / 8 : 128;
      /* PoCL's CPU driver allocates a buffer's memory lazily, at its first use, and aborts on an assertion
       * when that fails; a buffer over memory Lunet allocated itself fails cleanly, when it is created.
       * LUNET_HOST_BUFFERS=0 lets the driver allocate. */
      const char *hb = lu_env("LUNET_HOST_BUFFERS");
      d->host_buffers = d->is_cpu && !(hb && strcmp(hb, "0") == 0);
      count++;
    }
  }
  lu_reg.count = count;
  lu_reg.discovered = 1;
  return LU_OK;
}

/* Installed ICD files (the loader's vendor folder), for telling "no driver" from "no driver started". */
static int icd_files(char *first, size_t n) {
  const char *dir = lu_env("OCL_ICD_VENDORS");
  if (!dir) dir = "/etc/OpenCL/vendors";
  DIR *d = opendir(dir);
  if (!d) return 0;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".icd") == 0) {
      if (!count) snprintf(first, n, "%s/%s", dir, e->d_name);
      count++;
    }
  }
  closedir(d);
  return count;
}

/* The failure for "no device": a driver that is installed but did not start under an address-space
 * limit is out of memory, not missing. */
static lu_status no_device(void) {
  char icd[512] = "", note[160];
  uint64_t limit, used;
  if (lu_addrspace(&limit, &used) && icd_files(icd, sizeof icd) > 0) {
    lu_addrspace_note(note, sizeof note);
    return lu_fail(LU_ENOMEM,
                   "out of memory: no OpenCL device started: the driver is installed (%s) but could not load within "
                   "the process's address space%s; raise `ulimit -v`",
                   icd, note);
  }
  return lu_fail(LU_ECL, "no OpenCL device found: install pocl-opencl-icd (CPU) or a GPU driver's ICD");
}

lu_status lu_devices_count(int *n) {
  pthread_mutex_lock(&lu_reg.lock);
  lu_status st = discover_locked();
  *n = lu_reg.count;
  pthread_mutex_unlock(&lu_reg.lock);
  return st;
}

lu_status lu_device_info(int index, const lu_device **out) {
  int n;
  LU_TRY(lu_devices_count(&n));
  if (index < 0 || index >= n) return lu_fail(LU_EARG, "no OpenCL device %d (%d found)", index, n);
  *out = &lu_reg.devs[index];
  return LU_OK;
}

static void at_exit(void) { lu_cl_shutdown(); }

static lu_status cl_fail(cl_int e, const char *what, const lu_device *d) {
  char note[160];
  lu_addrspace_note(note, sizeof note);
  if (e == CL_OUT_OF_HOST_MEMORY || e == CL_OUT_OF_RESOURCES || e == CL_MEM_OBJECT_ALLOCATION_FAILURE)
    return lu_fail(LU_ENOMEM, "out of memory: %s (%s on %s)%s", lu_cl_errname(e), what, d->name, note);
  return lu_fail(LU_ECL, "%s (%s on %s)%s", lu_cl_errname(e), what, d->name, note);
}

static lu_status init_device_locked(lu_device *d) {
  if (lu_reg.shut)
    return lu_fail(LU_ESTATE, "OpenCL was shut down (lunet.core.shutdown() or the process is exiting): %s is closed", d->name);
  LU_TRY(lu_tune_init(d));
  if (d->ctx) return LU_OK;
  cl_int e;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
  cl_context ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &e);
  if (e != CL_SUCCESS) return cl_fail(e, "creating a context", d);
  cl_command_queue q = clCreateCommandQueue(ctx, d->id, lu_profile_queue_props(), &e);
  if (e != CL_SUCCESS) {
    clReleaseContext(ctx);
    return cl_fail(e, "creating a queue", d);
  }
  d->ctx = ctx;
  d->queue = q;
  lu_reg.owner = getpid();
  /* registered after the driver loaded, so it runs before the driver's own exit handlers */
  if (!lu_reg.atexit_set && atexit(at_exit) == 0) lu_reg.atexit_set = 1;
  return LU_OK;
}

lu_status lu_device_get(int index, lu_device **out) {
  pthread_mutex_lock(&lu_reg.lock);
  lu_status st = discover_locked();
  if (st == LU_OK && (index < 0 || index >= lu_reg.count))
    st = lu_reg.count ? lu_fail(LU_EARG, "no OpenCL device %d (%d found; lunet.devices() lists them)", index, lu_reg.count)
                      : no_device();
  if (st == LU_OK) st = init_device_locked(&lu_reg.devs[index]);
  if (st == LU_OK) *out = &lu_reg.devs[index];
  pthread_mutex_unlock(&lu_reg.lock);
  return st;
}

lu_status lu_device_default(lu_device **out) {
  int n;
  LU_TRY(lu_devices_count(&n));
  if (n == 0) {
    pthread_mutex_lock(&lu_reg.lock);
    lu_status st = no_device();
    pthread_mutex_unlock(&lu_reg.lock);
    return st;
  }
  const char *want = lu_env("LUNET_DEVICE");
  int pick = -1;
  if (want && *want) {
    if (strcmp(want, "cpu") == 0 || strcmp(want, "gpu") == 0) {
      int gpu = want[0] == 'g';
      for (int i = 0; i < n && pick < 0; i++)
        if (gpu ? lu_reg.devs[i].is_gpu : lu_reg.devs[i].is_cpu) pick = i;
      if (pick < 0) return lu_fail(LU_EARG, "LUNET_DEVICE=%s: no such device among %d (lunet.devices() lists them)", want, n);
    } else {
      char *end;
      long v = strtol(want, &end, 10);
      if (*end || v < 0 || v >= n)
        return lu_fail(LU_EARG, "LUNET_DEVICE=%s: expected cpu, gpu or an index below %d", want, n);
      pick = (int)v;
    }
  } else {
    for (int i = 0; i < n && pick < 0; i++)
      if (lu_reg.devs[i].is_gpu) pick = i;
    if (pick < 0) pick = 0;
  }
  return lu_device_get(pick, out);
}

lu_status lu_device_check_live(const lu_device *dev, const char *what) {
  if (dev && dev->queue) return LU_OK;
  return lu_fail(LU_ESTATE, "%s: %s is closed (OpenCL was shut down: lunet.core.shutdown() or the process is exiting)",
                 what, dev ? dev->name : "no device");
}

lu_status lu_device_finish(lu_device *dev) {
  LU_TRY(lu_device_check_live(dev, "finish"));
  lu_note_host_wait("finish");
  LU_CL_CHECK(clFinish(dev->queue), "waiting for %s", dev->name);
  return LU_OK;
}

lu_status lu_cl_hold(void) {
  pthread_mutex_lock(&lu_reg.lock);
  int shut = lu_reg.shut;
  if (!shut) lu_reg.holds++;
  pthread_mutex_unlock(&lu_reg.lock);
  return shut ? lu_fail(LU_ESTATE, "OpenCL was shut down (lunet.core.shutdown() or the process is exiting)") : LU_OK;
}

void lu_cl_unhold(void) {
  pthread_mutex_lock(&lu_reg.lock);
  if (lu_reg.holds > 0 && --lu_reg.holds == 0) pthread_cond_broadcast(&lu_reg.idle);
  pthread_mutex_unlock(&lu_reg.lock);
}

int lu_cl_is_shut_down(void) {
  pthread_mutex_lock(&lu_reg.lock);
  int s = lu_reg.shut;
  pthread_mutex_unlock(&lu_reg.lock);
  return s;
}

/* Order matters: queued kernels use programs and buffers, and CLBlast's cached programs hold contexts.
 * Without it, a script that enqueued work and ended without waiting crashed at exit 1-2 times in 6, the
 * driver's threads still running while its exit handlers tore it down. Each step is skipped when its
 * object is already gone. */
void lu_cl_shutdown(void) {
  pthread_mutex_lock(&lu_reg.lock);
  if (lu_reg.shut) { pthread_mutex_unlock(&lu_reg.lock); return; }
  lu_reg.shut = 1; /* no new device, no new hold */
  if (lu_reg.owner && lu_reg.owner != getpid()) {
    /* a forked child (core.proc) exiting: the queues, the driver's threads and the holders are the parent's */
    pthread_mutex_unlock(&lu_reg.lock);
    return;
  }
  while (lu_reg.holds > 0) pthread_cond_wait(&lu_reg.idle, &lu_reg.lock);
  int any = 0;
  for (int i = 0; i < lu_reg.count; i++)
    if (lu_reg.devs[i].queue) { clFinish(lu_reg.devs[i].queue); any = 1; }
  /* LUNET_PROFILE=1: the table, while its events' queues still exist */
  if (any) lu_profile_print(stderr);
  if (any) lu_blas_shutdown();
  for (int i = 0; i < lu_reg.count; i++) {
    lu_device *d = &lu_reg.devs[i];
    if (d->progs) { lu_progcache_free(d->progs); d->progs = NULL; }
    lu_pool_close(d);
    if (d->queue) { clReleaseCommandQueue(d->queue); d->queue = NULL; }
    if (d->ctx) { clReleaseContext(d->ctx); d->ctx = NULL; }
  }
  pthread_mutex_unlock(&lu_reg.lock);
}
