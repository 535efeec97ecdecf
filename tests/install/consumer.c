/* A client of an installed descent, built by run_install_test.sh with the flags pkg-config or
 * CMake's find_package give it. Exits non-zero if the library does not work as expected. */
#include <descent/descent.h>

#include <stdio.h>

int main(void) {
  descent_optimizer* opt = NULL;
  float w[2] = {1.0f, 2.0f};
  const float g[2] = {1.0f, -1.0f};
  const int64_t shape[1] = {2};
  const char* names[1] = {"w"};
  void* params[1];
  const void* grads[1];
  descent_status status;
  params[0] = w;
  grads[0] = g;

  if (descent_version_number() != DESCENT_VERSION_NUMBER) {
    fprintf(stderr, "header version %d, library version %u\n", DESCENT_VERSION_NUMBER,
            descent_version_number());
    return 1;
  }
  status = descent_optimizer_create("sgd", &opt, NULL, 0);
  if (status == DESCENT_OK)
    status = descent_optimizer_configure_json(opt, "{\"learning_rate\": 0.5}");
  if (status == DESCENT_OK) {
    status = descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 1, shape);
  }
  if (status == DESCENT_OK) {
    status = descent_optimizer_update(opt, 1, names, NULL, NULL, params, grads);
  }
  if (status != DESCENT_OK) {
    fprintf(stderr, "%s: %s\n", descent_status_name(status),
            opt != NULL ? descent_optimizer_last_error(opt) : descent_last_error());
    descent_optimizer_free(opt);
    return 1;
  }
  descent_optimizer_free(opt);
  if (w[0] != 0.5f || w[1] != 2.5f) {
    fprintf(stderr, "sgd step gave (%g, %g), expected (0.5, 2.5)\n", w[0], w[1]);
    return 1;
  }
  printf("descent %s: sgd step ok\n", descent_version_string());
  return 0;
}
