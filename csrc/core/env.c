#include "core/env.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

const char *lu_env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

void lu_cache_dir(char *buf, size_t n, const char *sub) {
  const char *d = lu_env("LUNET_CACHE_DIR");
  if (d) { snprintf(buf, n, "%s", d); return; }
  const char *x = lu_env("XDG_CACHE_HOME"), *h = lu_env("HOME");
  const char *sep = sub && *sub ? "/" : "";
  if (x) snprintf(buf, n, "%s/lunet%s%s", x, sep, sub ? sub : "");
  else snprintf(buf, n, "%s/.cache/lunet%s%s", h ? h : "/tmp", sep, sub ? sub : "");
}

void lu_cache_file(char *buf, size_t n, const char *prefix, const char *device_name, const char *ext) {
  char dir[3072], name[256];
  size_t j = 0;
  for (size_t i = 0; device_name[i] && j + 1 < sizeof name; i++)
    name[j++] = isalnum((unsigned char)device_name[i]) ? device_name[i] : '_';
  name[j] = 0;
  lu_cache_dir(dir, sizeof dir, "");
  snprintf(buf, n, "%s/%s%s%s", dir, prefix, name, ext);
}
