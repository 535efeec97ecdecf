/*
 * fashion_mnist_mpi: the Fashion-MNIST MLP of fashion_mnist.c trained data-parallel over MPI,
 * with descent's optimizer state sharded across the ranks (ZeRO-1, docs/distributed.md).
 *
 *   mpirun -np N fashion_mnist_mpi [--optimizer adamw|muon+adamw] [--epochs E] [--batch B]
 *                                  [--steps S] [--seed N] [--data DIR]
 *
 * Every rank holds the whole model and draws the same data order; each step a global batch of B
 * examples is split into N contiguous slices, rank r computes the gradient of the mean loss over
 * its slice, the gradients are averaged with MPI_Allreduce (weighted by slice size), and the
 * sharded optimizer updates each rank's part of the parameters and all-gathers the rest, so every
 * rank ends the step with the same parameters. Rank 0 prints the test accuracy after each epoch
 * and at the end ("final test accuracy: X"). Settings as fashion_mnist's defaults: AdamW lr 1e-3,
 * weight decay 0.05; Muon+AdamW: Muon lr 0.02, momentum 0.95, no weight decay on the hidden
 * matrices, AdamW for the rest; a cosine decay of each rate to 0 over the run.
 *
 * It uses fashion_mnist's initialisation, data order and optimizer settings. With more than one
 * rank the sum of the slices' gradients is rounded in another order than one rank's mean, so
 * the trajectories differ in the last bits and the accuracies agree to a fraction of a point. Exit
 * status: 0 success, 1 diverged, 2 usage, data or library error.
 */
#define _POSIX_C_SOURCE 200809L
#include <descent/descent.h>
#include <descent/descent_mpi.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "mlp.h"
#include "rng.h"

#define EVAL_CHUNK 1000

static int g_rank = 0;

static void fail(const char* what, const char* message) {
  fprintf(stderr, "fashion_mnist_mpi (rank %d): %s: %s\n", g_rank, what, message);
  MPI_Abort(MPI_COMM_WORLD, 2);
}

static void check(descent_optimizer* opt, descent_status s, const char* what) {
  if (s != DESCENT_OK) fail(what, descent_optimizer_last_error(opt));
}

static double evaluate(mlp* m, const fm_split* test) {
  size_t done = 0, correct = 0;
  while (done < test->count) {
    size_t n = test->count - done, hits = 0;
    if (n > m->max_batch) n = m->max_batch;
    fm_normalize(test->images + done * FM_PIXELS, n * FM_PIXELS, m->act[0]);
    mlp_step(m, n, test->labels + done, 0, &hits);
    correct += hits;
    done += n;
  }
  return (double)correct / (double)test->count;
}

static descent_optimizer* make_optimizer(const char* kind, uint64_t total_steps) {
  char error[DESCENT_ERROR_CAPACITY], schedule[64];
  descent_optimizer* opt = NULL;
  descent_status s;
  size_t g, groups = 1;
  if (strcmp(kind, "muon+adamw") == 0) {
    s = descent_multi_create_muon_adamw(
        "{\"learning_rate\": 0.02, \"momentum\": 0.95, \"weight_decay\": 0}",
        "{\"learning_rate\": 1e-3, \"weight_decay\": 0.05}", "head.*", &opt, error, sizeof error);
    groups = 2;
  } else if (strcmp(kind, "adamw") == 0) {
    s = descent_optimizer_create("adamw", &opt, error, sizeof error);
    if (s == DESCENT_OK)
      check(opt,
            descent_optimizer_configure_json(opt,
                                             "{\"learning_rate\": 1e-3, \"weight_decay\": 0.05}"),
            "configure");
  } else {
    fail("--optimizer", "adamw or muon+adamw");
    return NULL;
  }
  if (s != DESCENT_OK) fail(kind, error);
  /* A cosine decay of each rate (each group's own) to 0 over the run. */
  snprintf(schedule, sizeof schedule, "cosine:%llu:0", (unsigned long long)total_steps);
  for (g = 0; g < groups; ++g) {
    descent_optimizer* target = opt;
    if (groups > 1) check(opt, descent_multi_group(opt, g, &target), "group");
    check(target, descent_optimizer_set_schedule(target, schedule), "schedule");
  }
  return opt;
}

int main(int argc, char** argv) {
  const char* kind = "adamw";
  const char* dir = FM_DEFAULT_DIR;
  int epochs = 6, batch = 256, world = 1, i, t;
  uint64_t seed = 0, max_steps = 0, step = 0, rng;
  char error[256];
  fm_split train, test;
  mlp m;
  descent_optimizer* opt;
  descent_collectives* coll = NULL;
  char derror[DESCENT_ERROR_CAPACITY];
  uint32_t* perm;
  uint8_t* labels;
  double accuracy = 0.0;

  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--optimizer") == 0)
      kind = argv[i + 1];
    else if (strcmp(argv[i], "--epochs") == 0)
      epochs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0)
      batch = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--steps") == 0)
      max_steps = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0)
      seed = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--data") == 0)
      dir = argv[i + 1];
    else
      fail(argv[i], "unknown option");
  }
  if (i != argc || epochs < 1 || batch < world)
    fail("usage", "see the comment in fashion_mnist_mpi.c");

  if (fm_load_split(dir, "train", &train, error, sizeof error) != 0 ||
      fm_load_split(dir, "t10k", &test, error, sizeof error) != 0)
    fail("data (Debian: apt-get install dataset-fashion-mnist)", error);
  if (mlp_create(&m, (size_t)(batch > EVAL_CHUNK ? batch : EVAL_CHUNK)) != 0)
    fail("mlp", "out of memory");
  mlp_init(&m, seed);

  {
    const uint64_t per_epoch = train.count / (size_t)batch;
    uint64_t total = per_epoch * (uint64_t)epochs;
    if (max_steps && max_steps < total) total = max_steps;
    opt = make_optimizer(kind, total);
    max_steps = total;
  }
  for (t = 0; t < MLP_TENSORS; ++t)
    check(
        opt,
        descent_optimizer_add_parameter(opt, m.names[t], DESCENT_FLOAT32, m.ndims[t], m.shapes[t]),
        "add_parameter");
  if (descent_mpi_collectives_create(MPI_COMM_WORLD, &coll, derror, sizeof derror) != DESCENT_OK)
    fail("descent_mpi_collectives_create", derror);
  check(opt, descent_optimizer_shard(opt, coll), "descent_optimizer_shard");

  perm = malloc(train.count * sizeof *perm);
  labels = malloc((size_t)batch);
  if (!perm || !labels) fail("memory", "out of memory");
  rng = seed ^ 0xBB67AE8584CAA73BULL; /* fashion_mnist's data-order stream */
  for (i = 0; i < epochs && step < max_steps; ++i) {
    size_t first;
    rng_shuffle(perm, train.count, &rng);
    for (first = 0; first + (size_t)batch <= train.count && step < max_steps;
         first += (size_t)batch) {
      /* This rank's contiguous slice of the global batch. */
      const size_t lo = (size_t)batch * (size_t)g_rank / (size_t)world;
      const size_t hi = (size_t)batch * ((size_t)g_rank + 1) / (size_t)world;
      const float weight = (float)(hi - lo) / (float)batch;
      void* params[MLP_TENSORS];
      const void* grads[MLP_TENSORS];
      double loss;
      size_t k, e;
      for (k = lo; k < hi; ++k) {
        const size_t idx = perm[first + k];
        fm_normalize(train.images + idx * FM_PIXELS, FM_PIXELS, m.act[0] + (k - lo) * FM_PIXELS);
        labels[k - lo] = train.labels[idx];
      }
      loss = mlp_step(&m, hi - lo, labels, 1, NULL);
      if (!isfinite(loss)) fail("training", "the loss diverged");
      /* The mean over the global batch: each slice's mean weighted by its share, summed. */
      for (t = 0; t < MLP_TENSORS; ++t) {
        float* g = m.grads.tensor[t];
        if (world > 1) {
          for (e = 0; e < m.numel[t]; ++e) g[e] *= weight;
          MPI_Allreduce(MPI_IN_PLACE, g, (int)m.numel[t], MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        params[t] = m.params.tensor[t];
        grads[t] = g;
      }
      check(opt, descent_optimizer_update(opt, MLP_TENSORS, m.names, NULL, NULL, params, grads),
            "update");
      ++step;
    }
    accuracy = evaluate(&m, &test);
    if (g_rank == 0) {
      printf("epoch %d, step %llu: test accuracy %.2f%%\n", i + 1, (unsigned long long)step,
             100.0 * accuracy);
      fflush(stdout);
    }
  }
  if (g_rank == 0) printf("final test accuracy: %.4f (%d ranks, %s)\n", accuracy, world, kind);

  descent_optimizer_free(opt);
  descent_collectives_free(coll);
  free(perm);
  free(labels);
  mlp_free(&m);
  fm_free_split(&train);
  fm_free_split(&test);
  MPI_Finalize();
  return 0;
}
