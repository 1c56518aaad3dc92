/* One case through nnU-Net's preprocessing (see preprocess.h). */
#include "data/preprocess.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/crop.h"
#include "data/store.h"

/* out spatial axis i = in spatial axis t[i] (numpy transpose([0, 1+t0, 1+t1, 1+t2])); any dtype. */
static lu_status transpose_spatial(const lu_tensor *in, const int t[3], lu_tensor **out) {
  int64_t shp[4] = {in->shape[0], in->shape[1 + t[0]], in->shape[1 + t[1]], in->shape[1 + t[2]]};
  lu_tensor *o = NULL;
  LU_TRY(lu_tensor_new_host(&o, in->dtype, 4, shp));
  size_t es = lu_dtype_size(in->dtype);
  int64_t ist[3] = {in->shape[2] * in->shape[3], in->shape[3], 1};
  int64_t n = in->shape[1] * in->shape[2] * in->shape[3];
  int64_t s0 = ist[t[0]], s1 = ist[t[1]], s2 = ist[t[2]];
  const unsigned char *src = in->host;
  unsigned char *dst = o->host;
  for (int64_t c = 0; c < shp[0]; c++)
    for (int64_t a = 0; a < shp[1]; a++)
      for (int64_t b = 0; b < shp[2]; b++) {
        const unsigned char *sp = src + (size_t)(c * n + a * s0 + b * s1) * es;
        unsigned char *dp = dst + (size_t)(c * n + (a * shp[2] + b) * shp[3]) * es;
        if (s2 == 1) memcpy(dp, sp, (size_t)shp[3] * es);
        else
          for (int64_t x = 0; x < shp[3]; x++) memcpy(dp + (size_t)x * es, sp + (size_t)(x * s2) * es, es);
      }
  *out = o;
  return LU_OK;
}

static lu_status concat_f32(const lu_tensor *const *images, int n, lu_tensor **out) {
  if (n < 1) return lu_fail(LU_EARG, "preprocess: no image");
  int64_t C = 0;
  for (int i = 0; i < n; i++) {
    const lu_tensor *t = images[i];
    if (!t || !t->host || t->ndim != 4) return lu_fail(LU_EARG, "preprocess: image %d is not a host (C, Z, Y, X) tensor", i + 1);
    for (int a = 1; a < 4; a++)
      if (t->shape[a] != images[0]->shape[a]) {
        char b1[64], b2[64];
        return lu_fail(LU_EARG, "preprocess: image %d has shape %s, image 1 has %s", i + 1,
                       lu_shape_str(4, t->shape, b1, sizeof b1), lu_shape_str(4, images[0]->shape, b2, sizeof b2));
      }
    C += t->shape[0];
  }
  int64_t shp[4] = {C, images[0]->shape[1], images[0]->shape[2], images[0]->shape[3]};
  lu_tensor *o = NULL;
  LU_TRY(lu_tensor_new_host(&o, LU_F32, 4, shp));
  float *d = o->host;
  for (int i = 0; i < n; i++) {
    const lu_tensor *t = images[i];
    int64_t m = lu_tensor_numel(t);
    switch (t->dtype) {
    case LU_F32: memcpy(d, t->host, sizeof(float) * (size_t)m); break;
    case LU_U8: for (int64_t k = 0; k < m; k++) d[k] = ((const uint8_t *)t->host)[k]; break;
    case LU_I16: for (int64_t k = 0; k < m; k++) d[k] = ((const int16_t *)t->host)[k]; break;
    case LU_U16: for (int64_t k = 0; k < m; k++) d[k] = ((const uint16_t *)t->host)[k]; break;
    case LU_F64: for (int64_t k = 0; k < m; k++) d[k] = (float)((const double *)t->host)[k]; break;
    default: for (int64_t k = 0; k < m; k++) d[k] = (float)lu_host_get(t, k); break;
    }
    d += m;
  }
  *out = o;
  return LU_OK;
}

void lu_pp_result_free(lu_pp_result *r) {
  if (!r) return;
  lu_tensor_free(r->data);
  lu_tensor_free(r->seg);
  if (r->locs)
    for (int k = 0; k < r->nclasses; k++) free(r->locs[k].coords);
  free(r->locs);
  memset(r, 0, sizeof *r);
}

lu_status lu_preprocess_case(const lu_tensor *const *images, int nimages, const lu_tensor *seg,
                             const double spacing[3], const lu_pp_config *cfg, int threads, lu_pp_result *res) {
  lu_tensor *data = NULL;
  memset(res, 0, sizeof *res);
  LU_TRY(concat_f32(images, nimages, &data));
  return lu_preprocess_owned(data, seg, spacing, cfg, threads, res);
}

lu_status lu_preprocess_owned(lu_tensor *data, const lu_tensor *seg, const double spacing[3],
                              const lu_pp_config *cfg, int threads, lu_pp_result *res) {
  memset(res, 0, sizeof *res);
  lu_tensor *tmp = NULL, *sg = NULL, *cd = NULL, *cs = NULL;
  lu_status st = LU_OK;
  if (data->shape[0] != cfg->nch) {
    long long c = (long long)data->shape[0];
    lu_tensor_free(data);
    return lu_fail(LU_EARG, "preprocess: the case has %lld channels, the plans normalise %d", c, cfg->nch);
  }
  if (seg && (seg->ndim != 4 || seg->shape[1] != data->shape[1] || seg->shape[2] != data->shape[2] ||
              seg->shape[3] != data->shape[3])) {
    char b1[64], b2[64];
    lu_shape_str(seg->ndim, seg->shape, b1, sizeof b1);
    lu_shape_str(4, data->shape, b2, sizeof b2);
    lu_tensor_free(data);
    return lu_fail(LU_EARG, "preprocess: segmentation shape %s does not match the image's %s", b1, b2);
  }
  const int *t = cfg->transpose;
  int ident = t[0] == 0 && t[1] == 1 && t[2] == 2;
  if (!ident) {
    st = transpose_spatial(data, t, &tmp);
    lu_tensor_free(data);
    data = tmp;
    tmp = NULL;
    if (st == LU_OK && seg) st = transpose_spatial(seg, t, &sg);
  }
  if (st != LU_OK) goto fail;
  for (int a = 0; a < 3; a++) {
    res->spacing_transposed[a] = spacing[t[a]];
    res->shape_before_cropping[a] = data->shape[1 + a];
  }
  st = lu_crop_to_nonzero(data, sg ? sg : seg, &cd, &cs, res->bbox);
  lu_tensor_free(data);
  data = NULL;
  lu_tensor_free(sg);
  sg = NULL;
  if (st != LU_OK) goto fail;
  for (int a = 0; a < 3; a++) res->shape_after_cropping[a] = cd->shape[1 + a];
  if (cfg->ntarget == 2) {
    res->target_spacing[0] = res->spacing_transposed[0];
    res->target_spacing[1] = cfg->target_spacing[0];
    res->target_spacing[2] = cfg->target_spacing[1];
  } else {
    for (int a = 0; a < 3; a++) res->target_spacing[a] = cfg->target_spacing[a];
  }
  lu_compute_new_shape(res->shape_after_cropping, res->spacing_transposed, res->target_spacing, res->new_shape);
  int64_t n = res->shape_after_cropping[0] * res->shape_after_cropping[1] * res->shape_after_cropping[2];
  for (int c = 0; c < cfg->nch && st == LU_OK; c++)
    st = lu_normalize((float *)cd->host + c * n, n, cfg->scheme[c], cfg->use_mask[c], cs->host, &cfg->props[c]);
  if (st != LU_OK) goto fail;
  st = lu_resample(cd, res->new_shape, res->spacing_transposed, res->target_spacing, &cfg->data_opts, threads,
                   &res->data);
  lu_tensor_free(cd);
  cd = NULL;
  if (st != LU_OK) goto fail;
  lu_tensor *rs = NULL;
  st = lu_resample(cs, res->new_shape, res->spacing_transposed, res->target_spacing, &cfg->seg_opts, threads, &rs);
  lu_tensor_free(cs);
  cs = NULL;
  if (st != LU_OK) goto fail;
  int64_t m = lu_tensor_numel(rs);
  const int16_t *sv = rs->host;
  if (seg && cfg->nclasses > 0) {
    res->nclasses = cfg->nclasses;
    res->locs = calloc((size_t)cfg->nclasses, sizeof(lu_class_locs));
    if (!res->locs) st = lu_fail(LU_ENOMEM, "preprocess: no memory");
    else
      st = lu_class_locations(sv, res->new_shape, cfg->class_labels, cfg->class_off, cfg->class_len, cfg->nclasses,
                              cfg->seed, res->locs);
    if (st != LU_OK) {
      lu_tensor_free(rs);
      goto fail;
    }
  }
  int16_t mx = -32768;
  for (int64_t i = 0; i < m; i++) mx = sv[i] > mx ? sv[i] : mx;
  if (mx <= 127) {
    st = lu_tensor_new_host(&res->seg, LU_I8, 4, rs->shape);
    if (st == LU_OK)
      for (int64_t i = 0; i < m; i++) ((int8_t *)res->seg->host)[i] = (int8_t)sv[i];
    lu_tensor_free(rs);
  } else {
    res->seg = rs;
  }
  if (st != LU_OK) goto fail;
  return LU_OK;
fail:
  lu_tensor_free(data);
  lu_tensor_free(sg);
  lu_tensor_free(cd);
  lu_tensor_free(cs);
  lu_pp_result_free(res);
  return st;
}

/* ---------------------------------------------------------------- case pool */

typedef struct pp_job {
  int64_t tag;
  lu_tensor *data, *seg;
  double spacing[3];
  char *store_path;
  lu_status st;
  char err[512];
  lu_pp_result res;
  struct pp_job *next;
} pp_job;

struct lu_pp_pool {
  lu_pp_config cfg;
  int32_t *class_buf;
  int workers, threads_per_case, level;
  int64_t chunk[3];
  pthread_t tid[64];
  int nthreads;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done, cv_space;
  pp_job *queue, *queue_tail, *done, *done_tail;
  int in_flight; /* queued + running */
  int stopping;
};

static void push_job(pp_job **head, pp_job **tail, pp_job *j) {
  j->next = NULL;
  if (*tail) (*tail)->next = j;
  else *head = j;
  *tail = j;
}

static pp_job *pop_job(pp_job **head, pp_job **tail) {
  pp_job *j = *head;
  if (j) {
    *head = j->next;
    if (!*head) *tail = NULL;
  }
  return j;
}

/* A long-lived worker (it waits for submitted cases until the pool is freed), so it has its own pthread
 * rather than lu_parallel_for, which splits one known piece of work and joins before returning. */
static void *pool_main(void *arg) {
  lu_pp_pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (!p->queue && !p->stopping) pthread_cond_wait(&p->cv_work, &p->mu);
    pp_job *j = pop_job(&p->queue, &p->queue_tail);
    pthread_mutex_unlock(&p->mu);
    if (!j) return NULL;
    lu_tensor *data = j->data;
    j->data = NULL;
    j->st = lu_preprocess_owned(data, j->seg, j->spacing, &p->cfg, p->threads_per_case, &j->res);
    lu_tensor_free(j->seg);
    j->seg = NULL;
    if (j->st == LU_OK)
      j->st = lu_store_write(j->store_path, j->res.data, j->res.seg, p->chunk, p->level, p->threads_per_case);
    if (j->st != LU_OK) snprintf(j->err, sizeof j->err, "%s", lu_errmsg());
    /* the arrays are on disk now: keep only the properties */
    lu_tensor_free(j->res.data);
    lu_tensor_free(j->res.seg);
    j->res.data = j->res.seg = NULL;
    pthread_mutex_lock(&p->mu);
    push_job(&p->done, &p->done_tail, j);
    pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);
  }
}

lu_status lu_pp_pool_new(lu_pp_pool **out, const lu_pp_config *cfg, int workers, int threads_per_case,
                         const int64_t chunk[3], int level) {
  if (workers < 1) workers = 1;
  if (workers > 64) workers = 64;
  lu_pp_pool *p = calloc(1, sizeof *p);
  if (!p) return lu_fail(LU_ENOMEM, "preprocess pool: no memory");
  p->cfg = *cfg;
  int total = 0;
  for (int k = 0; k < cfg->nclasses; k++) total += cfg->class_len[k];
  p->class_buf = malloc(sizeof(int32_t) * (size_t)(2 * cfg->nclasses + total + 1));
  if (!p->class_buf) {
    free(p);
    return lu_fail(LU_ENOMEM, "preprocess pool: no memory");
  }
  memcpy(p->class_buf, cfg->class_off, sizeof(int32_t) * (size_t)cfg->nclasses);
  memcpy(p->class_buf + cfg->nclasses, cfg->class_len, sizeof(int32_t) * (size_t)cfg->nclasses);
  memcpy(p->class_buf + 2 * cfg->nclasses, cfg->class_labels, sizeof(int32_t) * (size_t)total);
  p->cfg.class_off = p->class_buf;
  p->cfg.class_len = p->class_buf + cfg->nclasses;
  p->cfg.class_labels = p->class_buf + 2 * cfg->nclasses;
  p->workers = workers;
  p->threads_per_case = threads_per_case < 1 ? 1 : threads_per_case;
  p->level = level;
  for (int a = 0; a < 3; a++) p->chunk[a] = chunk[a];
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv_work, NULL);
  pthread_cond_init(&p->cv_done, NULL);
  pthread_cond_init(&p->cv_space, NULL);
  for (int t = 0; t < workers; t++) {
    if (pthread_create(&p->tid[t], NULL, pool_main, p) != 0) break;
    p->nthreads++;
  }
  if (p->nthreads == 0) {
    lu_pp_pool_free(p);
    return lu_fail(LU_ESTATE, "preprocess pool: could not start a worker thread");
  }
  *out = p;
  return LU_OK;
}

lu_status lu_pp_pool_submit(lu_pp_pool *p, int64_t tag, const lu_tensor *const *images, int nimages,
                            const lu_tensor *seg, const double spacing[3], const char *store_path) {
  pthread_mutex_lock(&p->mu);
  p->in_flight++;
  pthread_mutex_unlock(&p->mu);
  pp_job *j = calloc(1, sizeof *j);
  lu_status st = j ? LU_OK : lu_fail(LU_ENOMEM, "preprocess pool: no memory");
  if (st == LU_OK) st = concat_f32(images, nimages, &j->data);
  if (st == LU_OK && seg) st = lu_tensor_convert_host(seg, seg->dtype, &j->seg);
  if (st == LU_OK) {
    j->store_path = strdup(store_path);
    if (!j->store_path) st = lu_fail(LU_ENOMEM, "preprocess pool: no memory");
  }
  if (st != LU_OK) {
    if (j) {
      lu_tensor_free(j->data);
      lu_tensor_free(j->seg);
      free(j->store_path);
      free(j);
    }
    pthread_mutex_lock(&p->mu);
    p->in_flight--;
    pthread_cond_broadcast(&p->cv_space);
    pthread_mutex_unlock(&p->mu);
    return st;
  }
  j->tag = tag;
  for (int a = 0; a < 3; a++) j->spacing[a] = spacing[a];
  pthread_mutex_lock(&p->mu);
  push_job(&p->queue, &p->queue_tail, j);
  pthread_cond_signal(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  return LU_OK;
}

int lu_pp_pool_pending(lu_pp_pool *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->in_flight;
  pthread_mutex_unlock(&p->mu);
  return n;
}

int lu_pp_pool_collect(lu_pp_pool *p, int wait, int64_t *tag, lu_status *st, char *err, size_t nerr,
                       lu_pp_result *res) {
  pthread_mutex_lock(&p->mu);
  while (wait && !p->done && p->in_flight > 0) pthread_cond_wait(&p->cv_done, &p->mu);
  pp_job *j = pop_job(&p->done, &p->done_tail);
  if (j) {
    p->in_flight--;
    pthread_cond_broadcast(&p->cv_space);
  }
  pthread_mutex_unlock(&p->mu);
  if (!j) return 0;
  *tag = j->tag;
  *st = j->st;
  snprintf(err, nerr, "%s", j->err);
  *res = j->res;
  free(j->store_path);
  free(j);
  return 1;
}

void lu_pp_pool_free(lu_pp_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  for (int t = 0; t < p->nthreads; t++) pthread_join(p->tid[t], NULL);
  pp_job *j;
  while ((j = pop_job(&p->queue, &p->queue_tail))) {
    lu_tensor_free(j->data);
    lu_tensor_free(j->seg);
    free(j->store_path);
    free(j);
  }
  while ((j = pop_job(&p->done, &p->done_tail))) {
    lu_pp_result_free(&j->res);
    free(j->store_path);
    free(j);
  }
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv_work);
  pthread_cond_destroy(&p->cv_done);
  pthread_cond_destroy(&p->cv_space);
  free(p->class_buf);
  free(p);
}
