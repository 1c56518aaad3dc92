/* Weak stand-ins for the device layer so the image readers link without csrc/cl (never called:
 * the harnesses only make host tensors). The real definitions win when they are linked. */
#include <stddef.h>
__attribute__((weak)) int lu_buffer_alloc(void) { return 1; }
__attribute__((weak)) int lu_buffer_alloc_for(void) { return 1; }
__attribute__((weak)) void lu_buffer_release(void) {}
__attribute__((weak)) const char *lu_cl_errname(void) { return "no device in fuzz build"; }
__attribute__((weak)) void lu_note_host_wait(void) {}
