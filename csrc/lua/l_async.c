/* lunet.core.async: one network training step on a worker thread, so the host prepares the next batch
 * (sampling, augmentation, region conversion) while the device runs this step, so training does not stall
 * waiting for batches (nnunetv2 gets the same overlap from its background data-loader processes,
 * nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: get_dataloaders). The step runs on a dedicated pthread, not
 * core/threads.h's lu_parallel_for: it must run beside the Lua caller and be joined later, by job:wait().
 *   train_step(net (a lunet.core.net Net), x, target, opts [, slot]) -> job   (opts as Net:train_step's; slot:
 *                                           the batch x, target was staged there by net:stage, so the worker
 *                                           does not upload it: the step waits for its transfer on the device)
 *   job:wait() -> loss, grad_norm, seconds  (joins the thread; raises the step's error; idempotent; seconds:
 *                                           the step's wall time on the worker)
 *   job:done() -> bool                   (true once wait() has returned)
 *   train_grad(net, x, target, opts) -> job   the first half only (lu_unet_train_grad: forward, loss, backward;
 *                                           wait() -> loss, 0, seconds), for data-parallel runs: the gradient
 *                                           allreduce and net:train_update follow on the caller's thread. With
 *                                           opts.dist_batch_dice the loss's allreduce runs on the worker (MPI is
 *                                           initialised MPI_THREAD_SERIALIZED; the caller makes no MPI call
 *                                           while the job runs). With gradient buckets attached to the network
 *                                           (dist.set_buckets), the worker also completes their reduction, which
 *                                           overlaps the backward (dist/gradsync.h); the caller's
 *                                           dist.allreduce_grads then returns at once.
 * The worker copies x and target to the device itself (the job keeps both tensors alive until it is collected;
 * do not write into them while it runs). While a job runs, the caller must not use the same network or issue
 * device work on its device (kernel objects are shared and their arguments are not thread-safe); freeing device
 * tensors is safe (the buffer pool is locked). Only host work (the batch of the next step) belongs in between.
 * The step itself is lu_unet_train_step, so results
 * are bit-identical to Net:train_step. The job keeps the network alive until it is collected; a job that is
 * collected before wait() is joined first. A running step holds the devices (lu_cl_hold): a process that exits
 * while it runs finishes it before the OpenCL teardown. */
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/device.h"
#include "dist/dist.h"
#include "dist/gradsync.h"
#include "lua/l_common.h"
#include "nn/unet.h"
#include "lua/l_net.h"

#define JOB_MT "lunet.AsyncStep"

typedef struct job {
  pthread_t th;
  int started, joined;
  lu_unet *n;
  const lu_tensor *hx, *ht; /* the caller's tensors (kept alive by the job's uservalues 2 and 3) */
  lu_tensor *x, *t;         /* device copies, owned (freed by the worker) */
  lu_train_opts o;
  lu_train_result r;
  int slot;      /* >= 0: the batch was staged (net:stage) into this slot; x and target are not uploaded */
  int grad_only; /* train_grad: forward, loss and backward only (data-parallel: the allreduce and update follow) */
  lu_status st;
  double seconds; /* wall time of the step on the worker */
  char msg[1024];
} job;

static void *worker(void *arg) {
  job *j = arg;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  lu_device *dev = lu_unet_device(j->n);
  if (j->slot >= 0) {
    j->st = lu_unet_train_step_staged(j->n, j->slot, &j->o, &j->r);
    goto done;
  }
  j->st = lu_tensor_to_device(j->hx, dev, &j->x);
  if (j->st == LU_OK) j->st = lu_tensor_to_device(j->ht, dev, &j->t);
  if (j->st == LU_OK && j->grad_only) {
    j->st = lu_unet_train_grad(j->n, j->x, j->t, &j->o, &j->r.loss);
    lu_gradsync *g = lu_gradsync_of(j->n);
    if (j->st == LU_OK && g && lu_dist_thread_ok()) j->st = lu_gradsync_finish(g, NULL);
  } else if (j->st == LU_OK) j->st = lu_unet_train_step(j->n, j->x, j->t, &j->o, &j->r);
done:
  clock_gettime(CLOCK_MONOTONIC, &b);
  j->seconds = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  if (j->st != LU_OK) snprintf(j->msg, sizeof j->msg, "%s", lu_errmsg()); /* the message is per thread */
  lu_tensor_free(j->x);
  lu_tensor_free(j->t);
  j->x = j->t = NULL;
  lu_cl_unhold(); /* taken by l_train_step: the teardown at exit waits for this step */
  return NULL;
}

static void join(job *j) {
  if (j->started && !j->joined) {
    pthread_join(j->th, NULL);
    j->joined = 1;
  }
}

static job *check_job(lua_State *L, int i) { return luaL_checkudata(L, i, JOB_MT); }

static int j_gc(lua_State *L) {
  job *j = check_job(L, 1);
  join(j);
  lu_tensor_free(j->x);
  lu_tensor_free(j->t);
  j->x = j->t = NULL;
  return 0;
}

static int j_wait(lua_State *L) {
  job *j = check_job(L, 1);
  join(j);
  if (j->st != LU_OK) {
    lu_fail(j->st, "%s", j->msg);
    lu_lua_raise(L, j->st, "async.train_step");
  }
  lua_pushnumber(L, j->r.loss);
  lua_pushnumber(L, j->r.grad_norm);
  lua_pushnumber(L, j->seconds);
  return 3;
}

static int j_done(lua_State *L) {
  lua_pushboolean(L, check_job(L, 1)->joined);
  return 1;
}

static int start(lua_State *L, int grad_only) {
  lu_unet *n = lu_lua_check_net(L, 1);
  if (!lu_unet_device(n)) return luaL_argerror(L, 1, "network has no device");
  const lu_tensor *hx = lu_lua_check_tensor(L, 2), *ht = lu_lua_check_tensor(L, 3);
  int slot = (int)luaL_optinteger(L, 5, -1);
  if (slot >= 0 && grad_only) return luaL_argerror(L, 5, "a staged batch runs whole steps only");
  job *j = lua_newuserdatauv(L, sizeof *j, 3); /* uservalues: the network, x, target (alive while the job is) */
  memset(j, 0, sizeof *j);
  luaL_setmetatable(L, JOB_MT);
  for (int i = 1; i <= 3; i++) {
    lua_pushvalue(L, i);
    lua_setiuservalue(L, -2, i);
  }
  lu_lua_train_opts(L, 4, &j->o);
  j->n = n;
  j->grad_only = grad_only;
  j->slot = slot;
  j->hx = hx;
  j->ht = ht;
  LU_LCHECK(L, lu_cl_hold(), "async.train_step");
  if (pthread_create(&j->th, NULL, worker, j) != 0) {
    lu_cl_unhold();
    return luaL_error(L, "async.train_step: cannot start a thread");
  }
  j->started = 1;
  return 1;
}

static int l_train_step(lua_State *L) { return start(L, 0); }
static int l_train_grad(lua_State *L) { return start(L, 1); }

int lu_open_async(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", j_wait}, {"done", j_done}, {NULL, NULL}};
  if (luaL_newmetatable(L, JOB_MT)) {
    lua_newtable(L);
    lu_lua_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, j_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"train_step", l_train_step}, {"train_grad", l_train_grad}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
