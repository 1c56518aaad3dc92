/* PlainConvUNet / ResidualEncoderUNet from a plan: structure, parameters, init (see unet.h).
 * The forward and backward passes are in unet_fwd.c; they share the private layout in unet_priv.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/pool.h"
#include "nn/unet_priv.h"

/* ------------------------------------------------------------------------------------ parameters */

static lu_status add_param(lu_unet *n, int *idx, lu_init_kind init, double fan_in, int ndim, const int64_t *shape,
                           const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static lu_status add_param(lu_unet *n, int *idx, lu_init_kind init, double fan_in, int ndim, const int64_t *shape,
                           const char *fmt, ...) {
  if (n->np == n->cap) {
    int cap = n->cap ? 2 * n->cap : 64;
    lu_param *p = realloc(n->params, (size_t)cap * sizeof *p);
    if (!p) return lu_fail(LU_ENOMEM, "unet: parameter table");
    n->params = p;
    n->cap = cap;
  }
  lu_param *p = &n->params[n->np];
  memset(p, 0, sizeof *p);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->name, sizeof p->name, fmt, ap);
  va_end(ap);
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < ndim; i++) {
    p->shape[i] = shape[i];
    p->numel *= (size_t)shape[i];
  }
  p->init = init;
  p->fan_in = fan_in;
  n->nweights += p->numel;
  *idx = n->np++;
  return LU_OK;
}

/* Registers a convolution's weight (and bias) under prefix. */
static lu_status make_conv(lu_unet *n, conv_l *c, int transposed, int cin, int cout, const int *k, const int *stride,
                           int bias, const char *prefix) {
  const int nsp = n->cfg.nsp;
  memset(c, 0, sizeof *c);
  c->cin = cin;
  c->cout = cout;
  c->transposed = transposed;
  int ones[3] = {1, 1, 1};
  if (transposed) {
    LU_TRY(lu_convT_desc_init(&c->d, nsp, stride));
  } else {
    LU_TRY(lu_conv_desc_init(&c->d, nsp, k, stride ? stride : ones));
  }
  int64_t ws[LU_MAX_DIMS];
  if (transposed)
    lu_convT_weight_shape(&c->d, cin, cout, ws);
  else
    lu_conv_weight_shape(&c->d, cin, cout, ws);
  double kprod = 1;
  for (int i = 0; i < nsp; i++) kprod *= c->d.k[i];
  /* torch fan_in = weight.shape[1] * prod(kernel): Cin for conv, Cout for ConvTranspose. */
  double fan_in = (double)ws[1] * kprod;
  LU_TRY(add_param(n, &c->pw, LU_INIT_KAIMING, fan_in, 2 + nsp, ws, "%s.weight", prefix));
  c->pb = -1;
  if (bias) {
    int64_t bs = cout;
    LU_TRY(add_param(n, &c->pb, LU_INIT_ZERO, 0, 1, &bs, "%s.bias", prefix));
  }
  return LU_OK;
}

/* ConvDropoutNormReLU: `prefix`.conv, `prefix`.norm */
static lu_status make_cnr(lu_unet *n, cnr_l *b, int cin, int cout, const int *k, const int *stride, int bias, int act,
                          int zero_norm, const char *prefix) {
  char name[160];
  memset(b, 0, sizeof *b);
  snprintf(name, sizeof name, "%s.conv", prefix);
  LU_TRY(make_conv(n, &b->conv, 0, cin, cout, k, stride, bias, name));
  int64_t cs = cout;
  LU_TRY(add_param(n, &b->nw, zero_norm ? LU_INIT_ZERO : LU_INIT_ONE, 0, 1, &cs, "%s.norm.weight", prefix));
  LU_TRY(add_param(n, &b->nb, LU_INIT_ZERO, 0, 1, &cs, "%s.norm.bias", prefix));
  b->act = act;
  return LU_OK;
}

static int any_not_one(const int *s, int nsp) {
  for (int i = 0; i < nsp; i++)
    if (s[i] != 1) return 1;
  return 0;
}

lu_status lu_unet_cfg_check(const lu_unet_cfg *c) {
  if (c->nsp != 2 && c->nsp != 3) return lu_fail(LU_EARG, "unet: %d spatial dims (2 or 3)", c->nsp);
  if (c->n_stages < 1 || c->n_stages > LU_UNET_MAX_STAGES)
    return lu_fail(LU_EARG, "unet: n_stages %d (1..%d)", c->n_stages, LU_UNET_MAX_STAGES);
  if (c->in_channels < 1 || c->num_classes < 1)
    return lu_fail(LU_EARG, "unet: %d input channels, %d outputs", c->in_channels, c->num_classes);
  for (int s = 0; s < c->n_stages; s++) {
    if (c->features[s] < 1) return lu_fail(LU_EARG, "unet: features_per_stage[%d] = %d", s, c->features[s]);
    if (c->n_enc[s] < 1) return lu_fail(LU_EARG, "unet: stage %d has %d encoder blocks", s, c->n_enc[s]);
    for (int a = 0; a < c->nsp; a++) {
      if (c->kernel[s][a] < 1 || c->kernel[s][a] > 15)
        return lu_fail(LU_EARG, "unet: kernel_sizes[%d][%d] = %d", s, a, c->kernel[s][a]);
      if (c->stride[s][a] < 1 || c->stride[s][a] > 8)
        return lu_fail(LU_EARG, "unet: strides[%d][%d] = %d", s, a, c->stride[s][a]);
    }
    if (s < c->n_stages - 1 && c->n_dec[s] < 1)
      return lu_fail(LU_EARG, "unet: decoder stage %d has %d convs", s, c->n_dec[s]);
  }
  return LU_OK;
}

static lu_status build(lu_unet *n) {
  const lu_unet_cfg *c = &n->cfg;
  const int S = c->n_stages;
  char pre[128];
  int prev = c->in_channels;
  if (c->kind == LU_UNET_RESENC) {
    LU_TRY(make_cnr(n, &n->stem, prev, c->features[0], c->kernel[0], NULL, c->conv_bias, 1, 0, "encoder.stem.convs.0"));
    prev = c->features[0];
  }
  for (int s = 0; s < S; s++) {
    enc_stage *e = &n->enc[s];
    e->n = c->n_enc[s];
    if (c->kind == LU_UNET_PLAIN) {
      e->cnr = calloc((size_t)e->n, sizeof *e->cnr);
      if (!e->cnr) return lu_fail(LU_ENOMEM, "unet: encoder stage %d", s);
      for (int i = 0; i < e->n; i++) {
        snprintf(pre, sizeof pre, "encoder.stages.%d.0.convs.%d", s, i);
        LU_TRY(make_cnr(n, &e->cnr[i], i ? c->features[s] : prev, c->features[s], c->kernel[s],
                        i ? NULL : c->stride[s], c->conv_bias, 1, 0, pre));
      }
    } else {
      e->blk = calloc((size_t)e->n, sizeof *e->blk);
      if (!e->blk) return lu_fail(LU_ENOMEM, "unet: encoder stage %d", s);
      for (int b = 0; b < e->n; b++) {
        res_l *r = &e->blk[b];
        int cin = b ? c->features[s] : prev, cout = c->features[s];
        const int *st = b ? NULL : c->stride[s];
        snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.conv1", s, b);
        LU_TRY(make_cnr(n, &r->c1, cin, cout, c->kernel[s], st, c->conv_bias, 1, 0, pre));
        snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.conv2", s, b);
        LU_TRY(make_cnr(n, &r->c2, cout, cout, c->kernel[s], NULL, c->conv_bias, 0, 1, pre));
        r->has_pool = st && any_not_one(st, c->nsp);
        if (r->has_pool) {
          /* AvgPool(kernel = stride = s) as a 1 -> 1 convolution of the (N*C, 1, ...) view with weights
           * 1/prod(s): no pooling kernel needed, backward through conv_bwd_data. */
          LU_TRY(lu_conv_desc_init(&r->pool, c->nsp, st, st));
          for (int a = 0; a < 3; a++) r->pool.pad[a] = 0;
        }
        r->has_proj = cin != cout;
        if (r->has_proj) {
          int one[3] = {1, 1, 1};
          snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.skip.%d", s, b, r->has_pool ? 1 : 0);
          LU_TRY(make_cnr(n, &r->proj, cin, cout, one, NULL, 0, 0, 0, pre));
        }
      }
    }
    prev = c->features[s];
  }
  /* Decoder: j = 0 is the deepest; it undoes encoder stage S-1-j's stride and feeds skip S-2-j. */
  for (int j = 0; j < S - 1; j++) {
    dec_stage *d = &n->dec[j];
    int skip = c->features[S - 2 - j];
    d->n = c->n_dec[j];
    d->cnr = calloc((size_t)d->n, sizeof *d->cnr);
    if (!d->cnr) return lu_fail(LU_ENOMEM, "unet: decoder stage %d", j);
    for (int i = 0; i < d->n; i++) {
      snprintf(pre, sizeof pre, "decoder.stages.%d.convs.%d", j, i);
      LU_TRY(make_cnr(n, &d->cnr[i], i ? skip : 2 * skip, skip, c->kernel[S - 2 - j], NULL, c->conv_bias, 1, 0, pre));
    }
  }
  for (int j = 0; j < S - 1; j++) {
    snprintf(pre, sizeof pre, "decoder.transpconvs.%d", j);
    LU_TRY(make_conv(n, &n->dec[j].up, 1, c->features[S - 1 - j], c->features[S - 2 - j], NULL, c->stride[S - 1 - j],
                     c->conv_bias, pre));
  }
  for (int j = 0; j < S - 1; j++) {
    int one[3] = {1, 1, 1};
    snprintf(pre, sizeof pre, "decoder.seg_layers.%d", j);
    LU_TRY(make_conv(n, &n->dec[j].seg, 0, c->features[S - 2 - j], c->num_classes, one, NULL, 1, pre));
  }
  return LU_OK;
}

static void arch_string(lu_unet *n) {
  const lu_unet_cfg *c = &n->cfg;
  size_t pos = 0, cap = sizeof n->arch;
#define AP(...) pos += (size_t)snprintf(n->arch + pos, pos < cap ? cap - pos : 0, __VA_ARGS__)
  AP("%s %dd in=%d out=%d stages=%d bias=%d", c->kind == LU_UNET_PLAIN ? "PlainConvUNet" : "ResidualEncoderUNet", c->nsp,
     c->in_channels, c->num_classes, c->n_stages, c->conv_bias);
  for (int s = 0; s < c->n_stages; s++) {
    AP(" [f%d k", c->features[s]);
    for (int a = 0; a < c->nsp; a++) AP("%s%d", a ? "," : "", c->kernel[s][a]);
    AP(" s");
    for (int a = 0; a < c->nsp; a++) AP("%s%d", a ? "," : "", c->stride[s][a]);
    AP(" e%d d%d]", c->n_enc[s], s < c->n_stages - 1 ? c->n_dec[s] : 0);
  }
#undef AP
}

static size_t align_floats(lu_device *dev) {
  cl_uint bits = 1024;
  if (dev) clGetDeviceInfo(dev->id, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL);
  size_t f = bits / 8 / sizeof(float);
  return f ? f : 1;
}

static void release_views(lu_unet *n) {
  for (int i = 0; i < n->np; i++) {
    lu_param *p = &n->params[i];
    if (p->t.buf) clReleaseMemObject((cl_mem)p->t.buf);
    if (p->g.buf) clReleaseMemObject((cl_mem)p->g.buf);
    if (p->m.buf) clReleaseMemObject((cl_mem)p->m.buf);
    p->t.buf = p->g.buf = p->m.buf = NULL;
  }
}

static lu_status make_view(lu_unet *n, lu_tensor *flat, lu_param *p, lu_tensor *view) {
  cl_buffer_region r = {p->offset * sizeof(float), p->numel * sizeof(float)};
  cl_int err;
  cl_mem m = clCreateSubBuffer((cl_mem)flat->buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
  if (err != CL_SUCCESS)
    return lu_fail(LU_ECL, "%s (sub-buffer for parameter %s at float %zu)", lu_cl_errname(err), p->name, p->offset);
  memset(view, 0, sizeof *view);
  view->dtype = LU_F32;
  view->ndim = p->ndim;
  memcpy(view->shape, p->shape, sizeof p->shape);
  view->dev = n->dev;
  view->buf = m;
  view->bytes = p->numel * sizeof(float);
  return LU_OK;
}

/* Creates flat buffer `which` (zero-filled) and its parameter views. The gradient and momentum buffers
 * (1, 2) are made on first training use only: prediction never needs them, and on nnU-Net's real plans
 * they are 2 x the parameters' size (2 x 125 MB for 3d_fullres). */
static lu_status alloc_flat(lu_unet *n, int which) {
  int64_t fs = (int64_t)n->flat_floats;
  LU_TRY(lu_tensor_new_device(&n->flat[which], n->dev, LU_F32, 1, &fs));
  lu_status st = lu_fill(n->flat[which], 0.0f);
  for (int i = 0; i < n->np && st == LU_OK; i++) {
    lu_param *p = &n->params[i];
    st = make_view(n, n->flat[which], p, which == 0 ? &p->t : which == 1 ? &p->g : &p->m);
  }
  if (st != LU_OK) {
    for (int i = 0; i < n->np; i++) {
      lu_tensor *v = which == 0 ? &n->params[i].t : which == 1 ? &n->params[i].g : &n->params[i].m;
      if (v->buf) clReleaseMemObject((cl_mem)v->buf);
      v->buf = NULL;
    }
    lu_tensor_free(n->flat[which]);
    n->flat[which] = NULL;
    return lu_fail_context(st, "unet: %s buffer on %s", which == 0 ? "parameter" : which == 1 ? "gradient" : "momentum",
                           n->dev->name);
  }
  return LU_OK;
}

lu_status lu_unet_new(const lu_unet_cfg *c, lu_device *dev, lu_unet **out) {
  LU_TRY(lu_unet_cfg_check(c));
  lu_unet *n = calloc(1, sizeof *n);
  if (!n) return lu_fail(LU_ENOMEM, "unet: out of memory");
  n->cfg = *c;
  n->dev = dev;
  lu_status st = build(n);
  if (st != LU_OK) {
    lu_unet_free(n);
    return st;
  }
  arch_string(n);
  size_t al = align_floats(dev), off = 0;
  for (int i = 0; i < n->np; i++) {
    n->params[i].offset = off;
    off += (n->params[i].numel + al - 1) / al * al;
  }
  n->flat_floats = off ? off : al;
  if (dev && (st = alloc_flat(n, 0)) != LU_OK) {
    lu_unet_free(n);
    return st;
  }
  *out = n;
  return LU_OK;
}

/* Drops the kept packed weights: they are stale once the weights change. */
static void unfreeze_weights(lu_unet *n) {
  if (n->wcache)
    for (int i = 0; i < n->np; i++) lu_conv_wcache_clear(n->dev, &n->wcache[i]);
  free(n->wcache);
  n->wcache = NULL;
  n->frozen = 0;
}

lu_status lu_unet_freeze_weights(lu_unet *n, int on) {
  if (!on) {
    unfreeze_weights(n);
    return LU_OK;
  }
  if (!n->wcache) {
    n->wcache = calloc((size_t)(n->np ? n->np : 1), sizeof *n->wcache);
    if (!n->wcache) return lu_fail(LU_ENOMEM, "unet: packed-weight caches");
  }
  n->frozen = 1;
  return LU_OK;
}

int lu_unet_weights_frozen(const lu_unet *n) { return n->frozen; }

void lu_unet_free(lu_unet *n) {
  if (!n) return;
  unfreeze_weights(n);
  lu_unet_set_grad_hook(n, NULL, NULL, NULL); /* before the buffers: it may wait on reads of them */
  lu_unet_release_plan(n);
  release_views(n);
  for (int w = 0; w < 3; w++) lu_tensor_free(n->flat[w]);
  if (n->amp_evt) {
    clWaitForEvents(1, &n->amp_evt); /* the read targets n->amp_host */
    clReleaseEvent(n->amp_evt);
  }
  lu_tensor_free(n->amp);
  if (n->loss_evt) {
    clWaitForEvents(1, &n->loss_evt); /* the read targets n->loss_host */
    clReleaseEvent(n->loss_evt);
  }
  lu_tensor_free(n->loss_acc);
  lu_stager_free(n->stager);
  for (int s = 0; s < LU_UNET_MAX_STAGES; s++) {
    free(n->enc[s].cnr);
    free(n->enc[s].blk);
    free(n->dec[s].cnr);
  }
  free(n->params);
  free(n);
}

const lu_unet_cfg *lu_unet_config(const lu_unet *n) { return &n->cfg; }
int lu_unet_num_params(const lu_unet *n) { return n->np; }
const lu_param *lu_unet_param(const lu_unet *n, int i) { return (i >= 0 && i < n->np) ? &n->params[i] : NULL; }
size_t lu_unet_num_weights(const lu_unet *n) { return n->nweights; }
size_t lu_unet_flat_floats(const lu_unet *n) { return n->flat_floats; }
const char *lu_unet_arch_string(const lu_unet *n) { return n->arch; }
lu_tensor *lu_unet_flat(lu_unet *n, int which) {
  if (which == 0) unfreeze_weights(n); /* the caller may write the weights through it */
  return (which >= 0 && which < 3) ? n->flat[which] : NULL;
}

size_t lu_unet_flat_bytes(const lu_unet *n) {
  size_t b = 0;
  for (int w = 0; w < 3; w++)
    if (n->flat[w]) b += n->flat[w]->bytes;
  return b;
}
lu_device *lu_unet_device(lu_unet *n) { return n->dev; }

int lu_unet_find_param(const lu_unet *n, const char *name) {
  for (int i = 0; i < n->np; i++)
    if (strcmp(n->params[i].name, name) == 0) return i;
  return -1;
}

static lu_status need_dev(const lu_unet *n, const char *what) {
  return n->dev ? LU_OK : lu_fail(LU_ESTATE, "unet %s: the network was built without a device", what);
}

lu_status lu_unet_ensure_flat(lu_unet *n, int which) {
  LU_TRY(need_dev(n, "buffers"));
  if (which < 0 || which > 2) return lu_fail(LU_EARG, "unet: buffer %d (0 params, 1 grads, 2 momentum)", which);
  return n->flat[which] ? LU_OK : alloc_flat(n, which);
}

lu_status lu_unet_read_flat(lu_unet *n, int which, float *dst) {
  LU_TRY(need_dev(n, "read"));
  if (which < 0 || which > 2) return lu_fail(LU_EARG, "unet read: buffer %d (0 params, 1 grads, 2 momentum)", which);
  if (!n->flat[which]) { /* not made yet: it would hold zeros, so reading does not make it (a save stays cheap) */
    memset(dst, 0, n->flat_floats * sizeof(float));
    return LU_OK;
  }
  return lu_tensor_read(n->flat[which], dst);
}

lu_status lu_unet_write_flat(lu_unet *n, int which, const float *src) {
  LU_TRY(lu_unet_ensure_flat(n, which));
  if (which == 0) unfreeze_weights(n);
  return lu_tensor_write(n->flat[which], src);
}

lu_status lu_unet_read_param(lu_unet *n, int i, float *dst) {
  LU_TRY(need_dev(n, "read"));
  if (i < 0 || i >= n->np) return lu_fail(LU_EARG, "unet: parameter %d of %d", i, n->np);
  return lu_tensor_read(&n->params[i].t, dst);
}

lu_status lu_unet_write_param(lu_unet *n, int i, const float *src) {
  LU_TRY(need_dev(n, "write"));
  if (i < 0 || i >= n->np) return lu_fail(LU_EARG, "unet: parameter %d of %d", i, n->np);
  unfreeze_weights(n);
  return lu_tensor_write(&n->params[i].t, src);
}

lu_status lu_unet_init(lu_unet *n, uint64_t seed) {
  LU_TRY(need_dev(n, "init"));
  unfreeze_weights(n);
  float *host = calloc(n->flat_floats, sizeof *host);
  if (!host) return lu_fail(LU_ENOMEM, "unet init: %zu floats", n->flat_floats);
  lu_rng r;
  lu_rng_init(&r, seed, 0);
  const double a = n->cfg.init_neg_slope;
  for (int i = 0; i < n->np; i++) {
    const lu_param *p = &n->params[i];
    float *d = host + p->offset;
    if (p->init == LU_INIT_KAIMING) {
      double sd = sqrt(2.0 / (1.0 + a * a)) / sqrt(p->fan_in);
      for (size_t k = 0; k < p->numel; k++) d[k] = (float)(sd * lu_rng_normal(&r));
    } else {
      float v = p->init == LU_INIT_ONE ? 1.0f : 0.0f;
      for (size_t k = 0; k < p->numel; k++) d[k] = v;
    }
  }
  lu_status st = lu_tensor_write(n->flat[0], host);
  free(host);
  LU_TRY(st);
  for (int w = 1; w < 3; w++) /* a buffer not made yet is zero by definition */
    if (n->flat[w]) LU_TRY(lu_fill(n->flat[w], 0.0f));
  return LU_OK;
}

void lu_unet_set_grad_hook(lu_unet *n, lu_unet_grad_hook hook, void *ud, void (*free_ud)(void *)) {
  if (n->grad_free && n->grad_ud) n->grad_free(n->grad_ud);
  n->grad_hook = hook;
  n->grad_ud = hook ? ud : NULL;
  n->grad_free = hook ? free_ud : NULL;
}

void *lu_unet_grad_hook_data(const lu_unet *n, lu_unet_grad_hook hook) {
  return n->grad_hook && n->grad_hook == hook ? n->grad_ud : NULL;
}

lu_status lu_unet_zero_grad(lu_unet *n) {
  LU_TRY(lu_unet_ensure_flat(n, 1));
  return lu_fill(n->flat[1], 0.0f);
}
