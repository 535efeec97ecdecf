#ifndef DESCENT_GO_SHIM_H
#define DESCENT_GO_SHIM_H
#include <stdint.h>
#include <descent/descent.h>
descent_status descent_go_set_schedule(descent_optimizer* opt, uintptr_t handle);
descent_status descent_go_filter(descent_optimizer* multi, size_t index, uintptr_t handle);
/* descent_set_num_threads has no caller error buffer: this calls it and copies the thread-local
 * descent_last_error into error within one C call, on one OS thread. */
descent_status descent_go_set_num_threads(size_t n, char* error, size_t error_capacity);
#endif
