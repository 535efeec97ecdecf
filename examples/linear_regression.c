/*
 * linear_regression: fits a linear model y = x W + b to synthetic data with a descent optimizer.
 *
 *   linear_regression [kind [json-config [steps]]]
 *
 *   kind         any optimizer kind: sgd, rmsprop, adagrad, adadelta, adam, adamw (default),
 *                adamax, lion
 *   json-config  hyperparameters applied on top of this example's defaults,
 *                e.g. '{"learning_rate": 0.01, "betas": [0.9, 0.99]}'
 *   steps        number of full-batch steps (default 500)
 *
 * The data come from a fixed-seed generator, so every run is the same. The loss is the mean
 * squared error and its gradient is written out by hand. The program exits 0 when the final
 * loss is at least 100 times lower than the initial one, 1 when it is not, 2 on a usage or
 * library error.
 */
#include <descent/descent.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SAMPLES 256
#define N_IN 3
#define N_OUT 2
#define REQUIRED_IMPROVEMENT 100.0

/* A small linear congruential generator (Knuth's MMIX constants): same data on every machine. */
static uint64_t rng_state = 42;

static double uniform(double lo, double hi) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0; /* 2^53 */
}

/* Learning rates that fit this problem well; any of them can be overridden from the command
 * line. Kinds not listed get 0.01. */
static const char* default_config(const char* kind) {
  static const struct {
    const char* kind;
    const char* json;
  } defaults[] = {
      {"sgd", "{\"learning_rate\": 0.1, \"momentum\": 0.9}"},
      {"rmsprop", "{\"learning_rate\": 0.01}"},
      {"adagrad", "{\"learning_rate\": 0.5}"},
      {"adadelta", "{\"learning_rate\": 1.0, \"eps\": 1e-4}"},
      {"adam", "{\"learning_rate\": 0.05}"},
      {"adamw", "{\"learning_rate\": 0.05, \"weight_decay\": 0.0001}"},
      {"adamax", "{\"learning_rate\": 0.05}"},
      {"lion", "{\"learning_rate\": 0.02}"},
  };
  size_t i;
  for (i = 0; i < sizeof defaults / sizeof defaults[0]; ++i) {
    if (strcmp(defaults[i].kind, kind) == 0) return defaults[i].json;
  }
  return "{\"learning_rate\": 0.01}";
}

/* The training data and the model; a gradient has the model's layout. */
struct dataset {
  float x[N_SAMPLES][N_IN];
  float y[N_SAMPLES][N_OUT];
};
struct model {
  float w[N_IN][N_OUT]; /* "weight", shape (N_IN, N_OUT), row-major */
  float b[N_OUT];       /* "bias", shape (N_OUT) */
};

/* Mean squared error of the model on the data; with grad non-NULL also its gradient. */
static double loss_and_gradient(const struct dataset* data, const struct model* m,
                                struct model* grad) {
  const double scale = 2.0 / (N_SAMPLES * N_OUT); /* d(mean r^2)/dr = 2 r / count */
  double loss = 0.0;
  double dw[N_IN][N_OUT] = {{0}};
  double db[N_OUT] = {0};
  int n, i, o;
  for (n = 0; n < N_SAMPLES; ++n) {
    for (o = 0; o < N_OUT; ++o) {
      double r = m->b[o];
      for (i = 0; i < N_IN; ++i) r += (double)data->x[n][i] * m->w[i][o];
      r -= data->y[n][o];
      loss += r * r;
      db[o] += r;
      for (i = 0; i < N_IN; ++i) dw[i][o] += (double)data->x[n][i] * r;
    }
  }
  if (grad != NULL) {
    for (o = 0; o < N_OUT; ++o) {
      grad->b[o] = (float)(scale * db[o]);
      for (i = 0; i < N_IN; ++i) grad->w[i][o] = (float)(scale * dw[i][o]);
    }
  }
  return loss / (N_SAMPLES * N_OUT);
}

static int fail(descent_optimizer* opt, const char* what) {
  fprintf(stderr, "linear_regression: %s: %s\n", what,
          opt != NULL ? descent_optimizer_last_error(opt) : descent_last_error());
  descent_optimizer_free(opt);
  return 2;
}

int main(int argc, char** argv) {
  const char* kind = argc > 1 ? argv[1] : "adamw";
  const char* user_config = argc > 2 ? argv[2] : NULL;
  long steps = 500;
  static const struct model truth = {{{1.5f, -2.0f}, {0.5f, 0.25f}, {-1.0f, 3.0f}}, {0.3f, -0.7f}};
  static struct dataset data;
  struct model model, grad;
  const int64_t w_shape[2] = {N_IN, N_OUT};
  const int64_t b_shape[1] = {N_OUT};
  const char* names[2] = {"weight", "bias"};
  const descent_dtype dtypes[2] = {DESCENT_FLOAT32, DESCENT_FLOAT32};
  const int64_t numels[2] = {N_IN * N_OUT, N_OUT};
  void* params[2];
  const void* grads[2];
  descent_optimizer* opt = NULL;
  double initial_loss, final_loss;
  uint64_t step_count = 0;
  long step;
  int n, i, o;

  if (argc > 4 || (argc > 1 && strcmp(argv[1], "--help") == 0)) {
    fprintf(stderr, "usage: %s [kind [json-config [steps]]]\n", argv[0]);
    return 2;
  }
  if (argc > 3) {
    char* end = NULL;
    steps = strtol(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || steps <= 0) {
      fprintf(stderr, "linear_regression: steps must be a positive integer, got '%s'\n", argv[3]);
      return 2;
    }
  }

  /* Synthetic data: x uniform in [-1, 1), y = x W* + b* plus a little noise. */
  for (n = 0; n < N_SAMPLES; ++n) {
    for (i = 0; i < N_IN; ++i) data.x[n][i] = (float)uniform(-1.0, 1.0);
    for (o = 0; o < N_OUT; ++o) {
      double t = truth.b[o] + uniform(-0.01, 0.01);
      for (i = 0; i < N_IN; ++i) t += (double)data.x[n][i] * truth.w[i][o];
      data.y[n][o] = (float)t;
    }
  }
  /* Initial model: small random weight, zero bias. */
  for (i = 0; i < N_IN; ++i) {
    for (o = 0; o < N_OUT; ++o) model.w[i][o] = (float)uniform(-0.1, 0.1);
  }
  for (o = 0; o < N_OUT; ++o) model.b[o] = 0.0f;

  /* create -> configure -> declare parameters -> update ... -> free */
  if (descent_optimizer_create(kind, &opt, NULL, 0) != DESCENT_OK) return fail(NULL, "create");
  if (descent_optimizer_configure_json(opt, default_config(kind)) != DESCENT_OK) {
    return fail(opt, "default configuration");
  }
  if (user_config != NULL && descent_optimizer_configure_json(opt, user_config) != DESCENT_OK) {
    return fail(opt, "configuration from the command line");
  }
  if (descent_optimizer_add_parameter(opt, "weight", DESCENT_FLOAT32, 2, w_shape) != DESCENT_OK ||
      descent_optimizer_add_parameter(opt, "bias", DESCENT_FLOAT32, 1, b_shape) != DESCENT_OK) {
    return fail(opt, "add_parameter");
  }

  params[0] = model.w;
  params[1] = model.b;
  grads[0] = grad.w;
  grads[1] = grad.b;
  initial_loss = loss_and_gradient(&data, &model, NULL);
  printf("%s, %ld steps, %d samples, weight (%d, %d), bias (%d)\n", kind, steps, N_SAMPLES, N_IN,
         N_OUT, N_OUT);
  for (step = 0; step < steps; ++step) {
    const double loss = loss_and_gradient(&data, &model, &grad);
    if (step % (steps >= 10 ? steps / 10 : 1) == 0) printf("step %5ld  loss %.6e\n", step, loss);
    /* dtypes and numels are optional checks against the declared parameters. */
    if (descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads) != DESCENT_OK) {
      return fail(opt, "update");
    }
  }
  final_loss = loss_and_gradient(&data, &model, NULL);

  /* The optimizer's state is readable: here, its step counter. */
  if (descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step_count, 1) != DESCENT_OK) {
    return fail(opt, "state_get(step)");
  }
  descent_optimizer_free(opt);

  printf("final loss %.6e after %llu steps (initial %.6e, %.0fx lower)\n", final_loss,
         (unsigned long long)step_count, initial_loss, initial_loss / final_loss);
  printf("learned vs true:\n");
  for (i = 0; i < N_IN; ++i) {
    for (o = 0; o < N_OUT; ++o) {
      printf("  weight[%d][%d] = %8.4f  (%8.4f)\n", i, o, model.w[i][o], truth.w[i][o]);
    }
  }
  for (o = 0; o < N_OUT; ++o) {
    printf("  bias[%d]      = %8.4f  (%8.4f)\n", o, model.b[o], truth.b[o]);
  }

  if (!(final_loss * REQUIRED_IMPROVEMENT <= initial_loss)) {
    fprintf(stderr, "linear_regression: the loss fell by less than %.0fx\n", REQUIRED_IMPROVEMENT);
    return 1;
  }
  return 0;
}
