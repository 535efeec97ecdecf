#include "mlp.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const int kDims[MLP_LAYERS + 1] = {784, 512, 256, 10};
/* MLX-style tree_flatten paths. The output layer is "head": the muon+adamw preset leaves it (and
 * every bias) to AdamW. */
static const char* const kNames[MLP_TENSORS] = {"layers.0.weight", "layers.0.bias",
                                                "layers.1.weight", "layers.1.bias",
                                                "head.weight",     "head.bias"};

int mlp_create(mlp* m, size_t max_batch) {
  size_t floats = 0, i, offset = 0;
  int l;
  memset(m, 0, sizeof *m);
  m->max_batch = max_batch;
  for (l = 0; l <= MLP_LAYERS; ++l) m->dims[l] = kDims[l];
  for (l = 0; l < MLP_LAYERS; ++l) {
    const int w = 2 * l, b = 2 * l + 1;
    m->names[w] = kNames[w];
    m->names[b] = kNames[b];
    m->ndims[w] = 2;
    m->shapes[w][0] = m->dims[l + 1];
    m->shapes[w][1] = m->dims[l];
    m->numel[w] = (size_t)m->dims[l + 1] * (size_t)m->dims[l];
    m->ndims[b] = 1;
    m->shapes[b][0] = m->dims[l + 1];
    m->numel[b] = (size_t)m->dims[l + 1];
  }
  for (i = 0; i < MLP_TENSORS; ++i) m->total += m->numel[i];
  floats = 2 * m->total;
  for (l = 0; l <= MLP_LAYERS; ++l) floats += 2 * max_batch * (size_t)m->dims[l];
  m->storage = (float*)calloc(floats, sizeof(float));
  if (!m->storage) return -1;
  for (i = 0; i < MLP_TENSORS; ++i) {
    m->params.tensor[i] = m->storage + offset;
    offset += m->numel[i];
  }
  for (i = 0; i < MLP_TENSORS; ++i) {
    m->grads.tensor[i] = m->storage + offset;
    offset += m->numel[i];
  }
  for (l = 0; l <= MLP_LAYERS; ++l) {
    m->act[l] = m->storage + offset;
    offset += max_batch * (size_t)m->dims[l];
    m->delta[l] = m->storage + offset;
    offset += max_batch * (size_t)m->dims[l];
  }
  return 0;
}

void mlp_free(mlp* m) {
  free(m->storage);
  memset(m, 0, sizeof *m);
}

void mlp_init(mlp* m, uint64_t seed) {
  uint64_t state = seed ^ 0x6A09E667F3BCC908ULL; /* an init stream apart from the data order */
  int l;
  for (l = 0; l < MLP_LAYERS; ++l) {
    float* w = m->params.tensor[2 * l];
    const size_t n = m->numel[2 * l];
    const double stddev = sqrt(2.0 / m->dims[l]);
    size_t i;
    for (i = 0; i < n; i += 2) {
      /* Box-Muller: two normal draws from two uniforms. */
      const double u1 = 1.0 - rng_uniform(&state); /* (0, 1] */
      const double u2 = rng_uniform(&state);
      const double r = sqrt(-2.0 * log(u1));
      w[i] = (float)(stddev * r * cos(6.283185307179586 * u2));
      if (i + 1 < n) w[i + 1] = (float)(stddev * r * sin(6.283185307179586 * u2));
    }
    memset(m->params.tensor[2 * l + 1], 0, m->numel[2 * l + 1] * sizeof(float));
  }
}

double mlp_step(mlp* m, size_t n, const uint8_t* labels, int backward, size_t* correct) {
  const int bn = (int)n;
  double loss = 0.0;
  size_t hits = 0, r;
  int l;
  /* Forward: act[l+1] = act[l] W_lᵀ + b_l, ReLU on the hidden layers. */
  for (l = 0; l < MLP_LAYERS; ++l) {
    const int in = m->dims[l], out = m->dims[l + 1];
    const float* w = m->params.tensor[2 * l];
    const float* b = m->params.tensor[2 * l + 1];
    float* y = m->act[l + 1];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, out, in, 1.0f, m->act[l], in, w, in,
                0.0f, y, out);
    for (r = 0; r < n; ++r) {
      float* row = y + r * (size_t)out;
      int j;
      if (l + 1 < MLP_LAYERS) {
        for (j = 0; j < out; ++j) {
          const float v = row[j] + b[j];
          row[j] = v > 0.0f ? v : 0.0f;
        }
      } else {
        for (j = 0; j < out; ++j) row[j] += b[j];
      }
    }
  }
  /* Softmax cross-entropy; delta[3] = (softmax - onehot) / n, the gradient of the mean. */
  {
    const int classes = m->dims[MLP_LAYERS];
    for (r = 0; r < n; ++r) {
      const float* z = m->act[MLP_LAYERS] + r * (size_t)classes;
      float* d = m->delta[MLP_LAYERS] + r * (size_t)classes;
      double max = z[0], sum = 0.0;
      int j, arg = 0;
      for (j = 1; j < classes; ++j) {
        if (z[j] > max) {
          max = z[j];
          arg = j;
        }
      }
      for (j = 0; j < classes; ++j) sum += exp(z[j] - max);
      loss += max + log(sum) - z[labels[r]];
      if (arg == labels[r]) ++hits;
      if (backward) {
        for (j = 0; j < classes; ++j) {
          const double p = exp(z[j] - max) / sum;
          d[j] = (float)((p - (j == labels[r] ? 1.0 : 0.0)) / (double)n);
        }
      }
    }
  }
  if (correct) *correct = hits;
  if (!backward) return loss / (double)n;

  /* Backward: dW_l = delta[l+1]ᵀ act[l], db_l = column sums of delta[l+1],
   * delta[l] = (delta[l+1] W_l) ⊙ [act[l] > 0]. */
  for (l = MLP_LAYERS - 1; l >= 0; --l) {
    const int in = m->dims[l], out = m->dims[l + 1];
    const float* dy = m->delta[l + 1];
    float* dw = m->grads.tensor[2 * l];
    float* db = m->grads.tensor[2 * l + 1];
    int j;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, bn, 1.0f, dy, out, m->act[l], in,
                0.0f, dw, in);
    for (j = 0; j < out; ++j) db[j] = 0.0f;
    for (r = 0; r < n; ++r) {
      const float* row = dy + r * (size_t)out;
      for (j = 0; j < out; ++j) db[j] += row[j];
    }
    if (l > 0) {
      float* dx = m->delta[l];
      const float* x = m->act[l];
      size_t i;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, in, out, 1.0f, dy, out,
                  m->params.tensor[2 * l], in, 0.0f, dx, in);
      for (i = 0; i < n * (size_t)in; ++i) {
        if (!(x[i] > 0.0f)) dx[i] = 0.0f;
      }
    }
  }
  return loss / (double)n;
}

int mlp_blas_threads(void) {
  return openblas_get_num_threads();
}

uint64_t mlp_checksum(const mlp* m) {
  uint64_t h = 0xCBF29CE484222325ULL;
  size_t t, i;
  for (t = 0; t < MLP_TENSORS; ++t) {
    const unsigned char* p = (const unsigned char*)m->params.tensor[t];
    const size_t bytes = m->numel[t] * sizeof(float);
    for (i = 0; i < bytes; ++i) {
      h ^= p[i];
      h *= 0x100000001B3ULL;
    }
  }
  return h;
}
