#include "cl/profile.h"

#include "core/env.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ENTRIES 512

static lu_profile_entry entries[MAX_ENTRIES];
static int n_entries;
static int enabled = -1;

int lu_profile_enabled(void) {
  if (enabled < 0) {
    const char *e = lu_env("LUNET_PROFILE");
    enabled = e && strcmp(e, "0") != 0;
  }
  return enabled;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double lu_profile_begin(void) { return lu_profile_enabled() ? wall() : 0.0; }

void lu_profile_end(lu_device *dev, double t0, const char *name) {
  if (!lu_profile_enabled() || !dev) return;
  clFinish(dev->queue);
  double dt = wall() - t0;
  for (int i = 0; i < n_entries; i++)
    if (strcmp(entries[i].name, name) == 0) {
      entries[i].count++;
      entries[i].seconds += dt;
      return;
    }
  if (n_entries == MAX_ENTRIES) return;
  lu_profile_entry *e = &entries[n_entries++];
  strncpy(e->name, name, sizeof e->name - 1);
  e->name[sizeof e->name - 1] = 0;
  e->count = 1;
  e->seconds = dt;
}

const lu_profile_entry *lu_profile_entries(int *n) {
  *n = n_entries;
  return entries;
}

void lu_profile_reset(void) { n_entries = 0; }
