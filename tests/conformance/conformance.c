/* The conformance scenario (README.md beside this file) in C: the reference every binding must
 * reproduce byte for byte. */
#include <descent/descent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NW 48
#define NB 6

static descent_status schedule(uint64_t step, void* user_data, double* value, char* message,
                               size_t capacity) {
  (void)user_data;
  (void)message;
  (void)capacity;
  *value = 0.01 / ((double)step + 1.0);
  return DESCENT_OK;
}

static int fail(descent_optimizer* opt, const char* what, const char* error) {
  fprintf(stderr, "conformance: %s: %s\n", what, opt ? descent_optimizer_last_error(opt) : error);
  return 1;
}

static int make(const char* name, descent_optimizer** out) {
  char error[DESCENT_ERROR_CAPACITY];
  const int64_t wshape[2] = {8, 6}, bshape[1] = {NB};
  descent_status s;
  if (strcmp(name, "muon+adamw") == 0) {
    s = descent_multi_create_muon_adamw("{\"learning_rate\": 0.02}", "{\"learning_rate\": 0.01}",
                                        NULL, out, error, sizeof error);
  } else {
    s = descent_optimizer_create(name, out, error, sizeof error);
    if (s == DESCENT_OK)
      s = descent_optimizer_configure_json(
          *out, strcmp(name, "adamw") == 0 ? "{\"learning_rate\": 0.01, \"weight_decay\": 0.01}"
                                           : "{\"learning_rate\": 0.02, \"momentum\": 0.95}");
  }
  if (s != DESCENT_OK) return fail(s == DESCENT_OK ? NULL : *out, name, error);
  if (descent_optimizer_add_parameter(*out, "layer.weight", DESCENT_FLOAT32, 2, wshape) ||
      descent_optimizer_add_parameter(*out, "layer.bias", DESCENT_FLOAT32, 1, bshape) ||
      descent_optimizer_set_schedule_callback(*out, schedule, NULL, NULL))
    return fail(*out, name, NULL);
  return 0;
}

static int steps(descent_optimizer* opt, float* w, float* b, const float* tw, const float* tb,
                 int count) {
  float gw[NW], gb[NB];
  const char* names[2] = {"layer.weight", "layer.bias"};
  void* params[2];
  const void* grads[2];
  int k, i;
  params[0] = w;
  params[1] = b;
  grads[0] = gw;
  grads[1] = gb;
  for (k = 0; k < count; ++k) {
    for (i = 0; i < NW; ++i) gw[i] = w[i] - tw[i];
    for (i = 0; i < NB; ++i) gb[i] = b[i] - tb[i];
    if (descent_optimizer_update(opt, 2, names, NULL, NULL, params, grads))
      return fail(opt, "update", NULL);
  }
  return 0;
}

static int run(const char* dir, const char* name) {
  float w[NW], b[NB], tw[NW], tb[NB];
  char path[4096];
  descent_optimizer *first = NULL, *second = NULL;
  FILE* f;
  int i, rc = 1;
  for (i = 0; i < NW; ++i) {
    w[i] = 0.125f * (float)(i % 17) - 1.0f;
    tw[i] = 0.25f * (float)(i % 7);
  }
  for (i = 0; i < NB; ++i) {
    b[i] = 0.25f * (float)i;
    tb[i] = -0.5f;
  }
  snprintf(path, sizeof path, "%s/%s.state.safetensors", dir, name);
  if (make(name, &first) || steps(first, w, b, tw, tb, 25)) goto done;
  if (descent_optimizer_save(first, path)) {
    fail(first, "save", NULL);
    goto done;
  }
  if (make(name, &second)) goto done;
  if (descent_optimizer_load(second, path)) {
    fail(second, "load", NULL);
    goto done;
  }
  if (steps(second, w, b, tw, tb, 25)) goto done;
  snprintf(path, sizeof path, "%s/%s.params.bin", dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(w, sizeof w, 1, f) != 1 || fwrite(b, sizeof b, 1, f) != 1 || fclose(f) != 0) {
    fprintf(stderr, "conformance: cannot write %s\n", path);
    goto done;
  }
  rc = 0;
done:
  descent_optimizer_free(first);
  descent_optimizer_free(second);
  return rc;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: conformance_c <output-dir>\n");
    return 2;
  }
  if (run(argv[1], "adamw") || run(argv[1], "muon") || run(argv[1], "muon+adamw")) return 1;
  return 0;
}
