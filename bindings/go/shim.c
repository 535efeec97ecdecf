// C side of the callbacks: the function pointers handed to libdescent, and the conversion of a
// cgo.Handle (uintptr_t) to and from the library's void* user_data, done here so that Go never
// converts an integer to an unsafe.Pointer.
#include "shim.h"
#include <stdint.h>
#include <string.h>
#include "_cgo_export.h"

static descent_status schedule_tramp(uint64_t step, void* user_data, double* value, char* message,
                                     size_t message_capacity) {
  return descentGoSchedule(step, (uintptr_t)user_data, value, message, message_capacity);
}

static descent_status filter_tramp(const char* name, size_t ndim, const int64_t* shape,
                                   void* user_data, bool* accept, char* message,
                                   size_t message_capacity) {
  /* _cgo_export.h drops const */
  return descentGoFilter((char*)name, ndim, (int64_t*)shape, (uintptr_t)user_data, accept, message,
                         message_capacity);
}

static void free_tramp(void* user_data) {
  descentGoFree((uintptr_t)user_data);
}

descent_status descent_go_set_schedule(descent_optimizer* opt, uintptr_t handle) {
  return descent_optimizer_set_schedule_callback(opt, schedule_tramp, (void*)handle, free_tramp);
}

descent_status descent_go_filter(descent_optimizer* multi, size_t index, uintptr_t handle) {
  return descent_multi_filter_callback(multi, index, filter_tramp, (void*)handle, free_tramp);
}
