#include "cl/device.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cl/pool.h"
#include "cl/program.h"
#include "cl/tunables.h"
#include "core/env.h"

#define LU_MAX_DEVICES 32

static struct {
  pthread_mutex_t lock;
  int discovered, count;
  lu_device devs[LU_MAX_DEVICES];
} lu_reg = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}};

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
      count++;
    }
  }
  lu_reg.count = count;
  lu_reg.discovered = 1;
  return LU_OK;
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

static lu_status init_device_locked(lu_device *d) {
  LU_TRY(lu_tune_init(d));
  if (d->ctx) return LU_OK;
  cl_int e;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
  cl_context ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &e);
  if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (creating a context on %s)", lu_cl_errname(e), d->name);
  cl_command_queue q = clCreateCommandQueue(ctx, d->id, 0, &e);
  if (e != CL_SUCCESS) {
    clReleaseContext(ctx);
    return lu_fail(LU_ECL, "%s (creating a queue on %s)", lu_cl_errname(e), d->name);
  }
  d->ctx = ctx;
  d->queue = q;
  return LU_OK;
}

lu_status lu_device_get(int index, lu_device **out) {
  pthread_mutex_lock(&lu_reg.lock);
  lu_status st = discover_locked();
  if (st == LU_OK && (index < 0 || index >= lu_reg.count))
    st = lu_reg.count ? lu_fail(LU_EARG, "no OpenCL device %d (%d found; lunet.devices() lists them)", index, lu_reg.count)
                      : lu_fail(LU_ECL, "no OpenCL device found: install pocl-opencl-icd (CPU) or a GPU driver's ICD");
  if (st == LU_OK) st = init_device_locked(&lu_reg.devs[index]);
  if (st == LU_OK) *out = &lu_reg.devs[index];
  pthread_mutex_unlock(&lu_reg.lock);
  return st;
}

lu_status lu_device_default(lu_device **out) {
  int n;
  LU_TRY(lu_devices_count(&n));
  if (n == 0) return lu_fail(LU_ECL, "no OpenCL device found: install pocl-opencl-icd (CPU) or a GPU driver's ICD");
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

lu_status lu_device_finish(lu_device *dev) {
  LU_CL_CHECK(clFinish(dev->queue), "waiting for %s", dev->name);
  return LU_OK;
}
