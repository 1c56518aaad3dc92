/* Bucketed, overlapped gradient averaging (see gradsync.h). */
#include "dist/gradsync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/device.h"
#include "dist/dist.h"

struct lu_gradsync {
  lu_unet *n;
  size_t nf;        /* floats in the flat buffer */
  int nb;           /* buckets; bucket k covers [lo[k], hi[k]), k = 0 at the buffer's end */
  size_t *lo, *hi;
  int *p0, *p1;     /* parameters overlapping bucket k: p0[k] .. p1[k] - 1 (index order is offset order) */
  unsigned char *done; /* per parameter: its gradient is final in this backward */
  float *host;      /* staging, nf floats */
  cl_event *evt;    /* bucket k's read, while pending */
  int next_read;    /* buckets 0 .. next_read - 1 have their read enqueued */
  int early;        /* buckets enqueued before the call that enqueued the last one (read while the backward ran) */
  int armed;        /* a backward began and its gradients are not averaged yet */
  int finished;     /* the last backward's gradients are averaged (finish is idempotent) */
  double exposed;
  double window;    /* seconds from the first bucket's allreduce start to the last bucket's read completing */
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void release_events(lu_gradsync *g) {
  for (int k = 0; k < g->nb; k++)
    if (g->evt[k]) {
      clWaitForEvents(1, &g->evt[k]); /* the read targets g->host */
      clReleaseEvent(g->evt[k]);
      g->evt[k] = NULL;
    }
}

static void gradsync_free(void *ud) {
  lu_gradsync *g = ud;
  if (!g) return;
  release_events(g);
  free(g->lo);
  free(g->hi);
  free(g->p0);
  free(g->p1);
  free(g->done);
  free(g->host);
  free(g->evt);
  free(g);
}

static int bucket_ready(const lu_gradsync *g, int k) {
  for (int p = g->p0[k]; p < g->p1[k]; p++)
    if (!g->done[p]) return 0;
  return 1;
}

/* Enqueues the reads of the buckets, in order, whose parameters are all final. */
static lu_status enqueue_ready(lu_gradsync *g) {
  lu_device *dev = lu_unet_device(g->n);
  cl_mem buf = (cl_mem)lu_unet_flat(g->n, 1)->buf;
  int any = 0, before = g->next_read;
  while (g->next_read < g->nb && bucket_ready(g, g->next_read)) {
    int k = g->next_read;
    size_t lo = g->lo[k], cnt = g->hi[k] - lo;
    LU_CL_CHECK(clEnqueueReadBuffer(dev->queue, buf, CL_FALSE, lo * sizeof(float), cnt * sizeof(float), g->host + lo,
                                    0, NULL, &g->evt[k]),
                "reading gradient bucket %d (%zu floats)", k, cnt);
    g->next_read++;
    any = 1;
  }
  if (any && g->next_read == g->nb) g->early = before;
  if (any) clFlush(dev->queue); /* submit now: the read runs as soon as the queue reaches it */
  return LU_OK;
}

static lu_status hook(void *ud, int param) {
  lu_gradsync *g = ud;
  if (param == LU_UNET_GRAD_BEGIN) {
    release_events(g); /* a backward that was never finished: its reads are dropped */
    memset(g->done, 0, (size_t)lu_unet_num_params(g->n));
    g->next_read = g->early = 0;
    g->armed = 1;
    g->finished = 0;
    return LU_OK;
  }
  if (!g->armed) return LU_OK;
  if (param == LU_UNET_GRAD_END)
    memset(g->done, 1, (size_t)lu_unet_num_params(g->n));
  else if (param >= 0 && param < lu_unet_num_params(g->n))
    g->done[param] = 1;
  return enqueue_ready(g);
}

lu_status lu_gradsync_attach(lu_unet *n, size_t bucket_floats) {
  if (!lu_unet_device(n)) return lu_fail(LU_ESTATE, "gradient buckets: the network has no device");
  if (!bucket_floats) {
    lu_unet_set_grad_hook(n, NULL, NULL, NULL);
    return LU_OK;
  }
  lu_gradsync *g = calloc(1, sizeof *g);
  if (!g) return lu_fail(LU_ENOMEM, "gradient buckets");
  g->n = n;
  g->nf = lu_unet_flat_floats(n);
  g->nb = (int)((g->nf + bucket_floats - 1) / bucket_floats);
  int np = lu_unet_num_params(n);
  g->lo = malloc((size_t)g->nb * sizeof *g->lo);
  g->hi = malloc((size_t)g->nb * sizeof *g->hi);
  g->p0 = malloc((size_t)g->nb * sizeof *g->p0);
  g->p1 = malloc((size_t)g->nb * sizeof *g->p1);
  g->evt = calloc((size_t)g->nb, sizeof *g->evt);
  g->done = calloc((size_t)(np > 0 ? np : 1), 1);
  g->host = malloc(g->nf * sizeof *g->host);
  if (!g->lo || !g->hi || !g->p0 || !g->p1 || !g->evt || !g->done || !g->host) {
    gradsync_free(g);
    return lu_fail(LU_ENOMEM, "gradient buckets: %zu staging floats", g->nf);
  }
  for (int k = 0; k < g->nb; k++) {
    size_t hi = g->nf - (size_t)k * bucket_floats;
    g->hi[k] = hi;
    g->lo[k] = hi > bucket_floats ? hi - bucket_floats : 0;
    /* the parameters overlapping [lo, hi): offsets ascend with the index */
    int a = np, b = 0;
    for (int p = 0; p < np; p++) {
      const lu_param *q = lu_unet_param(n, p);
      if (q->offset < g->hi[k] && q->offset + q->numel > g->lo[k]) {
        if (p < a) a = p;
        b = p + 1;
      }
    }
    g->p0[k] = a < b ? a : 0;
    g->p1[k] = a < b ? b : 0;
  }
  lu_unet_set_grad_hook(n, hook, g, gradsync_free);
  return LU_OK;
}

lu_gradsync *lu_gradsync_of(lu_unet *n) { return lu_unet_grad_hook_data(n, hook); }
int lu_gradsync_buckets(const lu_gradsync *g) { return g->nb; }
int lu_gradsync_early(const lu_gradsync *g) { return g->early; }
double lu_gradsync_window(const lu_gradsync *g) { return g->window; }

/* Waits for bucket k's read while letting MPI advance the reductions already started (Open MPI progresses a
 * non-blocking collective only inside MPI calls); sleeps between polls so the device's threads keep the cores. */
static lu_status wait_read(lu_gradsync *g, int k) {
  for (;;) {
    cl_int status = CL_QUEUED;
    cl_int e = clGetEventInfo(g->evt[k], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (gradient bucket %d's read)", lu_cl_errname(e), k);
    if (status < 0) return lu_fail(LU_ECL, "%s (gradient bucket %d's read failed)", lu_cl_errname(status), k);
    if (status == CL_COMPLETE) break;
    LU_TRY(lu_dist_progress(NULL));
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  clReleaseEvent(g->evt[k]);
  g->evt[k] = NULL;
  return LU_OK;
}

lu_status lu_gradsync_finish(lu_gradsync *g, double *exposed_secs) {
  if (g->finished) {
    if (exposed_secs) *exposed_secs = g->exposed;
    return LU_OK;
  }
  if (!g->armed) return lu_fail(LU_ESTATE, "gradient buckets: no backward to average the gradients of");
  if (g->next_read < g->nb) /* the hook's END enqueues every read; a failed backward leaves some out */
    return lu_fail(LU_ESTATE, "gradient buckets: the backward did not finish (%d of %d buckets read)", g->next_read,
                   g->nb);
  lu_status st = LU_OK;
  double first = 0;
  for (int k = 0; k < g->nb && st == LU_OK; k++) {
    st = wait_read(g, k);
    if (k == 0) first = now();
    if (st == LU_OK) st = lu_dist_iallreduce_sum_f32(g->host + g->lo[k], g->hi[k] - g->lo[k]);
  }
  double t0 = now();
  g->window = t0 - first;
  lu_status wst = lu_dist_wait(); /* also after a failure: no request may outlive its buffer's use */
  if (st != LU_OK) return st;
  LU_TRY(wst);
  const int size = lu_dist_size();
  if (size > 1) {
    const float inv = 1.0f / (float)size; /* as lu_dist_allreduce_mean_f32: the same bits */
    for (size_t i = 0; i < g->nf; i++) g->host[i] *= inv;
  }
  LU_TRY(lu_unet_write_flat(g->n, 1, g->host));
  g->armed = 0;
  g->finished = 1;
  g->exposed = now() - t0;
  if (exposed_secs) *exposed_secs = g->exposed;
  return LU_OK;
}
