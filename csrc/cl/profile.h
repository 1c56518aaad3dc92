/* Opt-in device time per kernel (LUNET_PROFILE=1), from OpenCL event profiling: queues are created with
 * CL_QUEUE_PROFILING_ENABLE, every launch and GEMM keeps its event, and the events are read (START..END on the
 * device's clock) only when the table is asked for or the pending list is full, so the queue is never
 * drained per kernel and the step's own overlap stays as it is. LUNET_PROFILE_SHAPES=1 keys entries by name
 * and global size. At exit the table goes to stderr (kernel, launches, total ms, mean us, share). */
#ifndef LU_CL_PROFILE_H
#define LU_CL_PROFILE_H

#include <stdio.h>

#include "cl/device.h"

typedef struct lu_profile_entry {
  char name[96];
  long count;
  double seconds; /* device time, summed over the launches */
} lu_profile_entry;

/* Whether LUNET_PROFILE is set (read once). */
int lu_profile_enabled(void);
/* The queue properties for a new queue (profiling on when enabled). */
cl_command_queue_properties lu_profile_queue_props(void);
/* Where a launch should put its event: ev when profiling, else NULL (no event is created). */
static inline cl_event *lu_profile_event(cl_event *ev) {
  *ev = NULL;
  return lu_profile_enabled() ? ev : NULL;
}
/* Charges the event's device time to name later; takes the event (NULL is ignored). */
void lu_profile_record(cl_event ev, const char *name);
/* Same for a span of several commands (a CLBlast routine): from the end of `start` (a marker enqueued before
 * them) to the end of `end`; takes both events. */
void lu_profile_record_span(cl_event start, cl_event end, const char *name);
/* The entries so far (*n of them), after waiting for the pending events; reset clears them. */
const lu_profile_entry *lu_profile_entries(int *n);
void lu_profile_reset(void);
/* Resolves pending events and prints the table to f (nothing when profiling is off or nothing ran). */
void lu_profile_print(FILE *f);

/* Host waits, always counted (a mutex and a counter: cheap next to a launch), so a spec can show that a
 * training step queues all of its work before the host waits for anything: lu_count_launch at every kernel
 * launch or BLAS call, lu_note_host_wait at every blocking read/write, finish or event wait, recording how
 * many launches came before it. The log keeps the first LU_WAIT_LOG waits since the last reset. */
#define LU_WAIT_LOG 64
typedef struct lu_host_wait {
  long launches_before;
  char what[48];
} lu_host_wait;
void lu_count_launch(void);
void lu_note_host_wait(const char *what);
/* launches since the reset; *n waits (all of them, even past the log) and the log */
long lu_host_waits(int *n, const lu_host_wait **log);
void lu_host_waits_reset(void);

#endif
