#include "cl/pool.h"

#include <pthread.h>
#include <stdlib.h>

/* Sizes are rounded up to one of four steps per power of two (<= 25% waste), and freed buffers
 * wait in a free list per rounded size. */
typedef struct lu_free_buf { cl_mem m; size_t size; struct lu_free_buf *next; } lu_free_buf;

/* The lock makes allocation and release safe from the training worker thread (core.async) while
 * the main thread frees tensors. */
struct lu_pool {
  pthread_mutex_t lock;
  lu_free_buf *free_list;
  lu_pool_stats st;
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

static lu_status alloc_locked(lu_device *dev, lu_pool *p, size_t bytes, cl_mem *out);

lu_status lu_buffer_alloc(lu_device *dev, size_t bytes, cl_mem *out) {
  lu_pool *p = pool_of(dev);
  if (!p) return lu_fail(LU_ENOMEM, "buffer pool");
  pthread_mutex_lock(&p->lock);
  lu_status st = alloc_locked(dev, p, bytes, out);
  pthread_mutex_unlock(&p->lock);
  return st;
}

static lu_status alloc_locked(lu_device *dev, lu_pool *p, size_t bytes, cl_mem *out) {
  size_t size = round_size(bytes);
  for (lu_free_buf **pp = &p->free_list; *pp; pp = &(*pp)->next)
    if ((*pp)->size == size) {
      lu_free_buf *f = *pp;
      *pp = f->next;
      *out = f->m;
      free(f);
      p->st.cached -= size;
      p->st.in_use += size;
      p->st.reuses++;
      if (p->st.in_use > p->st.peak) p->st.peak = p->st.in_use;
      return LU_OK;
    }
  if (dev->max_alloc && size > dev->max_alloc)
    return lu_fail(LU_ENOMEM, "buffer of %zu bytes exceeds the device's largest allocation (%llu bytes)", size,
                   (unsigned long long)dev->max_alloc);
  cl_int e;
  cl_mem m = clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE, size, NULL, &e);
  if (e != CL_SUCCESS && p->free_list) { /* memory may be held by cached buffers: release and retry */
    release_free_list(p);
    m = clCreateBuffer(dev->ctx, CL_MEM_READ_WRITE, size, NULL, &e);
  }
  if (e != CL_SUCCESS)
    return lu_fail(e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES ? LU_ENOMEM : LU_ECL,
                   "%s (allocating %zu bytes on %s)", lu_cl_errname(e), size, dev->name);
  p->st.allocs++;
  p->st.in_use += size;
  if (p->st.in_use > p->st.peak) p->st.peak = p->st.in_use;
  *out = m;
  return LU_OK;
}

void lu_buffer_release(lu_device *dev, cl_mem m, size_t bytes) {
  lu_pool *p = pool_of(dev);
  size_t size = round_size(bytes);
  lu_free_buf *f = p ? malloc(sizeof *f) : NULL;
  if (!f) { clReleaseMemObject(m); return; }
  f->m = m;
  f->size = size;
  pthread_mutex_lock(&p->lock);
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
