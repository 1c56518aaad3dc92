/* Event-based kernel profile (see profile.h). */
#include "cl/profile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"

#define MAX_ENTRIES 512
#define MAX_PENDING 4096

typedef struct pending {
  cl_event start, end; /* start NULL: the event's own START..END */
  char name[96];
} pending;

static lu_profile_entry entries[MAX_ENTRIES];
static int n_entries;
static pending pend[MAX_PENDING];
static int n_pend;
static int enabled = -1;
/* a core.async worker launches beside the caller's thread */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int lu_profile_enabled(void) {
  if (enabled < 0) {
    const char *e = lu_env("LUNET_PROFILE");
    enabled = e && strcmp(e, "0") != 0;
  }
  return enabled;
}

cl_command_queue_properties lu_profile_queue_props(void) {
  return lu_profile_enabled() ? CL_QUEUE_PROFILING_ENABLE : 0;
}

static void charge(const char *name, double dt) {
  for (int i = 0; i < n_entries; i++)
    if (strcmp(entries[i].name, name) == 0) {
      entries[i].count++;
      entries[i].seconds += dt;
      return;
    }
  if (n_entries == MAX_ENTRIES) return;
  lu_profile_entry *e = &entries[n_entries++];
  snprintf(e->name, sizeof e->name, "%s", name);
  e->count = 1;
  e->seconds = dt;
}

/* Waits for every pending event (in queue order, so this is one wait per queue in practice) and charges
 * them. Called with mu held. */
static void resolve_locked(void) {
  for (int i = 0; i < n_pend; i++) {
    pending *p = &pend[i];
    cl_ulong t0 = 0, t1 = 0;
    cl_int e = clWaitForEvents(1, &p->end);
    if (e == CL_SUCCESS) e = clGetEventProfilingInfo(p->end, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (e == CL_SUCCESS)
      e = p->start ? clGetEventProfilingInfo(p->start, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL)
                   : clGetEventProfilingInfo(p->end, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    /* a command that failed or a driver without timestamps is counted with no time */
    charge(p->name, e == CL_SUCCESS && t1 > t0 ? 1e-9 * (double)(t1 - t0) : 0.0);
    if (p->start) clReleaseEvent(p->start);
    clReleaseEvent(p->end);
  }
  n_pend = 0;
}

void lu_profile_record_span(cl_event start, cl_event end, const char *name) {
  if (!end) {
    if (start) clReleaseEvent(start);
    return;
  }
  pthread_mutex_lock(&mu);
  if (n_pend == MAX_PENDING) resolve_locked(); /* one wait per MAX_PENDING launches */
  pending *p = &pend[n_pend++];
  p->start = start;
  p->end = end;
  snprintf(p->name, sizeof p->name, "%s", name);
  pthread_mutex_unlock(&mu);
}

void lu_profile_record(cl_event ev, const char *name) { lu_profile_record_span(NULL, ev, name); }

const lu_profile_entry *lu_profile_entries(int *n) {
  pthread_mutex_lock(&mu);
  resolve_locked();
  *n = n_entries;
  pthread_mutex_unlock(&mu);
  return entries;
}

void lu_profile_reset(void) {
  pthread_mutex_lock(&mu);
  resolve_locked();
  n_entries = 0;
  pthread_mutex_unlock(&mu);
}

static int by_time(const void *a, const void *b) {
  double x = ((const lu_profile_entry *)a)->seconds, y = ((const lu_profile_entry *)b)->seconds;
  return (x < y) - (x > y);
}

void lu_profile_print(FILE *f) {
  if (!lu_profile_enabled()) return;
  pthread_mutex_lock(&mu);
  resolve_locked();
  if (n_entries == 0) {
    pthread_mutex_unlock(&mu);
    return;
  }
  lu_profile_entry *s = malloc((size_t)n_entries * sizeof *s);
  if (!s) {
    pthread_mutex_unlock(&mu);
    return;
  }
  memcpy(s, entries, (size_t)n_entries * sizeof *s);
  int n = n_entries;
  pthread_mutex_unlock(&mu);
  qsort(s, (size_t)n, sizeof *s, by_time);
  double total = 0;
  long launches = 0;
  for (int i = 0; i < n; i++) total += s[i].seconds, launches += s[i].count;
  fprintf(f, "lunet profile (device time from OpenCL events, LUNET_PROFILE=1)\n");
  fprintf(f, "%-48s %9s %12s %12s %7s\n", "kernel", "launches", "total ms", "mean us", "share");
  for (int i = 0; i < n; i++)
    fprintf(f, "%-48s %9ld %12.3f %12.2f %6.1f%%\n", s[i].name, s[i].count, 1e3 * s[i].seconds,
            1e6 * s[i].seconds / (double)s[i].count, total > 0 ? 100.0 * s[i].seconds / total : 0.0);
  fprintf(f, "%-48s %9ld %12.3f\n", "total", launches, 1e3 * total);
  free(s);
}

/* ---- host waits (profile.h) ---- */
static long n_launches;
static int n_waits;
static lu_host_wait wait_log[LU_WAIT_LOG];

void lu_count_launch(void) {
  pthread_mutex_lock(&mu);
  n_launches++;
  pthread_mutex_unlock(&mu);
}

void lu_note_host_wait(const char *what) {
  pthread_mutex_lock(&mu);
  if (n_waits < LU_WAIT_LOG) {
    wait_log[n_waits].launches_before = n_launches;
    snprintf(wait_log[n_waits].what, sizeof wait_log[n_waits].what, "%s", what ? what : "?");
  }
  n_waits++;
  pthread_mutex_unlock(&mu);
}

long lu_host_waits(int *n, const lu_host_wait **log) {
  pthread_mutex_lock(&mu);
  long l = n_launches;
  *n = n_waits;
  *log = wait_log;
  pthread_mutex_unlock(&mu);
  return l;
}

void lu_host_waits_reset(void) {
  pthread_mutex_lock(&mu);
  n_launches = 0;
  n_waits = 0;
  pthread_mutex_unlock(&mu);
}
