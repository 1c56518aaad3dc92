/* Opt-in time per kernel (LUNET_PROFILE=1): every launch and GEMM is followed by clFinish and its wall time
 * is charged to its name (LUNET_PROFILE_SHAPES=1: name and global size), so a training step can be broken
 * down without an external profiler. Off by default: the finish after each launch serialises the queue. */
#ifndef LU_CL_PROFILE_H
#define LU_CL_PROFILE_H

#include "cl/device.h"

typedef struct lu_profile_entry {
  char name[96];
  long count;
  double seconds;
} lu_profile_entry;

/* Whether LUNET_PROFILE is set (read once). */
int lu_profile_enabled(void);
/* Start time of a profiled launch (0 when profiling is off). */
double lu_profile_begin(void);
/* Finishes dev's queue and charges the time since t0 to name (no-op when profiling is off). */
void lu_profile_end(lu_device *dev, double t0, const char *name);
/* The entries so far (*n of them); reset clears them. */
const lu_profile_entry *lu_profile_entries(int *n);
void lu_profile_reset(void);

#endif
