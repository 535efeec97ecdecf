/* Compiled with -fsyntax-only as strict C99 (see tests/CMakeLists.txt): the public header must be
 * self-contained, warning-free C and usable without any other include. */
#include <descent/descent.h>

#if DESCENT_VERSION_NUMBER != \
    (DESCENT_VERSION_MAJOR * 10000 + DESCENT_VERSION_MINOR * 100 + DESCENT_VERSION_PATCH)
#error "DESCENT_VERSION_NUMBER does not match its parts"
#endif

/* Status and dtype values are part of the ABI. */
typedef char check_ok_is_zero[DESCENT_OK == 0 ? 1 : -1];
typedef char check_float32_is_one[DESCENT_FLOAT32 == 1 ? 1 : -1];
typedef char check_internal_is_99[DESCENT_ERR_INTERNAL == 99 ? 1 : -1];

int descent_header_check(void);

int descent_header_check(void) {
  descent_optimizer* opt = NULL;
  descent_status status = descent_optimizer_create("adam", &opt, NULL, 0);
  const char* names[1] = {"w"};
  float w[1] = {1.0f};
  const float g[1] = {1.0f};
  void* params[1];
  const void* grads[1];
  const int64_t shape[DESCENT_MAX_NDIM] = {1};
  descent_dtype dtype = DESCENT_FLOAT32;
  descent_value_type type = DESCENT_VALUE_NONE;
  size_t count = 0;
  bool flag = false;
  params[0] = w;
  grads[0] = g;
  (void)descent_optimizer_add_parameter(opt, names[0], dtype, 1, shape);
  (void)descent_optimizer_update(opt, 1, names, NULL, NULL, params, grads);
  (void)descent_optimizer_hyperparameter_type(opt, "eps", &type);
  (void)descent_optimizer_get_bool(opt, "bias_correction", &flag);
  (void)descent_optimizer_state_count(opt, &count);
  descent_optimizer_free(opt);
  return (int)status + (int)descent_version_number() + (descent_last_error() != NULL) + (int)type +
         (int)count + (int)flag;
}
