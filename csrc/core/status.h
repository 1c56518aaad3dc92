/* Status codes and the per-thread error message: every lu_ function that can fail returns an
 * lu_status and, when it is not LU_OK, leaves a message naming the operation and its inputs. */
#ifndef LU_STATUS_H
#define LU_STATUS_H

typedef enum lu_status {
  LU_OK = 0,
  LU_EARG,         /* bad argument: shape, dtype, range */
  LU_ENOMEM,       /* host or device allocation failed */
  LU_EIO,          /* a file could not be opened, read or written */
  LU_EFORMAT,      /* a file's content is malformed or unsupported */
  LU_ECL,          /* an OpenCL call failed */
  LU_EBLAS,        /* CLBlast failed */
  LU_ESTATE,       /* called in the wrong state (no device, freed object) */
  LU_EUNSUPPORTED  /* valid request that this build does not handle */
} lu_status;

/* Records the message for this thread and returns st, so callers write `return lu_fail(...)`. */
lu_status lu_fail(lu_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes context to the current message (for callers that add what they were doing). */
lu_status lu_fail_context(lu_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *lu_errmsg(void);
const char *lu_status_name(lu_status st);
void lu_clear_error(void);

#define LU_TRY(expr) do { lu_status lu_try_st_ = (expr); if (lu_try_st_ != LU_OK) return lu_try_st_; } while (0)

#endif
