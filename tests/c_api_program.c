/*
 * A C99 program that uses descent through its public header only, as a C client would. Built
 * with -std=c99 -Wall -Wextra -Werror -pedantic and run by ctest (test c_api_program). Prints one
 * line per check and exits non-zero if any check fails.
 */
#include <descent/descent.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

static void check(int ok, const char* what) {
  ++checks;
  if (!ok) ++failures;
  printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
}

/* A call that must succeed; prints the library's message when it does not. */
static int expect_ok(descent_status status, const descent_optimizer* opt, const char* what) {
  ++checks;
  if (status == DESCENT_OK) {
    printf("ok    %s\n", what);
    return 1;
  }
  ++failures;
  printf("FAIL  %s: %s: %s\n", what, descent_status_name(status),
         opt != NULL ? descent_optimizer_last_error(opt) : descent_last_error());
  return 0;
}

/* A call that must fail with `expected`, with a non-empty message on the handle (or thread). */
static void expect_error(descent_status status, descent_status expected,
                         const descent_optimizer* opt, const char* what) {
  const char* message = opt != NULL ? descent_optimizer_last_error(opt) : descent_last_error();
  const int ok = status == expected && message != NULL && message[0] != '\0';
  ++checks;
  if (!ok) ++failures;
  printf("%s  %s -> %s (expected %s): \"%s\"\n", ok ? "ok  " : "FAIL", what,
         descent_status_name(status), descent_status_name(expected),
         message != NULL ? message : "(null)");
}

static int close_to(double actual, double expected, double rel_tol) {
  return fabs(actual - expected) <= rel_tol * fabs(expected) + 1e-30;
}

static void test_library_info(void) {
  char expected[32];
  sprintf(expected, "%d.%d.%d", DESCENT_VERSION_MAJOR, DESCENT_VERSION_MINOR,
          DESCENT_VERSION_PATCH);
  check(descent_version_number() == DESCENT_VERSION_NUMBER,
        "descent_version_number matches header");
  check(strcmp(descent_version_string(), expected) == 0, "descent_version_string matches header");
  check(strcmp(descent_status_name(DESCENT_ERR_UNKNOWN_KIND), "DESCENT_ERR_UNKNOWN_KIND") == 0,
        "descent_status_name(DESCENT_ERR_UNKNOWN_KIND)");
  check(strcmp(descent_dtype_name(DESCENT_FLOAT32), "float32") == 0, "descent_dtype_name(FLOAT32)");
}

static void test_create_errors(void) {
  descent_optimizer* sentinel = (descent_optimizer*)&failures; /* never dereferenced */
  descent_optimizer* opt = sentinel;
  expect_error(descent_optimizer_create("no_such_optimizer", &opt, NULL, 0),
               DESCENT_ERR_UNKNOWN_KIND, NULL, "create(\"no_such_optimizer\")");
  check(opt == sentinel, "failed create leaves *out untouched");
  expect_error(descent_optimizer_create(NULL, &opt, NULL, 0), DESCENT_ERR_NULL_ARGUMENT, NULL,
               "create(NULL kind)");
  expect_error(descent_optimizer_create("sgd", NULL, NULL, 0), DESCENT_ERR_NULL_ARGUMENT, NULL,
               "create(NULL out)");
  descent_optimizer_free(NULL); /* documented to accept NULL */
}

/* SGD, lr = 0.5, w = 1, g = 1: w becomes 0.5 exactly. */
static void test_sgd_closed_form(void) {
  descent_optimizer* opt = NULL;
  float w = 1.0f;
  const float g = 1.0f;
  const char* names[1] = {"w"};
  void* params[1];
  const void* grads[1];
  params[0] = &w;
  grads[0] = &g;
  if (!expect_ok(descent_optimizer_create("sgd", &opt, NULL, 0), NULL, "create(\"sgd\")")) return;
  check(strcmp(descent_optimizer_kind(opt), "sgd") == 0, "descent_optimizer_kind is \"sgd\"");
  expect_ok(descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 0, NULL), opt,
            "add_parameter(w, float32 scalar)");
  expect_error(descent_optimizer_update(opt, 1, names, NULL, NULL, params, grads),
               DESCENT_ERR_INVALID_STATE, opt, "update before learning_rate is set");
  check(w == 1.0f, "failed update leaves the parameter alone");
  expect_ok(descent_optimizer_set_double(opt, "learning_rate", 0.5), opt, "set learning_rate 0.5");
  expect_ok(descent_optimizer_update(opt, 1, names, NULL, NULL, params, grads), opt, "sgd update");
  printf("      sgd: w = %.9g (expected 0.5)\n", w);
  check(w == 0.5f, "sgd lr=0.5 on w=1, g=1 gives 0.5");
  descent_optimizer_free(opt);
}

struct state_expectation {
  const char* key;
  int seen;
};

static void test_adam(void) {
  const double lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  descent_optimizer* opt = NULL;
  const int64_t weight_shape[2] = {2, 3};
  const int64_t bias_shape[1] = {3};
  float weight[6] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -0.25f};
  float bias[3] = {0.1f, 0.2f, 0.3f};
  const float weight_grad[6] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, 1e-3f};
  const float bias_grad[3] = {-1.0f, 2.0f, 0.5f};
  float weight0[6], m[6], v[6];
  const char* names[2] = {"layer.weight", "layer.bias"};
  const descent_dtype dtypes[2] = {DESCENT_FLOAT32, DESCENT_FLOAT32};
  const descent_dtype wrong_dtypes[2] = {DESCENT_FLOAT32, DESCENT_FLOAT64};
  const int64_t numels[2] = {6, 3};
  const int64_t wrong_numels[2] = {6, 4};
  const char* unknown_names[1] = {"layer.nope"};
  void* params[2];
  const void* grads[2];
  struct state_expectation keys[6] = {{"step", 0},           {"learning_rate", 0},
                                      {"layer.weight.m", 0}, {"layer.weight.v", 0},
                                      {"layer.bias.m", 0},   {"layer.bias.v", 0}};
  size_t count = 0, i, k, ndim = 0;
  int64_t shape[DESCENT_MAX_NDIM];
  descent_dtype dtype = DESCENT_FLOAT64;
  double value = 0.0, betas[2] = {0.0, 0.0};
  bool flag = true;
  uint64_t step = 0;
  float lr_state = 0.0f;
  int all_close = 1;

  params[0] = weight;
  params[1] = bias;
  grads[0] = weight_grad;
  grads[1] = bias_grad;
  memcpy(weight0, weight, sizeof weight);

  if (!expect_ok(descent_optimizer_create("adam", &opt, NULL, 0), NULL, "create(\"adam\")")) return;
  expect_ok(descent_optimizer_configure_json(
                opt,
                "{\"learning_rate\": 0.001, \"betas\": [0.9, 0.999], \"eps\": 1e-8, "
                "\"bias_correction\": false}"),
            opt, "configure_json");

  /* Hyperparameters read back. */
  expect_ok(descent_optimizer_get_double(opt, "eps", &value), opt, "get_double(eps)");
  check(value == eps, "eps reads back as configured");
  expect_ok(descent_optimizer_get_bool(opt, "bias_correction", &flag), opt,
            "get_bool(bias_correction)");
  check(flag == false, "bias_correction reads back false");
  expect_ok(descent_optimizer_get_doubles(opt, "betas", NULL, 0, &count), opt,
            "get_doubles(betas) length query");
  check(count == 2, "betas has two values");
  expect_error(descent_optimizer_get_doubles(opt, "betas", betas, 1, &count),
               DESCENT_ERR_BUFFER_TOO_SMALL, opt, "get_doubles(betas) into one slot");
  expect_ok(descent_optimizer_get_doubles(opt, "betas", betas, 2, &count), opt,
            "get_doubles(betas)");
  check(betas[0] == b1 && betas[1] == b2, "betas read back as configured");
  expect_ok(descent_optimizer_hyperparameter_count(opt, &count), opt, "hyperparameter_count");
  check(count >= 4, "adam has at least learning_rate, betas, eps, bias_correction");

  /* Configuration errors change nothing. */
  expect_error(descent_optimizer_configure_json(opt, "{\"eps\": 0.5, \"no_such_key\": 1}"),
               DESCENT_ERR_UNKNOWN_KEY, opt, "configure_json with an unknown key");
  check(strstr(descent_optimizer_last_error(opt), "no_such_key") != NULL,
        "the message names the unknown key");
  expect_ok(descent_optimizer_get_double(opt, "eps", &value), opt, "get_double(eps)");
  check(value == eps, "a failed configure_json changes nothing (all or nothing)");
  expect_error(descent_optimizer_configure_json(opt, "{\"eps\": "), DESCENT_ERR_PARSE, opt,
               "configure_json with malformed JSON");
  expect_error(descent_optimizer_set_double(opt, "eps", -1.0), DESCENT_ERR_OUT_OF_RANGE, opt,
               "set_double(eps, -1)");
  expect_error(descent_optimizer_set_bool(opt, "eps", true), DESCENT_ERR_WRONG_TYPE, opt,
               "set_bool(eps)");

  /* Two parameters. */
  expect_ok(descent_optimizer_add_parameter(opt, "layer.weight", DESCENT_FLOAT32, 2, weight_shape),
            opt, "add_parameter(layer.weight, (2, 3))");
  expect_ok(descent_optimizer_add_parameter(opt, "layer.bias", DESCENT_FLOAT32, 1, bias_shape), opt,
            "add_parameter(layer.bias, (3))");
  expect_error(descent_optimizer_add_parameter(opt, "layer.bias", DESCENT_FLOAT32, 1, bias_shape),
               DESCENT_ERR_DUPLICATE, opt, "add_parameter(layer.bias) twice");
  expect_ok(descent_optimizer_parameter_count(opt, &count), opt, "parameter_count");
  check(count == 2, "two parameters declared");

  /* Update errors change nothing. */
  expect_error(descent_optimizer_update(opt, 2, names, wrong_dtypes, numels, params, grads),
               DESCENT_ERR_DTYPE_MISMATCH, opt, "update with a wrong dtype");
  expect_error(descent_optimizer_update(opt, 2, names, dtypes, wrong_numels, params, grads),
               DESCENT_ERR_SHAPE_MISMATCH, opt, "update with a wrong element count");
  expect_error(descent_optimizer_update(opt, 1, unknown_names, NULL, NULL, params, grads),
               DESCENT_ERR_UNKNOWN_KEY, opt, "update of an undeclared parameter");
  check(memcmp(weight, weight0, sizeof weight) == 0, "failed updates leave parameters alone");

  /* First step against the closed form: with no bias correction and zero initial state,
   * p1 = p0 - lr * (1 - b1) g / (sqrt((1 - b2) g^2) + eps). */
  expect_ok(descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads), opt,
            "adam update 1");
  for (i = 0; i < 6; ++i) {
    const double g = weight_grad[i];
    const double expected = weight0[i] - lr * (1.0 - b1) * g / (sqrt((1.0 - b2) * g * g) + eps);
    if (!close_to(weight[i], expected, 1e-6)) {
      all_close = 0;
      printf("      layer.weight[%lu] = %.9g, expected %.9g\n", (unsigned long)i, weight[i],
             expected);
    }
  }
  printf("      adam step 1: layer.weight[0] = %.9g (closed form %.9g)\n", weight[0],
         weight0[0] - lr * (1.0 - b1) * weight_grad[0] /
                          (sqrt((1.0 - b2) * weight_grad[0] * weight_grad[0]) + eps));
  check(all_close, "adam first step matches the closed form (rel. 1e-6)");

  /* The state after one step: m = (1 - b1) g, v = (1 - b2) g^2. */
  expect_ok(descent_optimizer_state_get(opt, "layer.weight.m", DESCENT_FLOAT32, m, 6), opt,
            "state_get(layer.weight.m)");
  expect_ok(descent_optimizer_state_get(opt, "layer.weight.v", DESCENT_FLOAT32, v, 6), opt,
            "state_get(layer.weight.v)");
  all_close = 1;
  for (i = 0; i < 6; ++i) {
    const double g = weight_grad[i];
    all_close &= close_to(m[i], (1.0 - b1) * g, 1e-6) && close_to(v[i], (1.0 - b2) * g * g, 1e-6);
  }
  check(all_close, "m = (1 - b1) g and v = (1 - b2) g^2 after one step");

  expect_ok(descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads), opt,
            "adam update 2");
  expect_ok(descent_optimizer_update(opt, 2, names, NULL, NULL, params, grads), opt,
            "adam update 3 (no dtype/numel checks)");

  /* State keys and values. */
  expect_ok(descent_optimizer_state_count(opt, &count), opt, "state_count");
  printf("      %lu state keys:", (unsigned long)count);
  for (i = 0; i < count; ++i) {
    const char* key = NULL;
    if (descent_optimizer_state_key(opt, i, &key) != DESCENT_OK || key == NULL) {
      printf(" (state_key(%lu) failed)", (unsigned long)i);
      continue;
    }
    printf(" %s", key);
    for (k = 0; k < 6; ++k) {
      if (strcmp(key, keys[k].key) == 0) ++keys[k].seen;
    }
  }
  printf("\n");
  check(count == 6, "adam with two parameters has six state keys");
  for (k = 0; k < 6; ++k) {
    char what[64];
    sprintf(what, "state key \"%s\" appears once", keys[k].key);
    check(keys[k].seen == 1, what);
  }
  expect_ok(
      descent_optimizer_state_info(opt, "layer.weight.m", &dtype, &ndim, shape, DESCENT_MAX_NDIM),
      opt, "state_info(layer.weight.m)");
  check(dtype == DESCENT_FLOAT32 && ndim == 2 && shape[0] == 2 && shape[1] == 3,
        "layer.weight.m is float32 (2, 3)");
  expect_ok(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step, 1), opt,
            "state_get(step)");
  printf("      step = %lu\n", (unsigned long)step);
  check(step == 3, "step is 3 after three updates");
  expect_ok(descent_optimizer_state_get(opt, "learning_rate", DESCENT_FLOAT32, &lr_state, 1), opt,
            "state_get(learning_rate)");
  check(lr_state == (float)lr, "learning_rate state is float32(0.001)");
  expect_error(descent_optimizer_state_get(opt, "step", DESCENT_FLOAT32, &lr_state, 1),
               DESCENT_ERR_DTYPE_MISMATCH, opt, "state_get(step) as float32");
  expect_error(descent_optimizer_state_get(opt, "layer.weight.m", DESCENT_FLOAT32, m, 5),
               DESCENT_ERR_SHAPE_MISMATCH, opt, "state_get(layer.weight.m) with 5 elements");
  expect_error(descent_optimizer_state_get(opt, "no.such.key", DESCENT_FLOAT32, m, 1),
               DESCENT_ERR_UNKNOWN_KEY, opt, "state_get(no.such.key)");

  descent_optimizer_free(opt);
}

int main(void) {
  printf("descent %s, C API program\n", descent_version_string());
  test_library_info();
  test_create_errors();
  test_sgd_closed_form();
  test_adam();
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
