/* Private layout of lu_unet, shared by unet.c (structure, parameters) and unet_fwd.c (passes). */
#ifndef LU_UNET_PRIV_H
#define LU_UNET_PRIV_H

#include "nn/unet.h"
#include "cl/staging.h"
#include "ops/amp.h"
#include "ops/conv.h"
#include "ops/nn.h"
#include "ops/ops.h"

struct cnr_l;

/* An activation and its gradient; `written` tracks whether g holds a value in this backward
 * (the first contribution overwrites, later ones are added into g from g2). slot: the inference plan's
 * shared buffer v lives in, -1 when none.
 * Training plans place every buffer by lifetime (see plan_train in unet_fwd.c). A norm output that the
 * backward reads again (src set) is not kept: vf holds it during the forward, and the backward recomputes
 * it from src's kept conv output into vb just before its first backward reader; v points at the one in use. */
typedef struct node {
  lu_tensor *v, *g, *g2;
  int written;
  int slot;
  lu_tensor *vf, *vb;
  struct cnr_l *src;
} node;

typedef struct conv_l {
  lu_conv_desc d;
  int cin, cout, transposed;
  int pw, pb; /* parameter indices; pb -1 without bias */
} conv_l;

/* ConvDropoutNormReLU: conv -> y, instance norm (+ LeakyReLU when act) -> out. */
typedef struct cnr_l {
  conv_l conv;
  int nw, nb, act;
  node *in;
  node *in2; /* the decoder's first conv with its concatenation read in place: in the upsampled map, in2 the skip */
  node y, out;
  lu_tensor *mean, *invstd;
} cnr_l;

/* BasicBlockD: out = lrelu(c2(c1(x)) + skip(x)); skip = [avgpool][1x1 conv + norm]. */
typedef struct res_l {
  cnr_l c1, c2;
  int has_pool, has_proj;
  lu_conv_desc pool;
  cnr_l proj;
  lu_tensor *pool_w; /* (1, 1, s...) filled with 1/prod(s) */
  node *in;
  node pooled, out;
} res_l;

typedef struct enc_stage {
  int n;
  cnr_l *cnr; /* plain */
  res_l *blk; /* resenc */
  node *out;  /* the stage output (skip / bottleneck) */
} enc_stage;

typedef struct dec_stage {
  int n;
  conv_l up, seg;
  cnr_l *cnr;
  node upo, cat, sego;
  int has_seg;    /* seg head runs in this forward */
  int up_in_cat;  /* inference, batch 1: the transposed conv writes the first half of cat directly */
  int cat_in_place;     /* training where the implicit GEMM runs: cnr[0] reads upo and skip, no cat buffer */
  lu_tensor cat_shape;  /* then cat.v: the concatenation's shape only (no buffer, never an op's operand) */
  node *below, *skip, *out;
} dec_stage;

#define LU_UNET_MAX_OWNED 2048
#define LU_UNET_MAX_SLOTS 64

struct lu_unet {
  lu_unet_cfg cfg;
  lu_device *dev;
  lu_param *params;
  int np, cap;
  size_t nweights, flat_floats;
  lu_tensor *flat[3];
  char arch[1024];
  cnr_l stem;
  enc_stage enc[LU_UNET_MAX_STAGES];
  dec_stage dec[LU_UNET_MAX_STAGES];
  /* plan for the current input shape */
  int planned, plan_train;
  int64_t plan_shape[LU_MAX_DIMS];
  int plan_ndim;
  node input;
  int half_acts;  /* lu_unet_set_half_activations */
  int half_infer; /* lu_unet_set_half_inference */
  /* lu_unet_freeze_weights: each conv weight's packed copy (by parameter index) kept by inference forwards
   * until a write to the weights clears them (unfreeze_weights in unet.c) */
  int frozen;
  lu_conv_wcache *wcache;
  lu_dtype adt;  /* the current plan's activation dtype */
  lu_tensor *owned[LU_UNET_MAX_OWNED];
  int nowned;
  size_t act_bytes;
  /* inference plans: activations are shells (views[]) over shared buffers (slots) reused once their last
   * reader has run; slot_bytes is the largest tensor a slot holds, its buffer made at the plan's end */
  lu_tensor *views[LU_UNET_MAX_OWNED];
  int view_slot[LU_UNET_MAX_OWNED];
  int nviews, nslots;
  size_t slot_bytes[LU_UNET_MAX_SLOTS];
  int slot_busy[LU_UNET_MAX_SLOTS];
  lu_tensor *stats_m, *stats_s; /* shared norm stats: inference, and the training backward's recomputations */
  /* training plans: every activation, gradient and recomputed output is a shell (tv) recorded by a dry run of
   * the forward and backward (rec: ops note their tensors' first and last step instead of running), then
   * placed in one arena (arena chunks, as many as the device's largest allocation needs) at offsets that
   * only buffers with disjoint lifetimes share. */
  int rec, step;
  lu_tensor *tv[LU_UNET_MAX_OWNED];
  int tv_first[LU_UNET_MAX_OWNED], tv_last[LU_UNET_MAX_OWNED];
  size_t tv_off[LU_UNET_MAX_OWNED];
  int ntv, tv_bound; /* tv_bound: the shells hold sub-buffers (else record tags) */
  node *recomp[LU_UNET_MAX_OWNED]; /* the nodes with a backward recomputation (src set) */
  int nrecomp;
  size_t live_peak;   /* the most bytes the placed buffers hold at one step (the arena's lower bound) */
  int bwd_ready;      /* a training forward's activations wait for their backward */
  lu_tensor *outputs[LU_UNET_MAX_STAGES];
  int n_out, out_ds;
  lu_tensor *tgt[LU_UNET_MAX_STAGES], *dlog[LU_UNET_MAX_STAGES]; /* training-step buffers (planned) */
  /* loss scaler and last-step state (ops/amp.h), created on the first update or set_scaler; amp_host
   * receives it after every update by a non-blocking read that amp_evt completes */
  lu_tensor *amp;
  int amp_on; /* the scaler is enabled (a host copy: amp_host may be in flight) */
  uint32_t amp_host[LU_AMP_WORDS];
  cl_event amp_evt;
  /* the step's loss, summed over the deep-supervision outputs on the device (loss_finish); loss_host
   * receives it by a non-blocking read that loss_evt completes, waited for after the step is queued */
  lu_tensor *loss_acc;
  struct lu_stager *stager; /* double-buffered batch uploads (cl/staging.h), created by the first stage() */
  float loss_host;
  cl_event loss_evt;
  /* lu_unet_set_grad_hook: told as gradients become final during backward */
  lu_unet_grad_hook grad_hook;
  void *grad_ud;
  void (*grad_free)(void *);
};

void lu_unet_release_plan(lu_unet *n);

#endif
