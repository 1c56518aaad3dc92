/* Double-buffered batch uploads (see staging.h). */
#include "cl/staging.h"

#include <stdlib.h>
#include <string.h>

#include "cl/profile.h"
#include "core/status.h"

typedef struct stage_buf {
  lu_tensor *dev; /* the device copy the step reads */
  cl_mem pinned;  /* host-visible staging memory of the same size */
  void *map;      /* pinned, mapped for the stager's whole life */
  size_t cap;     /* bytes of pinned */
} stage_buf;

typedef struct stage_slot {
  stage_buf b[LU_STAGE_MAX_TENSORS];
  int n;
  cl_event written;  /* the transfer into b[].dev is complete */
  cl_event released; /* the compute queue has passed the last step that read the slot */
} stage_slot;

struct lu_stager {
  lu_device *dev;
  cl_command_queue xfer;
  stage_slot slot[LU_STAGE_SLOTS];
  int next;
};

static void drop_event(cl_event *e) {
  if (*e) clReleaseEvent(*e);
  *e = NULL;
}

/* Unmaps and releases b's pinned memory (after the transfers out of it have ended). */
static void drop_pinned(lu_stager *s, stage_buf *b) {
  if (b->map) {
    clEnqueueUnmapMemObject(s->xfer, b->pinned, b->map, 0, NULL, NULL);
    clFinish(s->xfer);
  }
  if (b->pinned) clReleaseMemObject(b->pinned);
  b->pinned = NULL;
  b->map = NULL;
  b->cap = 0;
}

static void free_buf(lu_stager *s, stage_buf *b) {
  drop_pinned(s, b);
  lu_tensor_free(b->dev);
  b->dev = NULL;
}

lu_status lu_stager_new(lu_device *dev, lu_stager **out) {
  *out = NULL;
  LU_TRY(lu_device_check_live(dev, "staging"));
  lu_stager *s = calloc(1, sizeof *s);
  if (!s) return lu_fail(LU_ENOMEM, "staging: no memory");
  cl_int e;
  s->dev = dev;
  s->xfer = clCreateCommandQueue(dev->ctx, dev->id, 0, &e);
  if (e != CL_SUCCESS) {
    free(s);
    return lu_fail(LU_ECL, "%s (creating the transfer queue on %s)", lu_cl_errname(e), dev->name);
  }
  *out = s;
  return LU_OK;
}

void lu_stager_free(lu_stager *s) {
  if (!s) return;
  clFinish(s->xfer);
  for (int k = 0; k < LU_STAGE_SLOTS; k++) {
    stage_slot *sl = &s->slot[k];
    if (sl->released) clWaitForEvents(1, &sl->released);
    drop_event(&sl->written);
    drop_event(&sl->released);
    for (int i = 0; i < LU_STAGE_MAX_TENSORS; i++) free_buf(s, &sl->b[i]);
  }
  clReleaseCommandQueue(s->xfer);
  free(s);
}

/* b fits host's dtype and shape: (re)allocated when either changed (*fresh set). */
static lu_status fit(lu_stager *s, stage_buf *b, const lu_tensor *h, int *fresh) {
  if (b->dev && b->dev->dtype == h->dtype && b->dev->ndim == h->ndim &&
      memcmp(b->dev->shape, h->shape, sizeof(int64_t) * (size_t)h->ndim) == 0)
    return LU_OK;
  *fresh = 1;
  if (b->dev) { lu_tensor_free(b->dev); b->dev = NULL; }
  LU_TRY(lu_tensor_new_device(&b->dev, s->dev, h->dtype, h->ndim, h->shape));
  if (b->cap < h->bytes) {
    drop_pinned(s, b);
    cl_int e;
    size_t bytes = h->bytes ? h->bytes : 1;
    b->pinned = clCreateBuffer(s->dev->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &e);
    if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (pinned staging memory, %zu bytes)", lu_cl_errname(e), bytes);
    b->map = clEnqueueMapBuffer(s->xfer, b->pinned, CL_TRUE, CL_MAP_WRITE, 0, bytes, 0, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
      clReleaseMemObject(b->pinned);
      b->pinned = NULL;
      return lu_fail(LU_ECL, "%s (mapping pinned staging memory)", lu_cl_errname(e));
    }
    b->cap = bytes;
  }
  return LU_OK;
}

lu_status lu_stager_put(lu_stager *s, int n, const lu_tensor *const *host, int *slot) {
  if (n < 1 || n > LU_STAGE_MAX_TENSORS) return lu_fail(LU_EARG, "staging: %d tensors (1..%d)", n, LU_STAGE_MAX_TENSORS);
  for (int i = 0; i < n; i++)
    if (!host[i] || !host[i]->host) return lu_fail(LU_EARG, "staging: tensor %d is not a host tensor", i + 1);
  int k = s->next;
  stage_slot *sl = &s->slot[k];
  if (sl->written) { /* the pinned memory is still the source of the transfer two batches ago until it ends */
    lu_note_host_wait("staging: slot reuse");
    cl_int e = clWaitForEvents(1, &sl->written);
    drop_event(&sl->written);
    if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (waiting for an earlier batch transfer)", lu_cl_errname(e));
  }
  int fresh = 0;
  for (int i = 0; i < n; i++) LU_TRY(fit(s, &sl->b[i], host[i], &fresh));
  sl->n = n;
  /* A new device buffer comes from the pool, which may hand out memory that commands already queued on the
   * compute queue still use (the pool relies on that queue's order). The transfer queue is not in that order:
   * its first write into new buffers waits for a marker behind everything queued so far. */
  cl_event wait[2];
  cl_uint nwait = 0;
  if (sl->released) wait[nwait++] = sl->released;
  cl_event marker = NULL;
  if (fresh) {
    cl_int e = clEnqueueMarkerWithWaitList(s->dev->queue, 0, NULL, &marker);
    if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (ordering a new staging buffer)", lu_cl_errname(e));
    clFlush(s->dev->queue);
    wait[nwait++] = marker;
  }
  cl_event last = NULL;
  for (int i = 0; i < n; i++) {
    stage_buf *b = &sl->b[i];
    memcpy(b->map, host[i]->host, host[i]->bytes);
    cl_event ev;
    cl_int e = clEnqueueWriteBuffer(s->xfer, (cl_mem)b->dev->buf, CL_FALSE, 0, host[i]->bytes, b->map, nwait,
                                    nwait ? wait : NULL, &ev);
    if (e != CL_SUCCESS) {
      drop_event(&last);
      drop_event(&marker);
      return lu_fail(LU_ECL, "%s (queueing a batch transfer)", lu_cl_errname(e));
    }
    drop_event(&last);
    last = ev; /* the transfer queue is in order: the last write's event covers all of them */
  }
  drop_event(&marker);
  drop_event(&sl->released);
  sl->written = last;
  clFlush(s->xfer);
  s->next = (k + 1) % LU_STAGE_SLOTS;
  *slot = k;
  return LU_OK;
}

lu_status lu_stager_acquire(lu_stager *s, int slot, int n, lu_tensor **out) {
  if (slot < 0 || slot >= LU_STAGE_SLOTS) return lu_fail(LU_EARG, "staging: slot %d", slot);
  stage_slot *sl = &s->slot[slot];
  if (!sl->written || n != sl->n) return lu_fail(LU_ESTATE, "staging: slot %d holds no staged batch of %d tensors", slot, n);
  cl_int e = clEnqueueBarrierWithWaitList(s->dev->queue, 1, &sl->written, NULL);
  if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (waiting for the batch transfer on the device)", lu_cl_errname(e));
  for (int i = 0; i < n; i++) out[i] = sl->b[i].dev;
  return LU_OK;
}

lu_status lu_stager_release(lu_stager *s, int slot) {
  if (slot < 0 || slot >= LU_STAGE_SLOTS) return lu_fail(LU_EARG, "staging: slot %d", slot);
  stage_slot *sl = &s->slot[slot];
  drop_event(&sl->released);
  cl_int e = clEnqueueMarkerWithWaitList(s->dev->queue, 0, NULL, &sl->released);
  if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (marking the end of a staged batch's step)", lu_cl_errname(e));
  clFlush(s->dev->queue);
  return LU_OK;
}
