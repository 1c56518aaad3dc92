#include "core/addrspace.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

int lu_addrspace(uint64_t *limit, uint64_t *used) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  *limit = (uint64_t)rl.rlim_cur;
  *used = 0;
  FILE *f = fopen("/proc/self/statm", "r"); /* first field: the whole mapped size, in pages */
  unsigned long long pages = 0;
  if (f) {
    if (fscanf(f, "%llu", &pages) != 1) pages = 0;
    fclose(f);
  }
  long ps = sysconf(_SC_PAGESIZE);
  *used = (uint64_t)pages * (uint64_t)(ps > 0 ? ps : 4096);
  return 1;
}

void lu_addrspace_note(char *buf, size_t n) {
  uint64_t limit, used;
  if (!lu_addrspace(&limit, &used)) { if (n) buf[0] = 0; return; }
  snprintf(buf, n, " (address-space limit, ulimit -v: %llu bytes, %llu in use)", (unsigned long long)limit,
           (unsigned long long)used);
}

lu_status lu_addrspace_check(size_t bytes, size_t mapped, const char *what, const char *where) {
  uint64_t limit, used;
  if (!lu_addrspace(&limit, &used)) return LU_OK;
  if (used <= limit && (uint64_t)mapped <= limit - used && LU_ADDRSPACE_RESERVE <= limit - used - mapped) return LU_OK;
  return lu_fail(LU_ENOMEM,
                 "out of memory: %zu bytes for %s on %s (address-space limit, ulimit -v: %llu bytes, %llu in use, "
                 "%llu kept free for the OpenCL driver)",
                 bytes, what, where, (unsigned long long)limit, (unsigned long long)used,
                 (unsigned long long)LU_ADDRSPACE_RESERVE);
}
