/* libFuzzer harness for the restricted unpickler: any input either fails with a message or yields a
 * value tree whose walk stays inside it; a symbolic global is listed so that path is reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fmt/pickle.h"

/* Visits at most a budget of nodes: values may be shared (a DAG through the memo), so an unbounded
 * walk could take exponential time on a small input; the library's own conversion caches shared values. */
static size_t budget;
static size_t walk(const lu_pv *v, int depth) {
  if (!v || depth > 64 || budget == 0) return 0;
  budget--;
  size_t n = 1;
  if (v->kind == LU_PV_STR || v->kind == LU_PV_BYTES) n += v->len ? (size_t)(unsigned char)v->s[v->len - 1] : 0;
  for (size_t i = 0; i < v->n; i++) n += walk(v->items[i], depth + 1);
  for (int d = 0; d < v->ndim; d++) n += (size_t)v->shape[d];
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const sym[] = {"nnunetv2.postprocessing.remove_connected_components.remove_all_but_largest_component_from_segmentation", NULL};
  lu_pickle_opts o = {0};
  o.where = "fuzz.pkl";
  o.symbolic = sym;
  o.max_items = 1 << 20;
  lu_unpickler *u;
  lu_pv *root;
  if (lu_unpickle(data, size, &o, &u, &root) != LU_OK) {
    if (!strstr(lu_errmsg(), "fuzz.pkl") && !strstr(lu_errmsg(), "no memory")) abort(); /* every error names the input */
    return 0;
  }
  budget = 100000;
  volatile size_t n = walk(root, 0);
  (void)n;
  lu_unpickler_free(u);
  return 0;
}
