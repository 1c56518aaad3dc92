/* The one way library code splits work over threads: lu_parallel_for runs a function over
 * contiguous ranges of [0, n) on short-lived pthreads and joins them before returning. */
#ifndef LU_THREADS_H
#define LU_THREADS_H

#include <stdint.h>

#include "core/status.h"

#define LU_MAX_THREADS 64

/* Runs fn(ctx, lo, hi) over [0, n) split into min(threads, n, LU_MAX_THREADS) contiguous ranges
 * [n*t/T, n*(t+1)/T); the caller's thread runs range 0, and a range whose thread cannot start runs on
 * the caller too, so every range runs exactly once. threads <= 1 runs fn(ctx, 0, n) inline.
 * With n == threads each call gets one index t in [lo, hi): the form for "thread t of T" workers. */
lu_status lu_parallel_for(int threads, int64_t n, void (*fn)(void *ctx, int64_t lo, int64_t hi), void *ctx);

#endif
