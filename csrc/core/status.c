#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LU_MSG_MAX 2048
static _Thread_local char lu_msg[LU_MSG_MAX];

lu_status lu_fail(lu_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(lu_msg, sizeof lu_msg, fmt, ap);
  va_end(ap);
  return st;
}

lu_status lu_fail_context(lu_status st, const char *fmt, ...) {
  char prefix[LU_MSG_MAX / 2], old[LU_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, lu_msg, sizeof old);
  /* the combined message may be cut at LU_MSG_MAX: the start (the context) matters most */
  size_t n = strlen(prefix);
  memcpy(lu_msg, prefix, n);
  lu_msg[n] = ':';
  lu_msg[n + 1] = ' ';
  size_t room = LU_MSG_MAX - n - 3;
  size_t m = strnlen(old, room);
  memcpy(lu_msg + n + 2, old, m);
  lu_msg[n + 2 + m] = 0;
  return st;
}

const char *lu_errmsg(void) { return lu_msg[0] ? lu_msg : "unknown error"; }
void lu_clear_error(void) { lu_msg[0] = 0; }

const char *lu_status_name(lu_status st) {
  switch (st) {
  case LU_OK: return "ok";
  case LU_EARG: return "bad argument";
  case LU_ENOMEM: return "out of memory";
  case LU_EIO: return "i/o error";
  case LU_EFORMAT: return "bad format";
  case LU_ECL: return "opencl error";
  case LU_EBLAS: return "clblast error";
  case LU_ESTATE: return "bad state";
  case LU_EUNSUPPORTED: return "unsupported";
  }
  return "unknown";
}
