/* U-Net forward and backward passes over the modules built in unet.c. Memory is planned once per
 * (input shape, train flag): every buffer is made on the first forward with that shape and reused
 * afterwards, so a steady-state training step allocates nothing.
 * Inference plans keep no conv outputs before normalisation (norm runs in place) and no gradients, and an
 * activation's buffer is reused as soon as its last reader has run (skips stay until their decoder stage
 * concatenates).
 * Training plans record a dry run of the forward and backward (every op notes the planned tensors it
 * touches) and place each activation and gradient by that lifetime in one arena: an activation's memory
 * serves later gradients once its last backward reader has run, as PyTorch frees saved tensors during its
 * backward. Optionally (tunable train.recompute) the norm outputs the backward reads again are recomputed
 * there from the kept conv outputs instead of kept: the forward's own kernel on the same input, so the
 * same bits. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/pool.h"
#include "cl/profile.h"
#include "cl/tunables.h"
#include "core/env.h"
#include "nn/unet_priv.h"

/* ---------------------------------------------------------------------------------- allocation */

static lu_status own_as(lu_unet *n, lu_tensor **t, lu_dtype dt, int ndim, const int64_t *shape) {
  if (n->nowned >= LU_UNET_MAX_OWNED) return lu_fail(LU_EARG, "unet: too many activation buffers");
  LU_TRY(lu_tensor_new_device(t, n->dev, dt, ndim, shape));
  n->owned[n->nowned++] = *t;
  n->act_bytes += (*t)->bytes;
  return LU_OK;
}

/* float32 buffers: norm statistics, pooling weights, the slots' storage */
static lu_status own(lu_unet *n, lu_tensor **t, int ndim, const int64_t *shape) {
  return own_as(n, t, LU_F32, ndim, shape);
}

/* A node with no buffers yet (plans set what they use; a node keeps nothing from an earlier plan). */
static void node_clear(node *x) {
  memset(x, 0, sizeof *x);
  x->slot = -1;
}

/* A tensor shell of ndim/shape whose buffer a plan sets later. */
static lu_tensor *shell(lu_unet *n, int ndim, const int64_t *shape) {
  lu_tensor *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->dtype = n->adt;
  v->ndim = ndim;
  v->bytes = lu_dtype_size(n->adt);
  for (int i = 0; i < ndim; i++) {
    v->shape[i] = shape[i];
    v->bytes *= (size_t)shape[i];
  }
  v->dev = n->dev;
  return v;
}

/* A tensor shell over slot `slot` (its buffer is set when the plan ends). */
static lu_status view_new(lu_unet *n, lu_tensor **t, int ndim, const int64_t *shape, int slot) {
  if (n->nviews >= LU_UNET_MAX_OWNED) return lu_fail(LU_EARG, "unet: too many activation views");
  lu_tensor *v = shell(n, ndim, shape);
  if (!v) return lu_fail(LU_ENOMEM, "unet: activation view");
  n->views[n->nviews] = v;
  n->view_slot[n->nviews++] = slot;
  if (v->bytes > n->slot_bytes[slot]) n->slot_bytes[slot] = v->bytes;
  *t = v;
  return LU_OK;
}

/* A view of ndim/shape in a free slot: the smallest free one that holds it, else the largest free one
 * (grown), else a new one. Reuse is safe because the plan visits layers in the order the in-order queue
 * runs them: a slot is freed only after its last reader was planned. */
static lu_status slot_view(lu_unet *n, lu_tensor **t, int *slot, int ndim, const int64_t *shape) {
  size_t bytes = lu_dtype_size(n->adt);
  for (int i = 0; i < ndim; i++) bytes *= (size_t)shape[i];
  int fit = -1, big = -1;
  for (int s = 0; s < n->nslots; s++) {
    if (n->slot_busy[s]) continue;
    if (n->slot_bytes[s] >= bytes && (fit < 0 || n->slot_bytes[s] < n->slot_bytes[fit])) fit = s;
    if (big < 0 || n->slot_bytes[s] > n->slot_bytes[big]) big = s;
  }
  int s = fit >= 0 ? fit : big;
  if (s < 0) {
    if (n->nslots >= LU_UNET_MAX_SLOTS) return lu_fail(LU_EARG, "unet: too many shared activation buffers");
    s = n->nslots++;
    n->slot_bytes[s] = 0;
  }
  n->slot_busy[s] = 1;
  *slot = s;
  return view_new(n, t, ndim, shape, s);
}

/* An inference activation in a slot (no gradient). */
static lu_status slot_node(lu_unet *n, node *x, int ndim, const int64_t *shape) {
  node_clear(x);
  return slot_view(n, &x->v, &x->slot, ndim, shape);
}

/* The last reader of x is planned: its slot may hold later activations (no-op for other buffers). */
static void slot_drop(lu_unet *n, node *x) {
  if (x->slot >= 0) n->slot_busy[x->slot] = 0;
}

/* Makes the slots' buffers and points every view at its slot's. */
static lu_status slots_make(lu_unet *n) {
  lu_tensor *buf[LU_UNET_MAX_SLOTS];
  for (int s = 0; s < n->nslots; s++) {
    int64_t nf = (int64_t)((n->slot_bytes[s] + sizeof(float) - 1) / sizeof(float));
    LU_TRY(own(n, &buf[s], 1, &nf));
  }
  for (int i = 0; i < n->nviews; i++) n->views[i]->buf = buf[n->view_slot[i]]->buf;
  return LU_OK;
}

/* ------------------------------------------------------------------ training buffers (shells) */

/* A training buffer: tagged with its index + 1 while the plan records (op_tensors), an arena sub-buffer once
 * placed (NULL when no op used it). */
static lu_status tview(lu_unet *n, lu_tensor **t, int ndim, const int64_t *shape) {
  if (n->ntv >= LU_UNET_MAX_OWNED) return lu_fail(LU_EARG, "unet: too many training buffers");
  lu_tensor *v = shell(n, ndim, shape);
  if (!v) return lu_fail(LU_ENOMEM, "unet: training buffer");
  v->buf = (void *)(uintptr_t)(n->ntv + 1);
  n->tv[n->ntv] = v;
  n->tv_first[n->ntv] = n->tv_last[n->ntv] = -1;
  n->ntv++;
  *t = v;
  return LU_OK;
}

/* A training node: value, gradient and second-contribution buffers; with src, a backward copy of the value
 * that need_out recomputes from src's conv output. */
static lu_status tnode(lu_unet *n, node *x, int ndim, const int64_t *shape, cnr_l *src) {
  node_clear(x);
  LU_TRY(tview(n, &x->vf, ndim, shape));
  x->v = x->vf;
  LU_TRY(tview(n, &x->g, ndim, shape));
  LU_TRY(tview(n, &x->g2, ndim, shape));
  if (src) {
    LU_TRY(tview(n, &x->vb, ndim, shape));
    x->src = src;
    n->recomp[n->nrecomp++] = x;
  }
  return LU_OK;
}

void lu_unet_release_plan(lu_unet *n) {
  for (int i = 0; i < n->nviews; i++) free(n->views[i]); /* shells: their buffers are the slots, owned below */
  n->nviews = n->nslots = 0;
  for (int i = 0; i < n->ntv; i++) { /* sub-buffers of the arena (owned below): released before it */
    if (n->tv_bound && n->tv[i]->buf) clReleaseMemObject((cl_mem)n->tv[i]->buf);
    free(n->tv[i]);
  }
  n->ntv = n->nrecomp = n->tv_bound = 0;
  n->live_peak = 0;
  n->bwd_ready = 0;
  for (int i = 0; i < n->nowned; i++) lu_tensor_free(n->owned[i]);
  n->nowned = 0;
  n->act_bytes = 0;
  n->planned = 0;
  n->stats_m = n->stats_s = NULL;
}

size_t lu_unet_activation_bytes(const lu_unet *n) { return n->act_bytes; }
size_t lu_unet_live_peak_bytes(const lu_unet *n) { return n->live_peak; }

static const lu_tensor *P(lu_unet *n, int i) { return i >= 0 ? &n->params[i].t : NULL; }
static lu_tensor *G(lu_unet *n, int i) { return i >= 0 ? &n->params[i].g : NULL; }

static lu_status conv_shape(const conv_l *c, const lu_tensor *x, int64_t *ys) {
  if (c->transposed) return lu_convT_out_shape(&c->d, x->shape, c->cout, ys);
  return lu_conv_out_shape(&c->d, x->shape, c->cout, ys);
}

/* Plans one conv-norm-relu on input node `in`. */
static lu_status plan_cnr(lu_unet *n, cnr_l *b, node *in, int train, int recompute) {
  int64_t ys[LU_MAX_DIMS];
  b->in = in;
  b->in2 = NULL;
  LU_TRY(conv_shape(&b->conv, in->v, ys));
  int nd = in->v->ndim;
  if (!train) {
    LU_TRY(slot_node(n, &b->out, nd, ys));
    node_clear(&b->y);
    b->y.v = b->out.v; /* conv output normalised in place */
    b->mean = b->invstd = NULL;
    return LU_OK;
  }
  node_clear(&b->y); /* kept for the norm's backward; no gradient of its own (the norm's runs in place) */
  LU_TRY(tview(n, &b->y.v, nd, ys));
  LU_TRY(tnode(n, &b->out, nd, ys, recompute ? b : NULL));
  int64_t ns = ys[0] * ys[1];
  LU_TRY(own(n, &b->mean, 1, &ns));
  return own(n, &b->invstd, 1, &ns);
}

/* An activation: training buffers (lifetimes from the recording), a slot share in inference. */
static lu_status act(lu_unet *n, node *x, int ndim, const int64_t *shape, int train) {
  return train ? tnode(n, x, ndim, shape, NULL) : slot_node(n, x, ndim, shape);
}

/* ------------------------------------------------------------ training plan: record and place */

/* The planned tensors an op touches (NULL entries skipped). While recording: their first and last step
 * (tensors that are not training shells, such as parameters, the input and the outputs, are not planned).
 * While running: every shell has its buffer, else the plan and the passes disagree. */
static lu_status op_tensors(lu_unet *n, const lu_tensor *const *t, int nt) {
  for (int i = 0; i < nt; i++) {
    if (!t[i]) continue;
    uintptr_t id = (uintptr_t)t[i]->buf;
    if (!n->rec) {
      if (!id) return lu_fail(LU_ESTATE, "unet: a buffer the training plan did not record (plan and passes disagree)");
      continue;
    }
    if (id == 0 || id > (uintptr_t)n->ntv) continue;
    int k = (int)(id - 1);
    if (n->tv_first[k] < 0) n->tv_first[k] = n->step;
    n->tv_last[k] = n->step;
  }
  n->step++;
  return LU_OK;
}

/* One op of the passes: recorded while planning, run otherwise. The variadic list names the activation and
 * gradient tensors it reads or writes. */
#define OP(n, call, ...)                                                                                        \
  do {                                                                                                         \
    const lu_tensor *op_t_[] = {__VA_ARGS__};                                                                  \
    LU_TRY(op_tensors((n), op_t_, (int)(sizeof op_t_ / sizeof op_t_[0])));                                     \
    if (!(n)->rec) LU_TRY(call);                                                                               \
  } while (0)

typedef struct { size_t bytes; int first, i; } tv_ent;

static int tv_cmp(const void *a, const void *b) { /* larger first, then earlier */
  const tv_ent *x = a, *y = b;
  if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
  return (x->first > y->first) - (x->first < y->first);
}

/* Offsets by size, largest first: each buffer at the lowest offset where no placed buffer with an
 * overlapping lifetime lies (and not across an arena chunk), then the chunks and one sub-buffer per buffer. */
static lu_status place(lu_unet *n) {
  size_t al = n->dev->mem_align; /* sub-buffer origins must be aligned to it */
  size_t chunk = n->dev->max_alloc ? (size_t)n->dev->max_alloc / al * al : SIZE_MAX;
  tv_ent *e = malloc((size_t)(n->ntv ? n->ntv : 1) * sizeof *e);
  if (!e) return lu_fail(LU_ENOMEM, "unet: training plan");
  int m = 0;
  for (int i = 0; i < n->ntv; i++)
    if (n->tv_first[i] >= 0) e[m++] = (tv_ent){(n->tv[i]->bytes + al - 1) / al * al, n->tv_first[i], i};
  qsort(e, (size_t)m, sizeof *e, tv_cmp);
  size_t total = 0;
  lu_status st = LU_OK;
  for (int k = 0; k < m && st == LU_OK; k++) {
    const tv_ent *c = &e[k];
    if (c->bytes > chunk) {
      st = lu_fail(LU_ENOMEM, "unet: a training buffer of %zu bytes exceeds the device's largest allocation", c->bytes);
      break;
    }
    size_t best = SIZE_MAX;
    for (int j = -1; j < k; j++) { /* candidates: 0 and the end of every placed buffer */
      size_t o = 0;
      if (j >= 0) {
        const tv_ent *p = &e[j];
        if (n->tv_last[p->i] < c->first || n->tv_first[p->i] > n->tv_last[c->i]) continue;
        o = n->tv_off[p->i] + p->bytes;
      }
      if (o >= best) continue;
      if (o / chunk != (o + c->bytes - 1) / chunk) o = (o / chunk + 1) * chunk;
      int ok = 1;
      for (int q = 0; q < k && ok; q++) {
        const tv_ent *p = &e[q];
        if (n->tv_last[p->i] < c->first || n->tv_first[p->i] > n->tv_last[c->i]) continue;
        if (o < n->tv_off[p->i] + p->bytes && n->tv_off[p->i] < o + c->bytes) ok = 0;
      }
      if (ok && o < best) best = o;
    }
    n->tv_off[c->i] = best;
    if (best + c->bytes > total) total = best + c->bytes;
  }
  /* the lower bound any placement has: the most bytes alive at one step */
  size_t peak = 0;
  for (int s = 0; s < n->step && st == LU_OK; s++) {
    size_t live = 0;
    for (int k = 0; k < m; k++)
      if (n->tv_first[e[k].i] <= s && s <= n->tv_last[e[k].i]) live += e[k].bytes;
    if (live > peak) peak = live;
  }
  n->live_peak = peak;
  for (int i = 0; i < n->ntv; i++) n->tv[i]->buf = NULL;
  n->tv_bound = 1;
  lu_tensor *ch[64];
  int nch = total ? (int)((total - 1) / chunk + 1) : 0;
  if (st == LU_OK && nch > 64) st = lu_fail(LU_ENOMEM, "unet: a training arena of %zu bytes in %d chunks", total, nch);
  for (int c = 0; c < nch && st == LU_OK; c++) {
    size_t sz = total - (size_t)c * chunk < chunk ? total - (size_t)c * chunk : chunk;
    int64_t nf = (int64_t)(sz / sizeof(float));
    st = own(n, &ch[c], 1, &nf);
  }
  for (int k = 0; k < m && st == LU_OK; k++) {
    int i = e[k].i;
    size_t c = n->tv_off[i] / chunk;
    cl_buffer_region r = {n->tv_off[i] - c * chunk, n->tv[i]->bytes};
    cl_int err;
    cl_mem sb = clCreateSubBuffer((cl_mem)ch[c]->buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
    if (err != CL_SUCCESS) st = lu_fail(LU_ECL, "%s (training buffer at byte %zu of the arena)", lu_cl_errname(err), n->tv_off[i]);
    else n->tv[i]->buf = sb;
  }
  if (st == LU_OK && lu_env("LUNET_PLAN_DEBUG"))
    fprintf(stderr, "unet training plan: %d buffers, %d steps, arena %.1f MB in %d chunk(s), live peak %.1f MB, %d recomputed\n",
            m, n->step, total / 1048576.0, nch, peak / 1048576.0, n->nrecomp);
  free(e);
  return st;
}

static lu_status fwd_pass(lu_unet *n, int train, int deep_supervision);
static lu_status bwd_pass(lu_unet *n, lu_tensor *const *dout, int n_dout);

/* Records a forward with every output and a backward with every output gradient (the most any step
 * touches: a step without deep supervision or with zero-weight heads touches a subset, at the same
 * places), then places what they touched. */
static lu_status plan_train(lu_unet *n) {
  const int S = n->cfg.n_stages;
  lu_tensor *dd[LU_UNET_MAX_STAGES];
  for (int i = 0; i < S - 1; i++) dd[i] = n->dec[S - 2 - i].sego.v;
  n->rec = 1;
  n->step = 0;
  lu_status st = fwd_pass(n, 1, 1);
  if (st == LU_OK) st = bwd_pass(n, dd, S - 1);
  n->rec = 0;
  LU_TRY(st);
  return place(n);
}

/* Drops x unless it is the input or an encoder stage output (a skip, dropped by its decoder stage). */
static void drop_transient(lu_unet *n, node *x) {
  if (x == &n->input) return;
  for (int s = 0; s < n->cfg.n_stages; s++)
    if (n->enc[s].out == x) return;
  slot_drop(n, x);
}

/* Plans in forward order; in inference every slot_drop follows the planning of that node's last reader
 * (training nodes have no slot: their lifetimes come from plan_train). */
static lu_status plan(lu_unet *n, const lu_tensor *x, int train) {
  lu_unet_release_plan(n);
  /* mixed precision stores a training step's activations and their gradients as float16 (the input, the
   * norm statistics and the loss's dlogits stay float32); inference stores float16 activations with
   * lu_unet_set_half_inference, its logits float32 */
  n->adt = (train ? n->half_acts : n->half_infer) ? LU_F16 : LU_F32;
  const lu_unet_cfg *c = &n->cfg;
  const int S = c->n_stages, nd = x->ndim;
  int rc = train && lu_tune(n->dev, LU_TUNE_TRAIN_RECOMPUTE) != 0; /* auto: recompute */
  node_clear(&n->input);
  n->input.v = (lu_tensor *)x;
  for (int s = 0; s < LU_UNET_MAX_STAGES; s++) n->enc[s].out = NULL;
  node *cur = &n->input;
  if (c->kind == LU_UNET_RESENC) {
    LU_TRY(plan_cnr(n, &n->stem, cur, train, rc));
    cur = &n->stem.out;
  }
  for (int s = 0; s < S; s++) {
    enc_stage *e = &n->enc[s];
    for (int i = 0; i < e->n; i++) {
      if (c->kind == LU_UNET_PLAIN) {
        LU_TRY(plan_cnr(n, &e->cnr[i], cur, train, rc));
        drop_transient(n, cur);
        cur = &e->cnr[i].out;
      } else {
        res_l *r = &e->blk[i];
        r->in = cur;
        LU_TRY(plan_cnr(n, &r->c1, cur, train, rc));
        LU_TRY(plan_cnr(n, &r->c2, &r->c1.out, train, rc));
        slot_drop(n, &r->c1.out);
        node *sk = cur;
        if (r->has_pool) {
          int64_t ps[LU_MAX_DIMS], ws[LU_MAX_DIMS];
          LU_TRY(lu_conv_out_shape(&r->pool, cur->v->shape, cur->v->shape[1], ps));
          LU_TRY(act(n, &r->pooled, nd, ps, train));
          lu_conv_weight_shape(&r->pool, 1, 1, ws);
          LU_TRY(own(n, &r->pool_w, nd, ws));
          double k = 1;
          for (int a = 0; a < c->nsp; a++) k *= r->pool.k[a];
          LU_TRY(lu_fill(r->pool_w, (float)(1.0 / k)));
          sk = &r->pooled;
        }
        if (r->has_proj) {
          LU_TRY(plan_cnr(n, &r->proj, sk, train, rc));
          if (r->has_pool) slot_drop(n, &r->pooled);
          sk = &r->proj.out;
        }
        LU_TRY(act(n, &r->out, nd, r->c2.out.v->shape, train));
        slot_drop(n, &r->c2.out);
        if (sk != cur) slot_drop(n, sk);
        drop_transient(n, cur);
        cur = &r->out;
      }
    }
    e->out = cur;
  }
  node *below = cur;
  for (int j = 0; j < S - 1; j++) {
    dec_stage *d = &n->dec[j];
    d->below = below;
    d->skip = n->enc[S - 2 - j].out;
    int64_t us[LU_MAX_DIMS], cs[LU_MAX_DIMS];
    LU_TRY(conv_shape(&d->up, below->v, us));
    for (int a = 2; a < nd; a++)
      if (us[a] != d->skip->v->shape[a]) {
        char s1[96], s2[96];
        return lu_fail(LU_EARG, "unet: input %s: decoder stage %d upsamples to %s but the skip is %s (the patch must "
                       "be divisible by the product of the strides)",
                       lu_shape_str(x->ndim, x->shape, s1, sizeof s1), j, lu_shape_str(nd, us, s2, sizeof s2),
                       lu_shape_str(nd, d->skip->v->shape, s1, sizeof s1));
      }
    memcpy(cs, us, sizeof cs);
    cs[1] = 2 * us[1];
    /* batch 1: cat's first half is the whole upsampled map, so the transposed conv writes it there and
     * only the skip is copied (no separate upsampled buffer alive next to cat) */
    d->up_in_cat = !train && us[0] == 1;
    /* training on the implicit GEMM: the first conv reads the upsampled map and the skip in place and writes
     * their gradients there (no concatenated copy, no split of its gradient); the upsampled map is kept
     * for that conv's weight gradient */
    d->cat_in_place = train && lu_tune(n->dev, LU_TUNE_TRAIN_CAT_IN_PLACE) != 0 && lu_conv_cat_in_place(n->dev, n->adt);
    if (d->cat_in_place) {
      LU_TRY(act(n, &d->upo, nd, us, train));
      node_clear(&d->cat);
      memset(&d->cat_shape, 0, sizeof d->cat_shape);
      d->cat_shape.dtype = n->adt;
      d->cat_shape.ndim = nd;
      memcpy(d->cat_shape.shape, cs, sizeof cs);
      d->cat_shape.dev = n->dev;
      d->cat.v = &d->cat_shape;
    } else if (d->up_in_cat) {
      LU_TRY(act(n, &d->cat, nd, cs, train));
      node_clear(&d->upo); /* part of cat's slot, dropped with cat */
      LU_TRY(view_new(n, &d->upo.v, nd, us, d->cat.slot));
    } else {
      /* the upsampled map is read by the concatenation only (its backward needs just gradients), so it
       * is transient in training too */
      LU_TRY(act(n, &d->upo, nd, us, train));
      LU_TRY(act(n, &d->cat, nd, cs, train));
    }
    slot_drop(n, below);
    slot_drop(n, d->skip);
    if (!d->up_in_cat) slot_drop(n, &d->upo);
    node *cc = &d->cat;
    for (int i = 0; i < d->n; i++) {
      LU_TRY(plan_cnr(n, &d->cnr[i], cc, train, rc));
      slot_drop(n, cc);
      cc = &d->cnr[i].out;
    }
    if (d->cat_in_place) {
      d->cnr[0].in = &d->upo;
      d->cnr[0].in2 = d->skip;
    }
    d->out = cc;
    int64_t ss[LU_MAX_DIMS];
    LU_TRY(conv_shape(&d->seg, d->out->v, ss));
    /* outputs keep their own buffers; inference logits are float32 (what the window accumulation reads) */
    node_clear(&d->sego);
    LU_TRY(own_as(n, &d->sego.v, train ? n->adt : LU_F32, nd, ss));
    below = d->out;
  }
  if (!train) LU_TRY(slots_make(n));
  /* Norm stats for inference (and the training backward's recomputations): as large as the largest N*C. */
  int64_t ms = 1;
  for (int k = 0; k < 3; k++) {
    lu_tensor **ts = k == 2 ? n->tv : k ? n->views : n->owned;
    int nt = k == 2 ? n->ntv : k ? n->nviews : n->nowned;
    for (int i = 0; i < nt; i++)
      if (ts[i]->ndim >= 2 && ts[i]->shape[0] * ts[i]->shape[1] > ms) ms = ts[i]->shape[0] * ts[i]->shape[1];
  }
  LU_TRY(own(n, &n->stats_m, 1, &ms));
  LU_TRY(own(n, &n->stats_s, 1, &ms));
  if (train) LU_TRY(plan_train(n));
  for (int i = 0; i < LU_UNET_MAX_STAGES; i++) n->tgt[i] = n->dlog[i] = NULL;
  n->planned = 1;
  n->plan_train = train;
  n->plan_ndim = x->ndim;
  memcpy(n->plan_shape, x->shape, sizeof n->plan_shape);
  return LU_OK;
}

/* ------------------------------------------------------------------------------------- forward */

static lu_status conv_fwd(lu_unet *n, const conv_l *c, const lu_tensor *x, lu_tensor *y) {
  /* frozen weights, inference: the conv's packed weights kept from one forward to the next */
  lu_conv_wcache *wc = n->frozen && !n->plan_train ? &n->wcache[c->pw] : NULL;
  if (c->transposed) OP(n, lu_convT_fwd_cached(&c->d, x, P(n, c->pw), P(n, c->pb), y, wc), x, y);
  else OP(n, lu_conv_fwd_cached(&c->d, x, P(n, c->pw), P(n, c->pb), y, wc), x, y);
  return LU_OK;
}

/* The shared statistics buffers viewed at N*C of x (inference, and recomputations that must not touch the
 * statistics the norm's backward reads). */
static void stats_views(lu_unet *n, const lu_tensor *x, lu_tensor *vm, lu_tensor *vs) {
  *vm = *n->stats_m;
  *vs = *n->stats_s;
  vm->shape[0] = vs->shape[0] = x->shape[0] * x->shape[1];
  vm->bytes = vs->bytes = (size_t)vm->shape[0] * sizeof(float);
}

/* Normalisation (+ LeakyReLU) of b's conv output into out with statistics m, s. */
static lu_status norm_fwd(lu_unet *n, cnr_l *b, lu_tensor *out, lu_tensor *m, lu_tensor *s) {
  const float eps = (float)n->cfg.norm_eps, slope = (float)n->cfg.leaky_slope;
  if (b->act) OP(n, lu_instnorm_lrelu_fwd(b->y.v, P(n, b->nw), P(n, b->nb), eps, slope, out, m, s), b->y.v, out);
  else OP(n, lu_instnorm_fwd(b->y.v, P(n, b->nw), P(n, b->nb), eps, out, m, s), b->y.v, out);
  return LU_OK;
}

static lu_status cnr_fwd(lu_unet *n, cnr_l *b, int train) {
  if (b->in2) {
    const conv_l *c = &b->conv;
    OP(n, lu_conv_fwd_cat(&c->d, b->in->v, b->in2->v, P(n, c->pw), P(n, c->pb), b->y.v), b->in->v, b->in2->v, b->y.v);
  } else {
    LU_TRY(conv_fwd(n, &b->conv, b->in->v, b->y.v));
  }
  lu_tensor vm, vs, *m = b->mean, *s = b->invstd;
  if (!train) { /* shared statistics buffers, viewed at this layer's N*C */
    stats_views(n, b->y.v, &vm, &vs);
    m = &vm;
    s = &vs;
  }
  return norm_fwd(n, b, b->out.v, m, s);
}

/* Before a backward reader of x: a norm output the plan does not keep is recomputed from its kept conv
 * output, once per backward (the forward's kernel on the same input and parameters: the same bits; its
 * statistics go to the shared buffers, so the ones the norm's backward reads stay untouched). */
static lu_status need_out(lu_unet *n, node *x) {
  if (!x->src || x->v == x->vb) return LU_OK;
  lu_tensor vm, vs;
  stats_views(n, x->src->y.v, &vm, &vs);
  LU_TRY(norm_fwd(n, x->src, x->vb, &vm, &vs));
  x->v = x->vb;
  return LU_OK;
}

/* (N, C, s...) viewed as (N*C, 1, s...) for the pooling convolution. */
static lu_tensor nc1_view(const lu_tensor *t) {
  lu_tensor v = *t;
  v.shape[0] = t->shape[0] * t->shape[1];
  v.shape[1] = 1;
  return v;
}

static lu_status res_fwd(lu_unet *n, res_l *r, int train) {
  LU_TRY(cnr_fwd(n, &r->c1, train));
  LU_TRY(cnr_fwd(n, &r->c2, train));
  node *sk = r->in;
  if (r->has_pool) {
    lu_tensor xi = nc1_view(r->in->v), po = nc1_view(r->pooled.v);
    OP(n, lu_conv_fwd(&r->pool, &xi, r->pool_w, NULL, &po), &xi, &po);
    sk = &r->pooled;
  }
  if (r->has_proj) {
    LU_TRY(cnr_fwd(n, &r->proj, train));
    sk = &r->proj.out;
  }
  OP(n, lu_add(r->out.v, r->c2.out.v, sk->v), r->out.v, r->c2.out.v, sk->v);
  OP(n, lu_lrelu_fwd(r->out.v, r->out.v, (float)n->cfg.leaky_slope), r->out.v);
  return LU_OK;
}

/* The forward over the current plan (recorded while plan_train runs). */
static lu_status fwd_pass(lu_unet *n, int train, int deep_supervision) {
  const lu_unet_cfg *c = &n->cfg;
  const int S = c->n_stages;
  for (int i = 0; i < n->nrecomp; i++) n->recomp[i]->v = n->recomp[i]->vf;
  if (c->kind == LU_UNET_RESENC) LU_TRY(cnr_fwd(n, &n->stem, train));
  for (int s = 0; s < S; s++)
    for (int i = 0; i < n->enc[s].n; i++) {
      if (c->kind == LU_UNET_PLAIN)
        LU_TRY(cnr_fwd(n, &n->enc[s].cnr[i], train));
      else
        LU_TRY(res_fwd(n, &n->enc[s].blk[i], train));
    }
  for (int j = 0; j < S - 1; j++) {
    dec_stage *d = &n->dec[j];
    LU_TRY(conv_fwd(n, &d->up, d->below->v, d->upo.v));
    if (d->up_in_cat) { /* inference only */
      LU_CL_CHECK(clEnqueueCopyBuffer(n->dev->queue, (cl_mem)d->skip->v->buf, (cl_mem)d->cat.v->buf, 0,
                                      d->upo.v->bytes, d->skip->v->bytes, 0, NULL, NULL),
                  "unet: skip into the decoder's concatenation");
    } else if (!d->cat_in_place) {
      OP(n, lu_concat_channels(d->cat.v, d->upo.v, d->skip->v), d->cat.v, d->upo.v, d->skip->v);
    }
    for (int i = 0; i < d->n; i++) LU_TRY(cnr_fwd(n, &d->cnr[i], train));
    d->has_seg = deep_supervision || j == S - 2;
    if (d->has_seg) LU_TRY(conv_fwd(n, &d->seg, d->out->v, d->sego.v));
  }
  n->out_ds = deep_supervision ? 1 : 0;
  n->n_out = deep_supervision ? S - 1 : 1;
  for (int i = 0; i < n->n_out; i++) n->outputs[i] = n->dec[S - 2 - i].sego.v;
  return LU_OK;
}

lu_status lu_unet_forward(lu_unet *n, const lu_tensor *x, int train, int deep_supervision, lu_tensor **outputs,
                          int *n_outputs) {
  if (!n->dev) return lu_fail(LU_ESTATE, "unet forward: the network was built without a device");
  LU_TRY(lu_check_device_tensor(x, LU_F32, "unet forward", "x"));
  const lu_unet_cfg *c = &n->cfg;
  const int S = c->n_stages;
  if (S < 2) return lu_fail(LU_EUNSUPPORTED, "unet forward: %d stage(s); a U-Net needs at least 2", S);
  if (x->ndim != 2 + c->nsp || x->shape[1] != c->in_channels || x->dev != n->dev) {
    char s[96];
    return lu_fail(LU_EARG, "unet forward: input %s, expected (N, %d, %s) on %s", lu_shape_str(x->ndim, x->shape, s, sizeof s),
                   c->in_channels, c->nsp == 3 ? "Z, Y, X" : "Y, X", n->dev->name);
  }
  train = train ? 1 : 0;
  n->bwd_ready = 0;
  if (!n->planned || n->plan_train != train || n->plan_ndim != x->ndim ||
      memcmp(n->plan_shape, x->shape, (size_t)x->ndim * sizeof(int64_t)) != 0)
    LU_TRY(plan(n, x, train));
  n->input.v = (lu_tensor *)x;
  LU_TRY(fwd_pass(n, train, deep_supervision));
  n->bwd_ready = train;
  if (outputs)
    for (int i = 0; i < n->n_out; i++) outputs[i] = n->outputs[i];
  if (n_outputs) *n_outputs = n->n_out;
  return LU_OK;
}

/* ------------------------------------------------------------------------------------ backward */

/* Where a gradient contribution for x goes: x->g itself when it is the first, else x->g2 (then gc adds it). */
static lu_tensor *gt(node *x) { return x->written ? x->g2 : x->g; }

static lu_status gc(lu_unet *n, node *x, lu_tensor *dst) {
  if (dst != x->g) OP(n, lu_axpy(x->g, 1.0f, dst), x->g, dst);
  x->written = 1;
  return LU_OK;
}

/* Tells the gradient hook (lu_unet_set_grad_hook) that parameter p's gradient is final; p < 0: none. */
static lu_status grad_done(lu_unet *n, int p) {
  return n->grad_hook && p >= 0 && !n->rec ? n->grad_hook(n->grad_ud, p) : LU_OK;
}

/* Weight gradients of conv c for input x and output gradient dy, then (if `in` wants one) the
 * input gradient. */
static lu_status conv_bwd(lu_unet *n, const conv_l *c, node *in, const lu_tensor *dy) {
  LU_TRY(need_out(n, in));
  /* every conv's weights get exactly one gradient per backward pass: written, not added to the zeroed
   * buffer (a single-chunk weight gradient then needs no separate summing pass) */
  if (c->transposed)
    OP(n, lu_convT_bwd_weight(&c->d, in->v, dy, G(n, c->pw), G(n, c->pb), 0), in->v, dy);
  else
    OP(n, lu_conv_bwd_weight(&c->d, in->v, dy, G(n, c->pw), G(n, c->pb), 0), in->v, dy);
  LU_TRY(grad_done(n, c->pw));
  LU_TRY(grad_done(n, c->pb));
  if (!in->g) return LU_OK;
  lu_tensor *dst = gt(in);
  if (c->transposed)
    OP(n, lu_convT_bwd_data(&c->d, dy, P(n, c->pw), dst), dy, dst);
  else
    OP(n, lu_conv_bwd_data(&c->d, dy, P(n, c->pw), dst), dy, dst);
  return gc(n, in, dst);
}

/* conv_bwd for a conv whose input is the concatenation [in, in2] read in place: both parts get their first
 * gradient here (the upsampled map has no other reader, the skip's encoder reader comes later). */
static lu_status conv_bwd_cat(lu_unet *n, const conv_l *c, node *in, node *in2, const lu_tensor *dy) {
  LU_TRY(need_out(n, in));
  LU_TRY(need_out(n, in2));
  OP(n, lu_conv_bwd_weight_cat(&c->d, in->v, in2->v, dy, G(n, c->pw), G(n, c->pb), 0), in->v, in2->v, dy);
  LU_TRY(grad_done(n, c->pw));
  LU_TRY(grad_done(n, c->pb));
  if (in->written || in2->written)
    return lu_fail(LU_ESTATE, "unet backward: a decoder's upsampled map or skip had a gradient before its conv's");
  OP(n, lu_conv_bwd_data_cat(&c->d, dy, P(n, c->pw), in->g, in2->g), dy, in->g, in2->g);
  in->written = in2->written = 1;
  return LU_OK;
}

/* b->out.g holds the complete output gradient; it is overwritten in place. */
static lu_status cnr_bwd(lu_unet *n, cnr_l *b) {
  lu_tensor *d = b->out.g;
  if (b->act) {
    LU_TRY(need_out(n, &b->out));
    /* the LeakyReLU's backward is applied as the norm's backward reads d (one pass fewer over the gradient) */
    OP(n, lu_instnorm_lrelu_bwd(b->y.v, P(n, b->nw), b->mean, b->invstd, b->out.v, (float)n->cfg.leaky_slope, d, d,
                                G(n, b->nw), G(n, b->nb), 1),
       b->y.v, d, b->out.v);
  } else {
    OP(n, lu_instnorm_bwd(b->y.v, P(n, b->nw), b->mean, b->invstd, d, d, G(n, b->nw), G(n, b->nb), 1), b->y.v, d);
  }
  LU_TRY(grad_done(n, b->nw));
  LU_TRY(grad_done(n, b->nb));
  if (b->in2) return conv_bwd_cat(n, &b->conv, b->in, b->in2, d);
  return conv_bwd(n, &b->conv, b->in, d);
}

static lu_status res_bwd(lu_unet *n, res_l *r) {
  lu_tensor *d = r->out.g;
  OP(n, lu_lrelu_bwd(d, r->out.v, d, (float)n->cfg.leaky_slope), d, r->out.v);
  OP(n, lu_copy(r->c2.out.g, d), r->c2.out.g, d);
  /* skip path, consuming d */
  node *sk = r->has_pool ? &r->pooled : r->in;
  if (r->has_proj) {
    lu_tensor *save = r->proj.out.g; /* unused: the projection borrows d as its output gradient */
    r->proj.out.g = d; /* (it is overwritten) */
    lu_status st = cnr_bwd(n, &r->proj);
    r->proj.out.g = save;
    LU_TRY(st);
  } else if (sk->g) {
    lu_tensor *dst = gt(sk);
    OP(n, lu_copy(dst, d), dst, d);
    LU_TRY(gc(n, sk, dst));
  }
  if (r->has_pool && r->in->g) {
    lu_tensor *dst = gt(r->in);
    lu_tensor dv = nc1_view(dst), pg = nc1_view(r->pooled.g);
    OP(n, lu_conv_bwd_data(&r->pool, &pg, r->pool_w, &dv), &pg, &dv);
    LU_TRY(gc(n, r->in, dst));
  }
  LU_TRY(cnr_bwd(n, &r->c2));
  return cnr_bwd(n, &r->c1);
}

static void reset_written(lu_unet *n) {
  /* every node lives inside a module struct; clear them all */
  const int S = n->cfg.n_stages;
  n->stem.y.written = n->stem.out.written = 0;
  for (int s = 0; s < S; s++) {
    enc_stage *e = &n->enc[s];
    for (int i = 0; i < e->n; i++) {
      if (e->cnr) e->cnr[i].out.written = 0;
      if (e->blk) {
        res_l *r = &e->blk[i];
        r->c1.out.written = r->c2.out.written = r->proj.out.written = r->pooled.written = r->out.written = 0;
      }
    }
  }
  for (int j = 0; j < S - 1; j++) {
    dec_stage *d = &n->dec[j];
    d->upo.written = d->cat.written = 0;
    for (int i = 0; i < d->n; i++) d->cnr[i].out.written = 0;
  }
}

/* The backward over the current plan (recorded while plan_train runs; the hook is told nothing then). */
static lu_status bwd_pass(lu_unet *n, lu_tensor *const *dout, int n_dout) {
  const lu_unet_cfg *c = &n->cfg;
  const int S = c->n_stages;
  const int hook = n->grad_hook && !n->rec;
  reset_written(n);
  if (hook) {
    LU_TRY(n->grad_hook(n->grad_ud, LU_UNET_GRAD_BEGIN));
    /* heads this pass leaves at zero (deep-supervision weight 0) are final now, not at the end: they sit at the
     * end of the buffer, where the first bucket is */
    for (int j = 0; j < S - 1; j++) {
      dec_stage *d = &n->dec[j];
      int oi = S - 2 - j;
      if (d->has_seg && oi < n_dout && dout[oi]) continue;
      LU_TRY(grad_done(n, d->seg.pw));
      LU_TRY(grad_done(n, d->seg.pb));
    }
  }
  for (int j = S - 2; j >= 0; j--) {
    dec_stage *d = &n->dec[j];
    int oi = S - 2 - j; /* output index of this stage's head */
    if (d->has_seg && oi < n_dout && dout[oi]) {
      if (lu_tensor_numel(dout[oi]) != lu_tensor_numel(d->sego.v))
        return lu_fail(LU_EARG, "unet backward: gradient %d has %lld elements, output has %lld", oi,
                       (long long)lu_tensor_numel(dout[oi]), (long long)lu_tensor_numel(d->sego.v));
      LU_TRY(conv_bwd(n, &d->seg, d->out, dout[oi]));
    }
    if (!d->out->written) OP(n, lu_fill(d->out->g, 0.0f), d->out->g); /* no gradient reached this stage */
    for (int i = d->n - 1; i >= 0; i--) LU_TRY(cnr_bwd(n, &d->cnr[i]));
    if (!d->cat_in_place) { /* (in place, the first conv wrote upo's and the skip's gradients) */
      OP(n, lu_split_channels(d->cat.g, d->upo.g, d->skip->g, d->skip->written), d->cat.g, d->upo.g, d->skip->g);
      d->skip->written = 1;
    }
    LU_TRY(conv_bwd(n, &d->up, d->below, d->upo.g));
  }
  for (int s = S - 1; s >= 0; s--) {
    enc_stage *e = &n->enc[s];
    for (int i = e->n - 1; i >= 0; i--) {
      if (c->kind == LU_UNET_PLAIN)
        LU_TRY(cnr_bwd(n, &e->cnr[i]));
      else
        LU_TRY(res_bwd(n, &e->blk[i]));
    }
  }
  if (c->kind == LU_UNET_RESENC) LU_TRY(cnr_bwd(n, &n->stem));
  return hook ? n->grad_hook(n->grad_ud, LU_UNET_GRAD_END) : LU_OK;
}

lu_status lu_unet_backward(lu_unet *n, lu_tensor *const *dout, int n_dout) {
  if (!n->planned || !n->plan_train)
    return lu_fail(LU_ESTATE, "unet backward: no training forward to go back through (forward with train = true)");
  /* the backward reuses the memory of activations it has passed: a second one needs a new forward */
  if (!n->bwd_ready)
    return lu_fail(LU_ESTATE, "unet backward: the last training forward was gone back through already (forward again)");
  if (n_dout != n->n_out)
    return lu_fail(LU_EARG, "unet backward: %d output gradients for %d outputs", n_dout, n->n_out);
  LU_TRY(lu_unet_ensure_flat(n, 1));
  n->bwd_ready = 0;
  return bwd_pass(n, dout, n_dout);
}

/* ------------------------------------------------------------------------------- training step */

static lu_status ensure_amp(lu_unet *n) {
  if (n->amp) return LU_OK;
  lu_amp_cfg c;
  lu_amp_cfg_default(&c);
  c.enabled = 0; /* fp32 until set_scaler: scale 1, no skipped steps */
  return lu_unet_set_scaler(n, &c);
}

/* Waits for a pending non-blocking readback (its event, if any) and forgets the event; what names the value. */
static lu_status wait_readback(cl_event *evt, const char *what) {
  if (!*evt) return LU_OK;
  lu_note_host_wait(what);
  cl_int e = clWaitForEvents(1, evt);
  clReleaseEvent(*evt);
  *evt = NULL;
  if (e != CL_SUCCESS) return lu_fail(LU_ECL, "%s (reading the %s)", lu_cl_errname(e), what);
  return LU_OK;
}

/* Waits for the last update's readback of the scaler state (if one is pending). */
static lu_status amp_sync(lu_unet *n) { return wait_readback(&n->amp_evt, "grad scaler state"); }

/* Waits for the loss readback that loss_all queued (if one is pending) and returns its value. */
static lu_status loss_wait(lu_unet *n, double *loss) {
  int pending = n->loss_evt != NULL;
  LU_TRY(wait_readback(&n->loss_evt, "loss value"));
  if (pending && loss) *loss = (double)n->loss_host;
  return LU_OK;
}

/* Forward and loss of every deep-supervision output. The loss is finished on the device and summed into
 * n->loss_acc, whose non-blocking readback loss_wait completes, so nothing in a training step waits for
 * the host; the one exception is a data-parallel batch Dice (reduce_sums), whose sums go through MPI on
 * the host, and there *loss is set at once. */
static lu_status loss_all(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o, int train,
                          double *loss) {
  if (o->n_ds < 0 || o->n_ds > LU_UNET_MAX_STAGES) return lu_fail(LU_EARG, "unet loss: %d deep-supervision weights", o->n_ds);
  int ds = o->n_ds > 1;
  int on_dev = o->loss.reduce_sums == NULL;
  if (on_dev) {
    LU_TRY(loss_wait(n, NULL)); /* the accumulator is reset below */
    if (!n->loss_acc) { /* before the plan's buffers, as the scaler: the pool sees the same requests every step */
      int64_t one = 1;
      LU_TRY(lu_tensor_new_device(&n->loss_acc, n->dev, LU_F32, 1, &one));
    }
    const cl_float zero = 0.0f;
    LU_CL_CHECK(clEnqueueFillBuffer(n->dev->queue, (cl_mem)n->loss_acc->buf, &zero, sizeof zero, 0, sizeof zero, 0,
                                    NULL, NULL),
                "unet loss: clearing the loss accumulator");
  }
  lu_tensor *outs[LU_UNET_MAX_STAGES];
  int no;
  LU_TRY(lu_unet_forward(n, x, train, ds, outs, &no));
  if (ds && no != o->n_ds)
    return lu_fail(LU_EARG, "unet loss: %d deep-supervision weights for %d outputs", o->n_ds, no);
  LU_TRY(lu_check_device_tensor(target, target->dtype, "unet loss", "target"));
  if (target->ndim != x->ndim || target->shape[0] != x->shape[0]) {
    char a[96], b[96];
    return lu_fail(LU_EARG, "unet loss: target %s does not match input %s", lu_shape_str(target->ndim, target->shape, a, sizeof a),
                   lu_shape_str(x->ndim, x->shape, b, sizeof b));
  }
  double total = 0;
  for (int i = 0; i < no; i++) {
    double w = ds ? o->ds_weights[i] : 1.0;
    if (w == 0) continue;
    const lu_tensor *t = target;
    if (i > 0 || memcmp(target->shape + 2, outs[i]->shape + 2, (size_t)(x->ndim - 2) * sizeof(int64_t)) != 0) {
      if (n->tgt[i] && n->tgt[i]->dtype != target->dtype) { /* a batch of another label dtype: a new buffer */
        for (int j = 0; j < n->nowned; j++)
          if (n->owned[j] == n->tgt[i]) n->owned[j] = n->owned[--n->nowned];
        lu_tensor_free(n->tgt[i]);
        n->tgt[i] = NULL;
      }
      if (!n->tgt[i]) {
        int64_t ts[LU_MAX_DIMS];
        memcpy(ts, outs[i]->shape, sizeof ts);
        ts[1] = target->shape[1];
        if (n->nowned >= LU_UNET_MAX_OWNED) return lu_fail(LU_EARG, "unet: too many buffers");
        LU_TRY(lu_tensor_new_device(&n->tgt[i], n->dev, target->dtype, x->ndim, ts));
        n->owned[n->nowned++] = n->tgt[i];
      }
      LU_TRY(lu_ds_downsample(n->tgt[i], target));
      t = n->tgt[i];
    }
    lu_loss_opts lo = o->loss;
    lo.scale = (float)w;
    /* the loss scaler multiplies the backward's seed on the device; the loss value stays unscaled */
    if (train && n->amp && n->amp_on) lo.grad_scale = n->amp->buf;
    if (on_dev) lo.device_acc = n->loss_acc->buf;
    double l = 0;
    lu_tensor *dl = NULL;
    if (train) {
      if (!n->dlog[i]) LU_TRY(own(n, &n->dlog[i], outs[i]->ndim, outs[i]->shape));
      dl = n->dlog[i];
    }
    LU_TRY(lu_dc_ce_loss(outs[i], t, &lo, on_dev ? NULL : &l, dl));
    total += l;
  }
  *loss = total;
  if (on_dev) {
    LU_CL_CHECK(clEnqueueReadBuffer(n->dev->queue, (cl_mem)n->loss_acc->buf, CL_FALSE, 0, sizeof n->loss_host,
                                    &n->loss_host, 0, NULL, &n->loss_evt),
                "unet loss: reading the loss");
    clFlush(n->dev->queue);
  }
  return LU_OK;
}

lu_status lu_unet_loss(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o, double *loss) {
  LU_TRY(loss_all(n, x, target, o, 0, loss));
  return loss_wait(n, loss);
}

/* Forward, loss and backward queued; the loss value's readback is pending (loss_wait). */
static lu_status train_grad_queued(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o,
                                   double *loss) {
  LU_TRY(ensure_amp(n)); /* before the first plan's buffers, so the pool sees the same requests every step */
  LU_TRY(lu_unet_ensure_flat(n, 1)); /* likewise the gradient and momentum buffers, made on the first step */
  LU_TRY(lu_unet_ensure_flat(n, 2));
  LU_TRY(loss_all(n, x, target, o, 1, loss));
  lu_tensor *dout[LU_UNET_MAX_STAGES];
  for (int i = 0; i < n->n_out; i++) {
    double w = n->n_out > 1 ? o->ds_weights[i] : 1.0;
    dout[i] = w != 0 ? n->dlog[i] : NULL;
  }
  LU_TRY(lu_unet_zero_grad(n));
  return lu_unet_backward(n, dout, n->n_out);
}

lu_status lu_unet_train_grad(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o,
                             double *loss) {
  LU_TRY(train_grad_queued(n, x, target, o, loss));
  return loss_wait(n, loss);
}

lu_status lu_unet_stage(lu_unet *n, const lu_tensor *x, const lu_tensor *target, int *slot) {
  if (!n->dev) return lu_fail(LU_ESTATE, "unet: stage on a network without a device");
  if (!n->stager) LU_TRY(lu_stager_new(n->dev, &n->stager));
  const lu_tensor *h[2] = {x, target};
  return lu_stager_put(n->stager, 2, h, slot);
}

lu_status lu_unet_train_step_staged(lu_unet *n, int slot, const lu_train_opts *o, lu_train_result *res) {
  if (!n->stager) return lu_fail(LU_ESTATE, "unet: train step on staged slot %d before any stage()", slot);
  lu_tensor *d[2];
  LU_TRY(lu_stager_acquire(n->stager, slot, 2, d));
  lu_status st = lu_unet_train_step(n, d[0], d[1], o, res);
  lu_status rs = lu_stager_release(n->stager, slot); /* also after a failed step: the slot's reads are queued */
  return st != LU_OK ? st : rs;
}

lu_status lu_unet_set_half_activations(lu_unet *n, int on) {
  on = on != 0;
  if (on != n->half_acts && n->planned && n->plan_train) lu_unet_release_plan(n); /* replanned by the next step */
  n->half_acts = on;
  return LU_OK;
}

int lu_unet_half_activations(const lu_unet *n) { return n->half_acts; }

lu_status lu_unet_set_half_inference(lu_unet *n, int on) {
  on = on != 0;
  if (on != n->half_infer && n->planned && !n->plan_train) lu_unet_release_plan(n); /* replanned by the next forward */
  n->half_infer = on;
  return LU_OK;
}

int lu_unet_half_inference(const lu_unet *n) { return n->half_infer; }

lu_status lu_unet_set_scaler(lu_unet *n, const lu_amp_cfg *cfg) {
  if (!n->dev) return lu_fail(LU_ESTATE, "unet: set_scaler on a network without a device");
  LU_TRY(amp_sync(n));
  if (!n->amp) LU_TRY(lu_amp_state_new(n->dev, cfg, &n->amp));
  else LU_TRY(lu_amp_state_set(n->amp, cfg));
  n->amp_on = cfg->enabled != 0;
  return lu_tensor_read(n->amp, n->amp_host);
}

lu_status lu_unet_scaler_stats(lu_unet *n, lu_amp_stats *s) {
  if (!n->dev) return lu_fail(LU_ESTATE, "unet: scaler_stats on a network without a device");
  LU_TRY(ensure_amp(n));
  LU_TRY(amp_sync(n));
  lu_amp_decode(n->amp_host, s);
  return LU_OK;
}

lu_status lu_unet_train_update(lu_unet *n, const lu_train_opts *o, double *grad_norm) {
  if (!n->n_out) return lu_fail(LU_EARG, "unet: train_update before a training forward");
  if (n->frozen) LU_TRY(lu_unet_freeze_weights(n, 0)); /* the update writes the weights */
  LU_TRY(ensure_amp(n));
  LU_TRY(lu_unet_ensure_flat(n, 1));
  LU_TRY(lu_unet_ensure_flat(n, 2));
  /* norm, inf/NaN check, clip coefficient and the scaler's update stay on the device: the SGD kernels read
   * the factor and found_inf from n->amp, so no host round trip separates backward and update */
  LU_TRY(lu_amp_unscale_clip(n->flat[1], n->amp, (float)o->grad_clip));
  /* As torch: parameters that received no gradient (the heads of outputs with weight 0) are not
   * touched by the optimiser (no weight decay, no momentum). The seg heads come last in parameter
   * order, so everything before them is one pass over the flat buffers. */
  const float lr = (float)o->lr, mu = (float)o->momentum, wd = (float)o->weight_decay;
  const int S = n->cfg.n_stages;
  size_t head0 = n->params[n->dec[0].seg.pw].offset;
  lu_tensor pv = *n->flat[0], gv = *n->flat[1], mv = *n->flat[2];
  cl_buffer_region r = {0, head0 * sizeof(float)};
  cl_int err;
  cl_mem sub[3];
  for (int w = 0; w < 3; w++) {
    sub[w] = clCreateSubBuffer((cl_mem)n->flat[w]->buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
    if (err != CL_SUCCESS) {
      for (int k = 0; k < w; k++) clReleaseMemObject(sub[k]);
      return lu_fail(LU_ECL, "%s (optimiser sub-buffer)", lu_cl_errname(err));
    }
  }
  pv.buf = sub[0], gv.buf = sub[1], mv.buf = sub[2];
  pv.shape[0] = gv.shape[0] = mv.shape[0] = (int64_t)head0;
  pv.bytes = gv.bytes = mv.bytes = head0 * sizeof(float);
  lu_status st = lu_sgd_nesterov_amp(&pv, &gv, &mv, n->amp, lr, mu, wd);
  for (int w = 0; w < 3; w++) clReleaseMemObject(sub[w]);
  LU_TRY(st);
  for (int i = 0; i < n->n_out; i++) {
    double w = n->n_out > 1 ? o->ds_weights[i] : 1.0;
    if (w == 0) continue;
    const conv_l *c = &n->dec[S - 2 - i].seg;
    lu_param *pw = &n->params[c->pw], *pb = &n->params[c->pb];
    LU_TRY(lu_sgd_nesterov_amp(&pw->t, &pw->g, &pw->m, n->amp, lr, mu, wd));
    LU_TRY(lu_sgd_nesterov_amp(&pb->t, &pb->g, &pb->m, n->amp, lr, mu, wd));
  }
  /* the state comes back behind the update without blocking the queue; a caller that wants the norm
   * (or the next set_scaler/stats) waits on the event */
  LU_TRY(amp_sync(n));
  LU_CL_CHECK(clEnqueueReadBuffer(n->dev->queue, (cl_mem)n->amp->buf, CL_FALSE, 0, sizeof n->amp_host, n->amp_host,
                                  0, NULL, &n->amp_evt),
              "reading the grad scaler state");
  clFlush(n->dev->queue);
  if (grad_norm) {
    lu_amp_stats s;
    LU_TRY(lu_unet_scaler_stats(n, &s));
    *grad_norm = s.grad_norm;
  }
  return LU_OK;
}

lu_status lu_unet_train_step(lu_unet *n, const lu_tensor *x, const lu_tensor *target, const lu_train_opts *o,
                             lu_train_result *res) {
  double loss, norm;
  /* the whole step is queued before the host waits for anything: loss, then the norm and scaler state */
  LU_TRY(train_grad_queued(n, x, target, o, &loss));
  LU_TRY(lu_unet_train_update(n, o, &norm));
  LU_TRY(loss_wait(n, &loss));
  if (res) {
    res->loss = loss;
    res->grad_norm = norm;
  }
  return LU_OK;
}
