/* A 784-512-256-10 multilayer perceptron with ReLU and softmax cross-entropy, forward and
 * backward on OpenBLAS's cblas_sgemm. Weights are laid out as MLX's nn.Linear holds them:
 * (out, in), row-major, y = x Wᵀ + b. */
#ifndef FASHION_MNIST_MLP_H
#define FASHION_MNIST_MLP_H

#include <stddef.h>
#include <stdint.h>

#define MLP_LAYERS 3
#define MLP_TENSORS (2 * MLP_LAYERS)

/* Parameters or gradients: weight i is tensor 2i, bias i is tensor 2i+1. */
typedef struct mlp_params {
  float* tensor[MLP_TENSORS];
} mlp_params;

typedef struct mlp {
  int dims[MLP_LAYERS + 1]; /* 784, 512, 256, 10 */
  const char* names[MLP_TENSORS];
  int64_t shapes[MLP_TENSORS][2];
  size_t ndims[MLP_TENSORS];
  size_t numel[MLP_TENSORS];
  size_t total; /* number of parameters */
  mlp_params params, grads;
  /* Activations and their gradients for up to max_batch rows. */
  size_t max_batch;
  float* act[MLP_LAYERS + 1]; /* act[0] is the input batch; act[3] the logits */
  float* delta[MLP_LAYERS + 1];
  float* storage;
} mlp;

/* Allocates a model (parameters zero) able to process batches of up to max_batch rows. */
int mlp_create(mlp* m, size_t max_batch);
void mlp_free(mlp* m);

/* He (Kaiming normal) initialisation from a seed: W ~ N(0, 2 / fan_in), b = 0. */
void mlp_init(mlp* m, uint64_t seed);

/* Forward pass on the batch in m->act[0] (n rows). Returns the mean cross-entropy over the
 * batch; *correct (may be NULL) receives the number of argmax hits. With backward != 0 also
 * writes the gradient of the mean loss into m->grads. */
double mlp_step(mlp* m, size_t n, const uint8_t* labels, int backward, size_t* correct);

/* Threads the BLAS runs on. Results depend on it (the split of each product), so a resumed run
 * repeats an uninterrupted one bit for bit only with the same count. */
int mlp_blas_threads(void);

/* 64-bit FNV-1a over the parameter bytes. */
uint64_t mlp_checksum(const mlp* m);

#endif
