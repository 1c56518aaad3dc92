#include "core/env.h"

#include <stdio.h>
#include <stdlib.h>

const char *lu_env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

int lu_env_int(const char *name, int dflt) {
  const char *v = lu_env(name);
  if (!v) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  return end == v ? dflt : (int)x;
}

void lu_cache_dir(char *buf, size_t n, const char *sub) {
  const char *d = lu_env("LUNET_CACHE_DIR");
  if (d) { snprintf(buf, n, "%s", d); return; }
  const char *x = lu_env("XDG_CACHE_HOME"), *h = lu_env("HOME");
  const char *sep = sub && *sub ? "/" : "";
  if (x) snprintf(buf, n, "%s/lunet%s%s", x, sep, sub ? sub : "");
  else snprintf(buf, n, "%s/.cache/lunet%s%s", h ? h : "/tmp", sep, sub ? sub : "");
}
