/* The C side of bench_update.py: the same update_indexed call (adamw, float32, N tensors of M
 * floats, state initialised, argument arrays built once), timed in C.
 * usage: c_update N M batches calls  ->  prints min and median microseconds per call */
#include <descent/descent.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}
int main(int argc, char** argv) {
  size_t n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000, m = argc > 2 ? strtoul(argv[2], 0, 10) : 10;
  int batches = argc > 3 ? atoi(argv[3]) : 31, calls = argc > 4 ? atoi(argv[4]) : 100;
  descent_optimizer* opt;
  char err[DESCENT_ERROR_CAPACITY], name[64];
  if (descent_optimizer_create("adamw", &opt, err, sizeof err))
    return fprintf(stderr, "%s\n", err), 1;
  descent_optimizer_configure_json(opt, "{\"learning_rate\": 0.001}");
  size_t* idx = malloc(n * sizeof *idx);
  void** p = malloc(n * sizeof *p);
  const void** g = malloc(n * sizeof *g);
  int64_t shape[1] = {(int64_t)m};
  for (size_t i = 0; i < n; ++i) {
    snprintf(name, sizeof name, "layers.%zu.weight", i);
    if (descent_optimizer_add_parameter(opt, name, DESCENT_FLOAT32, 1, shape)) return 1;
    idx[i] = i;
    p[i] = calloc(m, sizeof(float));
    float* gi = calloc(m, sizeof(float));
    for (size_t j = 0; j < m; ++j) gi[j] = 0.001f * (float)(j + 1);
    g[i] = gi;
  }
  double* t = malloc(batches * sizeof *t);
  for (int b = -1; b < batches; ++b) {
    double t0 = now();
    for (int c = 0; c < calls; ++c)
      if (descent_optimizer_update_indexed(opt, n, idx, NULL, NULL, p, g))
        return fprintf(stderr, "%s\n", descent_optimizer_last_error(opt)), 1;
    if (b >= 0) t[b] = (now() - t0) / calls;
  }
  qsort(t, batches, sizeof *t, cmp);
  printf("%.2f %.2f\n", t[0], t[batches / 2]);
  descent_optimizer_free(opt);
  return 0;
}
