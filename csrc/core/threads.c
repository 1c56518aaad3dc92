/* lu_parallel_for (see threads.h). */
#include "core/threads.h"

#include <pthread.h>

typedef struct par_job {
  void (*fn)(void *, int64_t, int64_t);
  void *ctx;
  int64_t lo, hi;
  int started;
} par_job;

static void *par_main(void *p) {
  par_job *j = p;
  j->fn(j->ctx, j->lo, j->hi);
  return NULL;
}

lu_status lu_parallel_for(int threads, int64_t n, void (*fn)(void *ctx, int64_t lo, int64_t hi), void *ctx) {
  if (n <= 0) return LU_OK;
  if (threads < 1) threads = 1;
  if (threads > LU_MAX_THREADS) threads = LU_MAX_THREADS;
  if (threads > n) threads = (int)n;
  if (threads == 1) {
    fn(ctx, 0, n);
    return LU_OK;
  }
  pthread_t tid[LU_MAX_THREADS];
  par_job jobs[LU_MAX_THREADS];
  for (int t = 0; t < threads; t++) {
    jobs[t] = (par_job){fn, ctx, n * t / threads, n * (t + 1) / threads, 0};
    if (t == 0) continue;
    jobs[t].started = pthread_create(&tid[t], NULL, par_main, &jobs[t]) == 0;
    if (!jobs[t].started) fn(ctx, jobs[t].lo, jobs[t].hi); /* could not start a thread: run it here */
  }
  fn(ctx, jobs[0].lo, jobs[0].hi);
  for (int t = 1; t < threads; t++)
    if (jobs[t].started) pthread_join(tid[t], NULL);
  return LU_OK;
}
