#include "cl/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/addrspace.h"

/* Sizes are rounded up to one of four steps per power of two (<= 25% waste), and freed buffers
 * wait in a free list. A request takes the smallest free buffer of its rounded size up to twice that:
 * the per-call scratch of the convolutions (transposed gradients, padded inputs, partial sums) comes in
 * many sizes, one per layer shape, and exact-size reuse kept one resident buffer per size (0.9 GB on a
 * 2-D training step) where a few larger ones serve the calls in turn. The factor 2 bounds the waste of
 * a large buffer held by a small request (which could make a concurrent large request allocate). */
typedef struct lu_free_buf { cl_mem m; size_t size; struct lu_free_buf *next; } lu_free_buf;

/* The lock makes allocation and release safe from the training worker thread (core.async) while
 * the main thread frees tensors. */
struct lu_pool {
  pthread_mutex_t lock;
  lu_free_buf *free_list;
  lu_pool_stats st;
  int closed; /* after lu_pool_close: nothing is cached any more */
};

static size_t round_size(size_t n) {
  if (n <= 256) return 256;
  size_t p = 256;
  while (p * 2 < n) p *= 2;
  size_t q = p / 4;
  size_t r = p;
  while (r < n) r += q;
  return r;
}

static pthread_mutex_t lu_pool_create_lock = PTHREAD_MUTEX_INITIALIZER;

static lu_pool *pool_of(lu_device *dev) {
  pthread_mutex_lock(&lu_pool_create_lock);
  if (!dev->pool) {
    lu_pool *p = calloc(1, sizeof(lu_pool));
    if (p) pthread_mutex_init(&p->lock, NULL);
    dev->pool = p;
  }
  pthread_mutex_unlock(&lu_pool_create_lock);
  return dev->pool;
}

static void release_free_list(lu_pool *p) {
  while (p->free_list) {
    lu_free_buf *f = p->free_list;
    p->free_list = f->next;
    clReleaseMemObject(f->m);
    free(f);
  }
  p->st.cached = 0;
}

static lu_status alloc_locked(lu_device *dev, lu_pool *p, size_t bytes, const char *what, cl_mem *out);

lu_status lu_buffer_alloc_for(lu_device *dev, size_t bytes, const char *what, cl_mem *out) {
  LU_TRY(lu_device_check_live(dev, what));
  lu_pool *p = pool_of(dev);
  if (!p) return lu_fail(LU_ENOMEM, "out of memory: the buffer pool of %s", dev->name);
  pthread_mutex_lock(&p->lock);
  lu_status st = alloc_locked(dev, p, bytes, what, out);
  pthread_mutex_unlock(&p->lock);
  return st;
}

lu_status lu_buffer_alloc(lu_device *dev, size_t bytes, cl_mem *out) {
  return lu_buffer_alloc_for(dev, bytes, "a device buffer", out);
}

static void CL_CALLBACK free_host(cl_mem m, void *host) {
  (void)m;
  free(host);
}

/* A buffer over host memory we allocate (CPU devices): malloc fails cleanly where the driver would abort.
 * The memory is freed by the buffer's destructor callback, once the driver is done with it. */
static cl_mem create_host_backed(lu_device *dev, size_t size, cl_int *e) {
  void *host = NULL;
  if (posix_memalign(&host, dev->mem_align, size) != 0) { *e = CL_OUT_OF_HOST_MEMORY; return NULL; }
  cl_mem m = clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, size, host, e);
  if (*e == CL_SUCCESS && (*e = clSetMemObjectDestructorCallback(m, free_host, host)) != CL_SUCCESS) {
    clReleaseMemObject(m);
    m = NULL;
  }
  if (*e != CL_SUCCESS) { free(host); return NULL; }
  return m;
}

static cl_mem create(lu_device *dev, size_t size, cl_int *e) {
  if (dev->host_buffers) return create_host_backed(dev, size, e);
  return clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE, size, NULL, e);
}

static lu_status alloc_locked(lu_device *dev, lu_pool *p, size_t bytes, const char *what, cl_mem *out) {
  size_t size = round_size(bytes);
  lu_free_buf **best = NULL;
  for (lu_free_buf **pp = &p->free_list; *pp; pp = &(*pp)->next)
    if ((*pp)->size >= size && (*pp)->size / 2 <= size && (!best || (*pp)->size < (*best)->size)) {
      best = pp;
      if ((*pp)->size == size) break;
    }
  if (best) {
    lu_free_buf *f = *best;
    *best = f->next;
    *out = f->m;
    p->st.cached -= f->size;
    p->st.in_use += f->size;
    p->st.reuses++;
    if (p->st.in_use > p->st.peak) p->st.peak = p->st.in_use;
    free(f);
    return LU_OK;
  }
  if (dev->max_alloc && size > dev->max_alloc)
    return lu_fail(LU_ENOMEM, "out of memory: %zu bytes for %s on %s exceed the device's largest allocation (%llu bytes)",
                   bytes, what, dev->name, (unsigned long long)dev->max_alloc);
  /* On a CPU device the buffer lives in this process's address space: keep room for the driver. */
  if (dev->host_buffers && lu_addrspace_check(bytes, size, what, dev->name) != LU_OK) {
    if (p->free_list) release_free_list(p); /* memory may be held by cached buffers: release and retry */
    LU_TRY(lu_addrspace_check(bytes, size, what, dev->name));
  }
  cl_int e;
  cl_mem m = create(dev, size, &e);
  if (e != CL_SUCCESS && p->free_list) { /* memory may be held by cached buffers: release and retry */
    release_free_list(p);
    m = create(dev, size, &e);
  }
  if (e != CL_SUCCESS) {
    char note[160];
    lu_addrspace_note(note, sizeof note);
    if (e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES || e == CL_OUT_OF_HOST_MEMORY)
      return lu_fail(LU_ENOMEM, "out of memory: %zu bytes for %s on %s (%s%s)%s", bytes, what, dev->name,
                     dev->host_buffers ? "the host allocation failed: " : "", lu_cl_errname(e), note);
    return lu_fail(LU_ECL, "%s (allocating %zu bytes for %s on %s)", lu_cl_errname(e), bytes, what, dev->name);
  }
  p->st.allocs++;
  p->st.in_use += size;
  if (p->st.in_use > p->st.peak) p->st.peak = p->st.in_use;
  *out = m;
  return LU_OK;
}

/* The size a pool buffer was made with (a request may have been served by a larger one). */
static size_t made_size(cl_mem m, size_t bytes) {
  size_t sz = 0;
  if (clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof sz, &sz, NULL) != CL_SUCCESS || sz < bytes) sz = round_size(bytes);
  return sz;
}

void lu_buffer_release(lu_device *dev, cl_mem m, size_t bytes) {
  lu_pool *p = pool_of(dev);
  size_t size = made_size(m, bytes);
  lu_free_buf *f = p ? malloc(sizeof *f) : NULL;
  if (!f) { clReleaseMemObject(m); return; }
  f->m = m;
  f->size = size;
  pthread_mutex_lock(&p->lock);
  if (p->closed) {
    p->st.in_use -= size;
    pthread_mutex_unlock(&p->lock);
    free(f);
    clReleaseMemObject(m);
    return;
  }
  f->next = p->free_list;
  p->free_list = f;
  p->st.in_use -= size;
  p->st.cached += size;
  pthread_mutex_unlock(&p->lock);
}

void lu_pool_trim(lu_device *dev) {
  lu_pool *p = dev->pool;
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  release_free_list(p);
  pthread_mutex_unlock(&p->lock);
}

lu_pool_stats lu_pool_get_stats(lu_device *dev) {
  lu_pool_stats z = {0};
  lu_pool *p = dev->pool;
  if (!p) return z;
  pthread_mutex_lock(&p->lock);
  z = p->st;
  pthread_mutex_unlock(&p->lock);
  return z;
}

void lu_pool_free(lu_pool *p) {
  if (!p) return;
  release_free_list(p);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

void lu_pool_close(lu_device *dev) {
  lu_pool *p = pool_of(dev);
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  release_free_list(p);
  p->closed = 1;
  pthread_mutex_unlock(&p->lock);
}
