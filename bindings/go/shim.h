#ifndef DESCENT_GO_SHIM_H
#define DESCENT_GO_SHIM_H
#include <descent/descent.h>
#include <stdint.h>
descent_status descent_go_set_schedule(descent_optimizer* opt, uintptr_t handle);
descent_status descent_go_filter(descent_optimizer* multi, size_t index, uintptr_t handle);
#endif
