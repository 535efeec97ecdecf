/*
 * fashion_mnist: trains a 784-512-256-10 MLP on Fashion-MNIST with an optimizer from descent,
 * used through its public C API only. See usage() below and docs/fashion-mnist.md.
 *
 * Exit status: 0 success; 1 a run diverged (non-finite loss); 2 usage, data, library or I/O
 * error (a missing or damaged data file included); 130 interrupted (Ctrl-C), after writing a
 * checkpoint when --checkpoint is given.
 */
#define _POSIX_C_SOURCE 200809L
#include <descent/descent.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bf16.h"
#include "data.h"
#include "mlp.h"
#include "rng.h"

#define EXIT_DIVERGED 1
#define EXIT_ERROR 2
#define EXIT_INTERRUPTED 130
#define EVAL_CHUNK 1000
#define MAX_RUNS 16
#define MODEL_SUFFIX ".model"
#define MODEL_MAGIC "DFMNIST1"

static const char* g_program = "fashion_mnist";

static void usage(FILE* f) {
  fprintf(
      f,
      "usage: %s [options]\n"
      "Trains a 784-512-256-10 MLP (ReLU, softmax cross-entropy) on Fashion-MNIST with a descent "
      "optimizer.\n"
      "\n"
      "  --optimizer NAME   an optimizer kind (sgd, rmsprop, adagrad, adadelta, adam, adamw, "
      "adamax,\n"
      "                     lion, adafactor, muon) or the preset muon+adamw: Muon for the "
      "hidden\n"
      "                     weight matrices, AdamW for the biases and the output layer "
      "(default adamw)\n"
      "  --lr X             learning rate (muon+adamw: Muon's)\n"
      "  --config JSON      hyperparameters on top of this program's defaults, e.g.\n"
      "                     '{\"learning_rate\": 1e-3, \"weight_decay\": 0.05}'; for "
      "muon+adamw\n"
      "                     '{\"muon\": {...}, \"adamw\": {...}}'; with --compare an object "
      "keyed by\n"
      "                     optimizer name, e.g. '{\"adamw\": {\"weight_decay\": 0.1}}'\n"
      "  --schedule SPEC    a descent schedule string, e.g. \"cosine:1404:0\" or\n"
      "                     \"warmup_cosine:100:1303:0\" (docs/schedules.md); \"cosine\" "
      "alone decays over\n"
      "                     the whole run to 0 (the default), \"warmup_cosine:W\" warms up W "
      "steps then\n"
      "                     decays to 0, \"none\" keeps the rate constant (muon+adamw: each "
      "group's\n"
      "                     schedule starts from its own rate)\n"
      "  --epochs N         passes over the training set (default 6)\n"
      "  --batch N          mini-batch size (default 256; the last partial batch of an epoch "
      "is dropped)\n"
      "  --seed N           seed of the initialisation and of the data order (default 0)\n"
      "  --steps N          stop after N updates in total (a checkpoint is written there)\n"
      "  --csv PATH         write the curves: step,epoch,train_loss,test_acc,lr,elapsed\n"
      "  --checkpoint PATH  after each epoch save the optimizer to PATH "
      "(descent_optimizer_save)\n"
      "                     and the model, data order and curves to PATH" MODEL_SUFFIX
      "\n"
      "  --resume           continue from --checkpoint (same options required; starts anew "
      "if absent)\n"
      "  --compare LIST     train several optimizers, e.g. \"adamw,muon+adamw\", with the same "
      "seed\n"
      "                     and budget; writes DIR/<name>.csv and DIR/compare.png (gnuplot)\n"
      "  --out DIR          output directory (default with --compare: fashion-mnist-out); a "
      "single\n"
      "                     run writes DIR/<name>.csv when --csv is not given\n"
      "  --data DIR         the IDX files (default $FASHION_MNIST_DIR or " FM_DEFAULT_DIR
      ")\n"
      "  --train-subset N   use the first N training images (default all 60000)\n"
      "  --test-subset N    use the first N test images (default all 10000)\n"
      "  --eval-every N     also measure test accuracy every N steps (default: each epoch)\n"
      "  --log-every N      steps per CSV row (default 50)\n"
      "  --target X         accuracy whose first step is reported (default 0.88)\n"
      "  --dtype T          float32 (default) or bf16: bfloat16 parameters and gradients\n"
      "                     (float32 optimizer state, descent's default state_precision;\n"
      "                     forward and backward on their float32 widening)\n"
      "  --help\n",
      g_program);
}

/* ---- small utilities ------------------------------------------------------------------------ */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void errorf(const char* fmt, ...) {
  va_list args;
  fprintf(stderr, "%s: ", g_program);
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
}

static int parse_u64(const char* s, uint64_t* out) {
  char* end;
  unsigned long long v;
  if (!s || !*s || *s == '-') return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = (uint64_t)v;
  return 0;
}

static int parse_positive_int(const char* s, int* out) {
  uint64_t v;
  if (parse_u64(s, &v) || v == 0 || v > 100000000) return -1;
  *out = (int)v;
  return 0;
}

static int parse_double(const char* s, double* out) {
  char* end;
  if (!s || !*s) return -1;
  errno = 0;
  *out = strtod(s, &end);
  if (errno || *end || !isfinite(*out)) return -1;
  return 0;
}

static int mkdir_p(const char* dir) {
  char path[4096];
  size_t len = strlen(dir), i;
  if (len == 0 || len >= sizeof path) return -1;
  memcpy(path, dir, len + 1);
  for (i = 1; i <= len; ++i) {
    if (path[i] == '/' || path[i] == '\0') {
      const char saved = path[i];
      path[i] = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
      path[i] = saved;
    }
  }
  return 0;
}

static char* xstrdup(const char* s) {
  size_t n = strlen(s) + 1;
  char* p = (char*)malloc(n);
  if (!p) {
    errorf("out of memory");
    exit(EXIT_ERROR);
  }
  memcpy(p, s, n);
  return p;
}

static char* format_string(const char* fmt, ...) {
  va_list args;
  int n;
  char* p;
  va_start(args, fmt);
  n = vsnprintf(NULL, 0, fmt, args);
  va_end(args);
  p = (char*)malloc((size_t)n + 1);
  if (!p) {
    errorf("out of memory");
    exit(EXIT_ERROR);
  }
  va_start(args, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, args);
  va_end(args);
  return p;
}

static uint64_t fnv1a(uint64_t h, const void* data, size_t size) {
  const unsigned char* p = (const unsigned char*)data;
  size_t i;
  for (i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ULL;
  }
  return h;
}
#define FNV_OFFSET 0xCBF29CE484222325ULL

/* ---- a minimal JSON object splitter ----------------------------------------------------------
 * descent parses and validates the hyperparameters; this only cuts a top-level object into
 * (key, raw value text) members, for the {"muon": ..., "adamw": ...} and --compare forms. */

typedef struct json_member {
  char key[64];
  char* value; /* malloc'ed copy of the value's text */
} json_member;

static const char* json_skip_ws(const char* p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
  return p;
}

static const char* json_skip_string(const char* p) { /* p at the opening quote */
  for (++p; *p && *p != '"'; ++p) {
    if (*p == '\\' && p[1]) ++p;
  }
  return *p == '"' ? p + 1 : NULL;
}

static const char* json_skip_value(const char* p) {
  int depth = 0;
  p = json_skip_ws(p);
  if (*p == '"') return json_skip_string(p);
  if (*p != '{' && *p != '[') {
    const char* start = p;
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
      ++p;
    return p == start ? NULL : p;
  }
  for (; *p; ++p) {
    if (*p == '"') {
      p = json_skip_string(p);
      if (!p) return NULL;
      --p;
    } else if (*p == '{' || *p == '[') {
      ++depth;
    } else if (*p == '}' || *p == ']') {
      if (--depth == 0) return p + 1;
    }
  }
  return NULL;
}

/* Splits a JSON object into at most `capacity` members. Returns the count, or -1. */
static int json_split(const char* json, json_member* members, int capacity) {
  const char* p = json_skip_ws(json);
  int count = 0;
  if (*p++ != '{') return -1;
  p = json_skip_ws(p);
  if (*p == '}') return *json_skip_ws(p + 1) ? -1 : 0;
  for (;;) {
    const char *key_end, *value_start, *value_end;
    size_t key_len;
    p = json_skip_ws(p);
    if (*p != '"' || count == capacity) return -1;
    key_end = json_skip_string(p);
    if (!key_end) return -1;
    key_len = (size_t)(key_end - p - 2);
    if (key_len >= sizeof members[count].key || memchr(p + 1, '\\', key_len)) return -1;
    memcpy(members[count].key, p + 1, key_len);
    members[count].key[key_len] = '\0';
    p = json_skip_ws(key_end);
    if (*p++ != ':') return -1;
    value_start = json_skip_ws(p);
    value_end = json_skip_value(value_start);
    if (!value_end) return -1;
    members[count].value = (char*)malloc((size_t)(value_end - value_start) + 1);
    if (!members[count].value) return -1;
    memcpy(members[count].value, value_start, (size_t)(value_end - value_start));
    members[count].value[value_end - value_start] = '\0';
    ++count;
    p = json_skip_ws(value_end);
    if (*p == ',') {
      ++p;
      continue;
    }
    if (*p == '}' && !*json_skip_ws(p + 1)) return count;
    return -1;
  }
}

static void json_free_members(json_member* members, int count) {
  int i;
  for (i = 0; i < count; ++i) free(members[i].value);
}

/* ---- options -------------------------------------------------------------------------------- */

typedef struct options {
  const char* optimizer;
  double lr;
  int has_lr;
  const char* config;
  const char* schedule;
  int epochs, batch;
  uint64_t seed, steps;
  const char* csv;
  const char* checkpoint;
  int resume;
  const char* compare;
  const char* out;
  const char* data_dir;
  uint64_t train_subset, test_subset;
  int eval_every, log_every;
  double target;
  descent_dtype dtype; /* DESCENT_FLOAT32 or DESCENT_BFLOAT16 (--dtype) */
} options;

/* One training run: the settings that define it (all of them are checked on --resume) and
 * where its files go. */
typedef struct run {
  char name[64];    /* an optimizer kind or "muon+adamw" */
  char* config;     /* the user's JSON for this optimizer, or NULL */
  char* schedule;   /* expanded schedule string, or NULL */
  char* csv;        /* or NULL */
  char* checkpoint; /* or NULL */
} run;

typedef struct row {
  uint64_t step;
  double epoch, train_loss, test_acc, lr, elapsed; /* test_acc NaN where not measured */
} row;

typedef struct result {
  int diverged, interrupted, complete;
  uint64_t steps;
  double final_acc, best_acc, elapsed;
  uint64_t target_step;  /* 0 when never reached */
  double target_elapsed; /* the training seconds (elapsed) at target_step */
} result;

/* Learning rates and settings that suit this model, per kind; --lr and --config override. */
static const char* default_config(const char* kind) {
  static const struct {
    const char* kind;
    const char* json;
  } defaults[] = {
      {"sgd", "{\"learning_rate\": 0.05, \"momentum\": 0.9}"},
      {"rmsprop", "{\"learning_rate\": 5e-4}"},
      {"adagrad", "{\"learning_rate\": 0.02}"},
      {"adadelta", "{\"learning_rate\": 1.0}"},
      {"adam", "{\"learning_rate\": 1e-3}"},
      {"adamw", "{\"learning_rate\": 1e-3, \"weight_decay\": 0.05}"},
      {"adamax", "{\"learning_rate\": 2e-3}"},
      {"lion", "{\"learning_rate\": 1e-4, \"weight_decay\": 0.1}"},
      {"adafactor",
       "{\"learning_rate\": 1e-3, \"relative_step\": false, \"scale_parameter\": false}"},
      {"muon", "{\"learning_rate\": 0.02, \"momentum\": 0.95, \"weight_decay\": 0}"},
  };
  size_t i;
  for (i = 0; i < sizeof defaults / sizeof defaults[0]; ++i) {
    if (strcmp(defaults[i].kind, kind) == 0) return defaults[i].json;
  }
  return "{\"learning_rate\": 1e-3}";
}
#define PRESET_MUON_ADAMW "muon+adamw"
/* Muon without weight decay: MLX's default (0.01, added to the gradient before the
 * orthogonalisation) costs about 1.5 points of test accuracy here. 3 Newton-Schulz steps and
 * lr 0.01: 40% less work per step than MLX's 5 for as few steps to 88%, so that Muon+AdamW gets
 * there sooner in seconds, not only in steps (docs/fashion-mnist.md). */
#define PRESET_MUON_CONFIG \
  "{\"learning_rate\": 0.01, \"momentum\": 0.95, \"weight_decay\": 0, \"ns_steps\": 3}"
#define PRESET_ADAMW_CONFIG "{\"learning_rate\": 1e-3, \"weight_decay\": 0.05}"
#define PRESET_ADAMW_NAMES "head.*"

/* ---- the optimizer, through descent's C API ----------------------------------------------------
 */

static int is_preset(const run* r) {
  return strcmp(r->name, PRESET_MUON_ADAMW) == 0;
}

/* The handle whose "step" and "learning_rate" the curves report: group 0 (Muon) of the preset. */
static descent_optimizer* primary(descent_optimizer* opt, const run* r) {
  descent_optimizer* g = NULL;
  if (is_preset(r) && descent_multi_group(opt, 0, &g) == DESCENT_OK) return g;
  return opt;
}

static double optimizer_lr(descent_optimizer* opt, const run* r) {
  float lr = NAN;
  if (descent_optimizer_state_get(primary(opt, r), "learning_rate", DESCENT_FLOAT32, &lr, 1))
    return NAN;
  return lr;
}

static int optimizer_step(descent_optimizer* opt, const run* r, uint64_t* step) {
  return descent_optimizer_state_get(primary(opt, r), "step", DESCENT_UINT64, step, 1) == DESCENT_OK
             ? 0
             : -1;
}

/* 64-bit FNV-1a over every state key and its bytes. */
static uint64_t optimizer_checksum(const descent_optimizer* opt) {
  uint64_t h = FNV_OFFSET;
  size_t count = 0, i;
  if (descent_optimizer_state_count(opt, &count)) return 0;
  for (i = 0; i < count; ++i) {
    const char* key = NULL;
    descent_dtype dtype;
    size_t ndim = 0, numel = 1, d, width;
    int64_t shape[DESCENT_MAX_NDIM];
    void* buf;
    if (descent_optimizer_state_key(opt, i, &key) ||
        descent_optimizer_state_info(opt, key, &dtype, &ndim, shape, DESCENT_MAX_NDIM))
      return 0;
    for (d = 0; d < ndim; ++d) numel *= (size_t)shape[d];
    width = dtype == DESCENT_FLOAT32 ? 4 : dtype == DESCENT_FLOAT64 ? 8 : 2;
    h = fnv1a(h, key, strlen(key) + 1);
    buf = malloc(numel * width + 1);
    if (!buf) return 0;
    if (descent_optimizer_state_get(opt, key, dtype, buf, numel) == DESCENT_OK)
      h = fnv1a(h, buf, numel * width);
    free(buf);
  }
  return h;
}

static int configure(descent_optimizer* opt, const char* json, const char* what) {
  if (!json || !*json) return 0;
  if (descent_optimizer_configure_json(opt, json) != DESCENT_OK) {
    errorf("%s: %s", what, descent_optimizer_last_error(opt));
    return -1;
  }
  return 0;
}

/* Creates and configures the optimizer of a run and declares the model's tensors. */
static descent_optimizer* make_optimizer(const options* o, const run* r, const mlp* m) {
  descent_optimizer* opt = NULL;
  size_t groups = 1, g, i;
  if (is_preset(r)) {
    json_member members[4];
    int n = 0, k;
    const char *muon_json = NULL, *adamw_json = NULL;
    if (r->config) {
      n = json_split(r->config, members, 4);
      if (n < 0) {
        errorf("--config for %s must be an object {\"muon\": {...}, \"adamw\": {...}}: %s", r->name,
               r->config);
        return NULL;
      }
      for (k = 0; k < n; ++k) {
        if (strcmp(members[k].key, "muon") == 0) {
          muon_json = members[k].value;
        } else if (strcmp(members[k].key, "adamw") == 0) {
          adamw_json = members[k].value;
        } else {
          errorf(
              "--config for %s: unknown key \"%s\" (expected \"muon\" and/or \"adamw\", each "
              "an object of hyperparameters)",
              r->name, members[k].key);
          json_free_members(members, n);
          return NULL;
        }
      }
    }
    if (descent_multi_create_muon_adamw(PRESET_MUON_CONFIG, PRESET_ADAMW_CONFIG, PRESET_ADAMW_NAMES,
                                        &opt, NULL, 0) != DESCENT_OK) {
      errorf("descent_multi_create_muon_adamw: %s", descent_last_error());
      json_free_members(members, n);
      return NULL;
    }
    {
      descent_optimizer *muon = NULL, *adamw = NULL;
      if (descent_multi_group(opt, 0, &muon) || descent_multi_group(opt, 1, &adamw)) {
        errorf("descent_multi_group: %s", descent_optimizer_last_error(opt));
        json_free_members(members, n);
        descent_optimizer_free(opt);
        return NULL;
      }
      if (configure(muon, muon_json, "--config muon") ||
          configure(adamw, adamw_json, "--config adamw") ||
          (o->has_lr && descent_optimizer_set_double(muon, "learning_rate", o->lr) &&
           (errorf("--lr: %s", descent_optimizer_last_error(muon)), 1))) {
        json_free_members(members, n);
        descent_optimizer_free(opt);
        return NULL;
      }
    }
    json_free_members(members, n);
    groups = 2;
  } else {
    if (descent_optimizer_create(r->name, &opt, NULL, 0) != DESCENT_OK) {
      errorf("--optimizer %s: %s", r->name, descent_last_error());
      return NULL;
    }
    if (configure(opt, default_config(r->name), "default configuration") ||
        configure(opt, r->config, "--config")) {
      descent_optimizer_free(opt);
      return NULL;
    }
    if (o->has_lr && descent_optimizer_set_double(opt, "learning_rate", o->lr) != DESCENT_OK) {
      errorf("--lr: %s", descent_optimizer_last_error(opt));
      descent_optimizer_free(opt);
      return NULL;
    }
  }
  for (i = 0; i < MLP_TENSORS; ++i) {
    if (descent_optimizer_add_parameter(opt, m->names[i], o->dtype, m->ndims[i], m->shapes[i]) !=
        DESCENT_OK) {
      errorf("declaring %s: %s", m->names[i], descent_optimizer_last_error(opt));
      descent_optimizer_free(opt);
      return NULL;
    }
  }
  if (r->schedule) {
    for (g = 0; g < groups; ++g) {
      descent_optimizer* target = opt;
      if (groups > 1 && descent_multi_group(opt, g, &target) != DESCENT_OK) target = NULL;
      if (!target || descent_optimizer_set_schedule(target, r->schedule) != DESCENT_OK) {
        errorf("--schedule %s: %s", r->schedule,
               target ? descent_optimizer_last_error(target) : descent_optimizer_last_error(opt));
        descent_optimizer_free(opt);
        return NULL;
      }
    }
  }
  if (descent_optimizer_init(opt) != DESCENT_OK) {
    errorf("%s: %s", r->name, descent_optimizer_last_error(opt));
    descent_optimizer_free(opt);
    return NULL;
  }
  return opt;
}

/* "cosine" -> "cosine:<total>:0", "warmup_cosine:W" -> "warmup_cosine:W:<total - W - 1>:0"
 * (mlx-lm's warm-up holds the peak for one step before the cosine phase), "none" -> no schedule;
 * anything else is passed to descent as it is. Update k uses the schedule at k - 1 (MLX), so the
 * last update of the run uses a small rate and the schedule reaches its end right after it. */
static char* expand_schedule(const char* spec, uint64_t total_steps) {
  uint64_t warmup;
  if (!spec || strcmp(spec, "none") == 0) return NULL;
  if (strcmp(spec, "cosine") == 0)
    return format_string("cosine:%llu:0", (unsigned long long)total_steps);
  if (strncmp(spec, "warmup_cosine:", 14) == 0 && parse_u64(spec + 14, &warmup) == 0) {
    if (warmup + 1 >= total_steps) {
      errorf("--schedule %s: the warm-up is not shorter than the run (%llu steps)", spec,
             (unsigned long long)total_steps);
      exit(EXIT_ERROR);
    }
    return format_string("warmup_cosine:%llu:%llu:0", (unsigned long long)warmup,
                         (unsigned long long)(total_steps - warmup - 1));
  }
  return xstrdup(spec);
}

/* ---- files: atomic writes, the model checkpoint, the CSV ------------------------------------- */

/* Writes data to path through a temporary file, fsync and rename, then fsyncs the directory:
 * the path holds either the old or the new content. */
static int write_atomically(const char* path, const void* data, size_t size) {
  char* tmp = format_string("%s.tmp.%ld", path, (long)getpid());
  char* dir = xstrdup(path);
  char* slash = strrchr(dir, '/');
  int fd, ok = 0;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd >= 0) {
    const unsigned char* p = (const unsigned char*)data;
    size_t left = size;
    ok = 1;
    while (left > 0) {
      ssize_t n = write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = 0;
        break;
      }
      p += n;
      left -= (size_t)n;
    }
    if (ok && fsync(fd) != 0) ok = 0;
    if (close(fd) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) unlink(tmp);
  }
  if (!ok) errorf("cannot write %s: %s", path, strerror(errno));
  if (ok) {
    if (slash) {
      *slash = '\0';
      if (!*dir) strcpy(dir, "/");
    } else {
      strcpy(dir, ".");
    }
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
      fsync(fd);
      close(fd);
    }
  }
  free(tmp);
  free(dir);
  return ok ? 0 : -1;
}

/* Position in the run: everything besides the parameters and the optimizer that a resumed run
 * needs to continue exactly. */
typedef struct progress_state {
  uint64_t step;        /* updates done */
  uint64_t epoch;       /* current epoch (0-based) */
  uint64_t batch_index; /* next batch in the epoch */
  uint64_t epoch_rng;   /* data-order RNG state before this epoch's shuffle */
  double loss_sum;      /* train loss since the last CSV row */
  uint64_t loss_count;
  double elapsed; /* seconds of training so far */
  row* rows;
  size_t row_count, row_capacity;
} progress_state;

static void push_row(progress_state* s, row r) {
  if (s->row_count == s->row_capacity) {
    size_t cap = s->row_capacity ? 2 * s->row_capacity : 256;
    row* grown = (row*)realloc(s->rows, cap * sizeof(row));
    if (!grown) {
      errorf("out of memory");
      exit(EXIT_ERROR);
    }
    s->rows = grown;
    s->row_capacity = cap;
  }
  s->rows[s->row_count++] = r;
}

/* A growable byte buffer for the model file. */
typedef struct bytes {
  unsigned char* data;
  size_t size, capacity, pos;
} bytes;

static void put(bytes* b, const void* data, size_t size) {
  if (b->size + size > b->capacity) {
    size_t cap = b->capacity ? b->capacity : 4096;
    unsigned char* grown;
    while (cap < b->size + size) cap *= 2;
    grown = (unsigned char*)realloc(b->data, cap);
    if (!grown) {
      errorf("out of memory");
      exit(EXIT_ERROR);
    }
    b->data = grown;
    b->capacity = cap;
  }
  memcpy(b->data + b->size, data, size);
  b->size += size;
}
static void put_u64(bytes* b, uint64_t v) {
  put(b, &v, sizeof v);
}
static void put_f64(bytes* b, double v) {
  put(b, &v, sizeof v);
}

static int get(bytes* b, void* out, size_t size) {
  if (b->size - b->pos < size) return -1;
  memcpy(out, b->data + b->pos, size);
  b->pos += size;
  return 0;
}
static int get_u64(bytes* b, uint64_t* v) {
  return get(b, v, sizeof *v);
}
static int get_f64(bytes* b, double* v) {
  return get(b, v, sizeof *v);
}

/* The settings a checkpoint belongs to, one "key=value" per line. */
static char* run_signature(const options* o, const run* r) {
  char lr[64] = "";
  if (o->has_lr) snprintf(lr, sizeof lr, "%.17g", o->lr);
  return format_string(
      "optimizer=%s\nconfig=%s\nlr=%s\nschedule=%s\nepochs=%d\nbatch=%d\nseed=%llu\n"
      "train_subset=%llu\ntest_subset=%llu\neval_every=%d\nlog_every=%d\ndtype=%s\n",
      r->name, r->config ? r->config : "", lr, r->schedule ? r->schedule : "", o->epochs, o->batch,
      (unsigned long long)o->seed, (unsigned long long)o->train_subset,
      (unsigned long long)o->test_subset, o->eval_every, o->log_every,
      descent_dtype_name(o->dtype));
}

/* The model file: magic, the run signature, the BLAS thread count, the progress state, the curves,
 * the parameters (native byte order: a checkpoint is for resuming on the same machine), then an
 * FNV-1a checksum of everything before it. */
static int save_model_file(const char* path, const char* signature, const progress_state* s,
                           const mlp* m) {
  bytes b = {0};
  size_t i;
  int rc;
  put(&b, MODEL_MAGIC, 8);
  put_u64(&b, strlen(signature));
  put(&b, signature, strlen(signature));
  put_u64(&b, (uint64_t)mlp_blas_threads());
  put_u64(&b, s->step);
  put_u64(&b, s->epoch);
  put_u64(&b, s->batch_index);
  put_u64(&b, s->epoch_rng);
  put_f64(&b, s->loss_sum);
  put_u64(&b, s->loss_count);
  put_f64(&b, s->elapsed);
  put_u64(&b, s->row_count);
  for (i = 0; i < s->row_count; ++i) {
    const row* r = &s->rows[i];
    put_u64(&b, r->step);
    put_f64(&b, r->epoch);
    put_f64(&b, r->train_loss);
    put_f64(&b, r->test_acc);
    put_f64(&b, r->lr);
    put_f64(&b, r->elapsed);
  }
  put_u64(&b, MLP_TENSORS);
  for (i = 0; i < MLP_TENSORS; ++i) {
    put_u64(&b, m->numel[i]);
    put(&b, m->params.tensor[i], m->numel[i] * sizeof(float));
  }
  put_u64(&b, fnv1a(FNV_OFFSET, b.data, b.size));
  rc = write_atomically(path, b.data, b.size);
  free(b.data);
  return rc;
}

/* Reads a model file into s and m; on failure prints what is wrong and returns -1. */
static int load_model_file(const char* path, const char* signature, progress_state* s, mlp* m) {
  bytes b = {0};
  FILE* f = fopen(path, "rb");
  uint64_t sig_len, rows, tensors, numel, stored_sum;
  size_t i;
  if (!f) {
    errorf("cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  for (;;) {
    unsigned char chunk[65536];
    size_t n = fread(chunk, 1, sizeof chunk, f);
    if (n) put(&b, chunk, n);
    if (n < sizeof chunk) break;
  }
  if (ferror(f)) {
    errorf("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    free(b.data);
    return -1;
  }
  fclose(f);
  if (b.size < 16 || memcmp(b.data, MODEL_MAGIC, 8) != 0) {
    errorf("%s: not a checkpoint of this program", path);
    goto corrupt_done;
  }
  memcpy(&stored_sum, b.data + b.size - 8, 8);
  if (fnv1a(FNV_OFFSET, b.data, b.size - 8) != stored_sum) {
    errorf("%s: damaged (checksum mismatch)", path);
    goto corrupt_done;
  }
  b.size -= 8;
  b.pos = 8;
  if (get_u64(&b, &sig_len) || sig_len > b.size - b.pos) goto corrupt;
  if (sig_len != strlen(signature) || memcmp(b.data + b.pos, signature, sig_len) != 0) {
    /* Name the settings that differ. */
    char* stored = (char*)malloc(sig_len + 1);
    const char *a, *c;
    if (!stored) goto corrupt;
    memcpy(stored, b.data + b.pos, sig_len);
    stored[sig_len] = '\0';
    errorf("%s was written by a run with other settings; --resume needs the same options:", path);
    for (a = stored, c = signature; *a || *c;) {
      size_t la = strcspn(a, "\n"), lc = strcspn(c, "\n");
      if (la != lc || memcmp(a, c, la) != 0)
        fprintf(stderr, "  checkpoint: %.*s\n  this run:   %.*s\n", (int)la, a, (int)lc, c);
      a += la + (a[la] ? 1 : 0);
      c += lc + (c[lc] ? 1 : 0);
    }
    free(stored);
    free(b.data);
    return -1;
  }
  b.pos += sig_len;
  {
    uint64_t threads;
    if (get_u64(&b, &threads)) goto corrupt;
    if (threads != (uint64_t)mlp_blas_threads())
      fprintf(stderr,
              "%s: note: %s was written with %llu BLAS threads and this run has %d: it continues "
              "the same training, but not bit for bit as an uninterrupted run would (set "
              "OPENBLAS_NUM_THREADS=%llu for that)\n",
              g_program, path, (unsigned long long)threads, mlp_blas_threads(),
              (unsigned long long)threads);
  }
  if (get_u64(&b, &s->step) || get_u64(&b, &s->epoch) || get_u64(&b, &s->batch_index) ||
      get_u64(&b, &s->epoch_rng) || get_f64(&b, &s->loss_sum) || get_u64(&b, &s->loss_count) ||
      get_f64(&b, &s->elapsed) || get_u64(&b, &rows) || rows > b.size / 48)
    goto corrupt;
  s->row_count = 0;
  for (i = 0; i < rows; ++i) {
    row r;
    if (get_u64(&b, &r.step) || get_f64(&b, &r.epoch) || get_f64(&b, &r.train_loss) ||
        get_f64(&b, &r.test_acc) || get_f64(&b, &r.lr) || get_f64(&b, &r.elapsed))
      goto corrupt;
    push_row(s, r);
  }
  if (get_u64(&b, &tensors) || tensors != MLP_TENSORS) goto corrupt;
  for (i = 0; i < MLP_TENSORS; ++i) {
    if (get_u64(&b, &numel) || numel != m->numel[i] ||
        get(&b, m->params.tensor[i], m->numel[i] * sizeof(float)))
      goto corrupt;
  }
  if (b.pos != b.size) goto corrupt;
  free(b.data);
  return 0;
corrupt:
  errorf("%s: damaged (malformed contents)", path);
corrupt_done:
  free(b.data);
  return -1;
}

static void csv_write_row(FILE* f, const row* r) {
  fprintf(f, "%llu,%.4f,%.6f,", (unsigned long long)r->step, r->epoch, r->train_loss);
  if (!isnan(r->test_acc)) fprintf(f, "%.4f", r->test_acc);
  fprintf(f, ",%.6g,%.3f\n", r->lr, r->elapsed);
}

/* Opens the CSV anew and writes the header and the rows so far (those of a checkpoint). */
static FILE* csv_open(const char* path, const progress_state* s) {
  FILE* f = fopen(path, "w");
  size_t i;
  if (!f) {
    errorf("cannot write %s: %s", path, strerror(errno));
    return NULL;
  }
  fprintf(f, "step,epoch,train_loss,test_acc,lr,elapsed\n");
  for (i = 0; i < s->row_count; ++i) csv_write_row(f, &s->rows[i]);
  fflush(f);
  return f;
}

/* ---- progress display ---------------------------------------------------------------------------
 */

static volatile sig_atomic_t g_interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
}

typedef struct display {
  int tty; /* stderr is a terminal: draw a progress bar */
  int bar_shown;
  double last_draw;
  double ema_loss;
} display;

static void format_duration(double seconds, char* out, size_t size) {
  long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
  if (s >= 3600)
    snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

static void clear_bar(display* d) {
  if (d->tty && d->bar_shown) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
    d->bar_shown = 0;
  }
}

static void draw_bar(display* d, const char* name, uint64_t epoch, int epochs, uint64_t step,
                     uint64_t total, double samples_per_s, double eta, int force) {
  char bar[25], eta_text[32];
  const double t = now_seconds();
  const double frac = total ? (double)step / (double)total : 1.0;
  int filled, i;
  if (!d->tty || (!force && t - d->last_draw < 0.1)) return;
  d->last_draw = t;
  filled = (int)(frac * 24.0);
  for (i = 0; i < 24; ++i) bar[i] = i < filled ? '#' : '.';
  bar[24] = '\0';
  format_duration(eta, eta_text, sizeof eta_text);
  fprintf(stderr,
          "\r%s epoch %llu/%d [%s] %3d%% step %llu/%llu loss %.4f %7.0f samples/s ETA %s\033[K",
          name, (unsigned long long)(epoch < (uint64_t)epochs ? epoch + 1 : (uint64_t)epochs),
          epochs, bar, (int)(100.0 * frac), (unsigned long long)step, (unsigned long long)total,
          d->ema_loss, samples_per_s, eta_text);
  fflush(stderr);
  d->bar_shown = 1;
}

/* ---- training
 * ------------------------------------------------------------------------------------ */

typedef struct dataset {
  fm_split train, test;
  size_t train_count, test_count;
} dataset;

/* Test accuracy over the (subset of the) test set. */
static double evaluate(mlp* m, const dataset* data) {
  size_t done = 0, correct = 0;
  while (done < data->test_count) {
    size_t n = data->test_count - done, hits = 0;
    if (n > m->max_batch) n = m->max_batch;
    fm_normalize(data->test.images + done * FM_PIXELS, n * FM_PIXELS, m->act[0]);
    mlp_step(m, n, data->test.labels + done, 0, &hits);
    correct += hits;
    done += n;
  }
  return (double)correct / (double)data->test_count;
}

static void gather_batch(mlp* m, const dataset* data, const uint32_t* perm, size_t first, size_t n,
                         uint8_t* labels) {
  size_t i;
  for (i = 0; i < n; ++i) {
    const size_t k = perm[first + i];
    fm_normalize(data->train.images + k * FM_PIXELS, FM_PIXELS, m->act[0] + i * FM_PIXELS);
    labels[i] = data->train.labels[k];
  }
}

static int save_checkpoint(const run* r, const char* signature, descent_optimizer* opt,
                           const progress_state* s, const mlp* m) {
  char* model_path;
  int rc;
  /* Optimizer first, model second: a crash between the two leaves an optimizer one checkpoint
   * ahead of the model, which --resume detects through the step counts. */
  if (descent_optimizer_save(opt, r->checkpoint) != DESCENT_OK) {
    errorf("descent_optimizer_save %s: %s", r->checkpoint, descent_optimizer_last_error(opt));
    return -1;
  }
  model_path = format_string("%s%s", r->checkpoint, MODEL_SUFFIX);
  rc = save_model_file(model_path, signature, s, m);
  free(model_path);
  return rc;
}

/* Trains one run; returns an exit status (0, EXIT_DIVERGED, EXIT_ERROR, EXIT_INTERRUPTED). */
static int train(const options* o, const run* r, const dataset* data, result* res) {
  const size_t batch = (size_t)o->batch;
  const uint64_t steps_per_epoch = data->train_count / batch;
  const uint64_t total_steps = steps_per_epoch * (uint64_t)o->epochs;
  char* signature = run_signature(o, r);
  progress_state s;
  display d;
  mlp m;
  descent_optimizer* opt = NULL;
  uint32_t* perm = NULL;
  uint8_t labels[4096];
  FILE* csv = NULL;
  uint64_t rng = 0, session_steps = 0;
  double session_start, base_elapsed, session_eval = 0.0; /* evaluation time is not training */
  int status = EXIT_ERROR, shuffled = 0, saved_here = 0;
  size_t i;
  uint16_t* half_storage = NULL; /* --dtype bf16: the parameters, then the gradients */
  uint16_t* half_params[MLP_TENSORS];
  uint16_t* half_grads[MLP_TENSORS];

  memset(&s, 0, sizeof s);
  memset(&d, 0, sizeof d);
  memset(res, 0, sizeof *res);
  d.tty = isatty(fileno(stderr));
  if (mlp_create(&m, batch > EVAL_CHUNK ? batch : EVAL_CHUNK)) {
    errorf("out of memory");
    free(signature);
    return EXIT_ERROR;
  }
  perm = (uint32_t*)malloc(data->train_count * sizeof *perm);
  if (!perm) {
    errorf("out of memory");
    goto done;
  }
  mlp_init(&m, o->seed);
  s.epoch_rng = o->seed ^ 0xBB67AE8584CAA73BULL; /* the data-order stream */
  opt = make_optimizer(o, r, &m);
  if (!opt) goto done;

  if (o->resume && r->checkpoint) {
    char* model_path = format_string("%s%s", r->checkpoint, MODEL_SUFFIX);
    struct stat st;
    const int have_model = stat(model_path, &st) == 0;
    const int have_state = stat(r->checkpoint, &st) == 0;
    if (!have_model && !have_state) {
      printf("%s: no checkpoint at %s yet; starting a new run\n", r->name, r->checkpoint);
    } else {
      uint64_t opt_step = 0;
      if (!have_model || !have_state) {
        errorf("incomplete checkpoint: %s %s but %s %s", r->checkpoint,
               have_state ? "exists" : "is missing", model_path,
               have_model ? "exists" : "is missing");
        free(model_path);
        goto done;
      }
      if (load_model_file(model_path, signature, &s, &m)) {
        free(model_path);
        goto done;
      }
      if (descent_optimizer_load(opt, r->checkpoint) != DESCENT_OK) {
        errorf("descent_optimizer_load %s: %s", r->checkpoint, descent_optimizer_last_error(opt));
        free(model_path);
        goto done;
      }
      if (optimizer_step(opt, r, &opt_step) == 0 && opt_step != s.step) {
        errorf(
            "%s is at step %llu but %s at step %llu: the two files are from different "
            "checkpoints (interrupted while saving?)",
            r->checkpoint, (unsigned long long)opt_step, model_path, (unsigned long long)s.step);
        free(model_path);
        goto done;
      }
      printf("%s: resuming from %s at step %llu (epoch %llu, batch %llu)\n", r->name, r->checkpoint,
             (unsigned long long)s.step, (unsigned long long)s.epoch + 1,
             (unsigned long long)s.batch_index);
    }
    free(model_path);
  }
  if (r->csv && !(csv = csv_open(r->csv, &s))) goto done;
  if (o->dtype == DESCENT_BFLOAT16) {
    /* The bfloat16 parameters are the model; m.params holds their float32 widening. */
    size_t total = 0;
    for (i = 0; i < MLP_TENSORS; ++i) total += m.numel[i];
    half_storage = (uint16_t*)malloc(2 * total * sizeof *half_storage);
    if (!half_storage) {
      errorf("out of memory");
      goto done;
    }
    {
      size_t at = 0;
      for (i = 0; i < MLP_TENSORS; ++i) {
        half_params[i] = half_storage + at;
        half_grads[i] = half_storage + total + at;
        at += m.numel[i];
        bf16_round_array(m.params.tensor[i], half_params[i], m.numel[i]);
        bf16_widen_array(half_params[i], m.params.tensor[i], m.numel[i]);
      }
    }
  }

  base_elapsed = s.elapsed;
  session_start = now_seconds();
  d.ema_loss = s.row_count ? s.rows[s.row_count - 1].train_loss : log(10.0);

  /* Row 0: the loss of the first batch and the test accuracy before any update. */
  if (s.step == 0 && s.row_count == 0) {
    row r0;
    rng = s.epoch_rng;
    rng_shuffle(perm, data->train_count, &rng);
    shuffled = 1;
    gather_batch(&m, data, perm, 0, batch, labels);
    r0.step = 0;
    r0.epoch = 0.0;
    r0.train_loss = mlp_step(&m, batch, labels, 0, NULL);
    r0.test_acc = evaluate(&m, data);
    r0.lr = optimizer_lr(opt, r);
    r0.elapsed = s.elapsed;
    d.ema_loss = r0.train_loss;
    session_start = now_seconds(); /* the clock of training starts after row 0 */
    push_row(&s, r0);
    if (csv) {
      csv_write_row(csv, &r0);
      fflush(csv);
    }
  }

  while (s.epoch < (uint64_t)o->epochs) {
    double loss, t;
    if (g_interrupted || (o->steps && s.step >= o->steps)) break;
    if (!shuffled) {
      rng = s.epoch_rng;
      rng_shuffle(perm, data->train_count, &rng);
      shuffled = 1;
    }
    gather_batch(&m, data, perm, (size_t)s.batch_index * batch, batch, labels);
    loss = mlp_step(&m, batch, labels, 1, NULL);
    if (!isfinite(loss)) {
      clear_bar(&d);
      errorf("%s: the loss is %g at step %llu: training diverged (learning rate too high?)",
             r->name, loss, (unsigned long long)s.step + 1);
      res->diverged = 1;
      status = EXIT_DIVERGED;
      goto done;
    }
    if (o->dtype == DESCENT_BFLOAT16)
      for (i = 0; i < MLP_TENSORS; ++i)
        bf16_round_array(m.grads.tensor[i], half_grads[i], m.numel[i]);
    if (descent_optimizer_update(opt, MLP_TENSORS, m.names, NULL, NULL,
                                 o->dtype == DESCENT_BFLOAT16 ? (void* const*)half_params
                                                              : (void* const*)m.params.tensor,
                                 o->dtype == DESCENT_BFLOAT16
                                     ? (const void* const*)half_grads
                                     : (const void* const*)m.grads.tensor) != DESCENT_OK) {
      clear_bar(&d);
      errorf("descent_optimizer_update: %s", descent_optimizer_last_error(opt));
      goto done;
    }
    if (o->dtype == DESCENT_BFLOAT16)
      for (i = 0; i < MLP_TENSORS; ++i)
        bf16_widen_array(half_params[i], m.params.tensor[i], m.numel[i]);
    ++s.step;
    ++s.batch_index;
    ++session_steps;
    s.loss_sum += loss;
    ++s.loss_count;
    saved_here = 0;
    d.ema_loss = 0.98 * d.ema_loss + 0.02 * loss;
    t = now_seconds() - session_start - session_eval;
    s.elapsed = base_elapsed + t;
    {
      const uint64_t left = total_steps - s.step;
      const double per_step = t / (double)session_steps;
      draw_bar(&d, r->name, s.epoch, o->epochs, s.step, total_steps,
               (double)(session_steps * batch) / t, per_step * (double)left, 0);
    }
    {
      const int epoch_end = s.batch_index == steps_per_epoch;
      const int eval = epoch_end || (o->eval_every && s.step % (uint64_t)o->eval_every == 0);
      if (eval || s.step % (uint64_t)o->log_every == 0) {
        row rw;
        rw.step = s.step;
        rw.epoch = (double)s.step / (double)steps_per_epoch;
        rw.train_loss = s.loss_sum / (double)s.loss_count;
        rw.test_acc = NAN;
        if (eval) {
          const double eval_start = now_seconds();
          rw.test_acc = evaluate(&m, data);
          session_eval += now_seconds() - eval_start;
        }
        rw.lr = optimizer_lr(opt, r);
        s.elapsed = base_elapsed + (now_seconds() - session_start - session_eval);
        rw.elapsed = s.elapsed;
        push_row(&s, rw);
        s.loss_sum = 0.0;
        s.loss_count = 0;
        if (csv) {
          csv_write_row(csv, &rw);
          fflush(csv);
        }
        if (epoch_end) {
          clear_bar(&d);
          printf(
              "%-10s epoch %3llu/%d  step %6llu  train_loss %.4f  test_acc %.2f%%  lr %.3g  "
              "%.0f samples/s  elapsed %.1fs\n",
              r->name, (unsigned long long)s.epoch + 1, o->epochs, (unsigned long long)s.step,
              rw.train_loss, 100.0 * rw.test_acc, rw.lr,
              (double)(session_steps * batch) / (now_seconds() - session_start - session_eval),
              s.elapsed);
          fflush(stdout);
        }
      }
      if (epoch_end) {
        ++s.epoch;
        s.batch_index = 0;
        s.epoch_rng = rng;
        shuffled = 0;
        if (r->checkpoint) {
          if (save_checkpoint(r, signature, opt, &s, &m)) goto done;
          saved_here = 1;
        }
      }
    }
  }
  clear_bar(&d);
  res->complete = s.epoch >= (uint64_t)o->epochs;
  if (!res->complete) {
    res->interrupted = g_interrupted != 0;
    if (r->checkpoint && !saved_here) {
      if (save_checkpoint(r, signature, opt, &s, &m)) goto done;
    }
    printf("%s: %s at step %llu of %llu%s%s%s\n", r->name,
           g_interrupted ? "interrupted" : "stopped (--steps)", (unsigned long long)s.step,
           (unsigned long long)total_steps, r->checkpoint ? "; checkpoint in " : "",
           r->checkpoint ? r->checkpoint : "", r->checkpoint ? " (continue with --resume)" : "");
  }

  /* Summary from the curves (those of a checkpoint included). A run stopped between two
   * evaluations is measured now (not added to the curves, which stay those of the full run). */
  res->steps = s.step;
  res->elapsed = s.elapsed;
  res->final_acc = NAN;
  res->best_acc = NAN;
  {
    uint64_t measured_at = 0;
    for (i = 0; i < s.row_count; ++i) {
      const row* rw = &s.rows[i];
      if (isnan(rw->test_acc)) continue;
      res->final_acc = rw->test_acc;
      measured_at = rw->step;
      if (isnan(res->best_acc) || rw->test_acc > res->best_acc) res->best_acc = rw->test_acc;
      if (!res->target_step && rw->test_acc >= o->target && rw->step > 0) {
        res->target_step = rw->step;
        res->target_elapsed = rw->elapsed;
      }
    }
    if (isnan(res->final_acc) || measured_at != s.step) res->final_acc = evaluate(&m, data);
  }
  printf("%s: test accuracy %.2f%% after %llu steps (%.1f epochs, %.1f s); ", r->name,
         100.0 * res->final_acc, (unsigned long long)s.step,
         (double)s.step / (double)steps_per_epoch, s.elapsed);
  if (res->target_step)
    printf("%.0f%% first reached at step %llu (%.1f s)\n", 100.0 * o->target,
           (unsigned long long)res->target_step, res->target_elapsed);
  else
    printf("%.0f%% not reached\n", 100.0 * o->target);
  printf("%s: checksums params=%016llx optimizer=%016llx\n", r->name,
         (unsigned long long)mlp_checksum(&m), (unsigned long long)optimizer_checksum(opt));
  fflush(stdout);
  status = res->interrupted ? EXIT_INTERRUPTED : 0;
done:
  clear_bar(&d);
  if (csv) fclose(csv);
  descent_optimizer_free(opt);
  free(perm);
  free(half_storage);
  free(s.rows);
  free(signature);
  mlp_free(&m);
  return status;
}

/* ---- comparison plot
 * ------------------------------------------------------------------------------ */

static char* shell_quote(const char* s) {
  size_t n = 3, i, k = 0;
  char* q;
  for (i = 0; s[i]; ++i) n += s[i] == '\'' ? 4 : 1;
  q = (char*)malloc(n);
  if (!q) return NULL;
  q[k++] = '\'';
  for (i = 0; s[i]; ++i) {
    if (s[i] == '\'') {
      memcpy(q + k, "'\\''", 4);
      k += 4;
    } else {
      q[k++] = s[i];
    }
  }
  q[k++] = '\'';
  q[k] = '\0';
  return q;
}

static int plot_comparison(const options* o, const run* runs, int count) {
  char* script_path = format_string("%s/compare.gp", o->out);
  char* quoted = shell_quote(o->out);
  char* command;
  FILE* f = fopen(script_path, "w");
  int i, rc;
  if (!f || !quoted) {
    errorf("cannot write %s: %s", script_path, strerror(errno));
    free(script_path);
    free(quoted);
    return -1;
  }
  fprintf(f,
          "# gnuplot script written by fashion_mnist --compare; run it in this directory.\n"
          "set terminal pngcairo size 1000,1100 font ',10'\n"
          "set output 'compare.png'\n"
          "set datafile separator ','\n"
          "set multiplot layout 3,1 title 'Fashion-MNIST, MLP 784-512-256-10: batch %d, %d "
          "epochs, seed %llu'\n"
          "set grid\n"
          "set key bottom right\n"
          "set xlabel 'step'\n"
          "set ylabel 'test accuracy'\n"
          "set yrange [0.75:*]\n"
          "plot ",
          o->batch, o->epochs, (unsigned long long)o->seed);
  for (i = 0; i < count; ++i)
    fprintf(f, "%s'%s.csv' using 1:4 with linespoints pt 7 ps 0.5 title '%s'",
            i ? ", \\\n     " : "", runs[i].name, runs[i].name);
  fprintf(f,
          "\nset xlabel 'seconds of training (evaluation excluded)'\n"
          "plot ");
  for (i = 0; i < count; ++i)
    fprintf(f, "%s'%s.csv' using 6:4 with linespoints pt 7 ps 0.5 title '%s'",
            i ? ", \\\n     " : "", runs[i].name, runs[i].name);
  fprintf(f,
          "\nset xlabel 'step'\n"
          "set key top right\n"
          "set ylabel 'train loss (mean over %d steps)'\n"
          "set yrange [*:*]\n"
          "set logscale y\n"
          "plot ",
          o->log_every);
  for (i = 0; i < count; ++i)
    fprintf(f, "%s'%s.csv' using 1:($1 > 0 ? $3 : NaN) with lines lw 1.5 title '%s'",
            i ? ", \\\n     " : "", runs[i].name, runs[i].name);
  fprintf(f, "\nunset multiplot\n");
  if (fclose(f) != 0) {
    errorf("cannot write %s: %s", script_path, strerror(errno));
    free(script_path);
    free(quoted);
    return -1;
  }
  command = format_string("cd %s && gnuplot compare.gp", quoted);
  rc = system(command);
  if (rc != 0) errorf("gnuplot failed (exit status %d) on %s", rc, script_path);
  free(command);
  free(script_path);
  free(quoted);
  return rc == 0 ? 0 : -1;
}

/* ---- main
 * ------------------------------------------------------------------------------------------ */

/* The options that take a value, each followed by a space. */
static const char kValueOptions[] =
    "--optimizer --lr --config --schedule --epochs --batch --seed --steps --csv --checkpoint "
    "--compare --out --data --train-subset --test-subset --eval-every --log-every --target "
    "--dtype ";

static int valid_name(const char* s) {
  size_t n = strlen(s), i;
  if (n == 0 || n >= 64) return 0;
  for (i = 0; i < n; ++i) {
    const char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static int load_data(const options* o, dataset* data) {
  char err[8192];
  const double t0 = now_seconds();
  memset(data, 0, sizeof *data);
  if (fm_load_split(o->data_dir, "train", &data->train, err, sizeof err) ||
      fm_load_split(o->data_dir, "t10k", &data->test, err, sizeof err)) {
    errorf(
        "Fashion-MNIST: %s\n"
        "The data come from Debian's dataset-fashion-mnist package, which installs the four IDX "
        "files\n"
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,\n"
        "t10k-labels-idx1-ubyte.gz) in " FM_DEFAULT_DIR
        ". Install or repair it with\n"
        "  sudo apt-get install --reinstall dataset-fashion-mnist   (or scripts/install-deps.sh)\n"
        "or point --data DIR (or FASHION_MNIST_DIR) to a directory holding those files.",
        err);
    fm_free_split(&data->train);
    return -1;
  }
  data->train_count = data->train.count;
  data->test_count = data->test.count;
  if (o->train_subset && o->train_subset < data->train_count)
    data->train_count = (size_t)o->train_subset;
  if (o->test_subset && o->test_subset < data->test_count)
    data->test_count = (size_t)o->test_subset;
  printf(
      "Fashion-MNIST from %s: %zu training images (of %zu), %zu test images (of %zu), loaded in "
      "%.2f s\n",
      o->data_dir, data->train_count, data->train.count, data->test_count, data->test.count,
      now_seconds() - t0);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  options o;
  run runs[MAX_RUNS];
  result results[MAX_RUNS];
  json_member members[MAX_RUNS];
  int run_count = 0, member_count = 0, i, status = 0;
  dataset data;
  const char* env_dir = getenv("FASHION_MNIST_DIR");

  setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with stderr's, also into a pipe */
  memset(&o, 0, sizeof o);
  memset(runs, 0, sizeof runs);
  o.optimizer = "adamw";
  o.epochs = 6;
  o.batch = 256;
  o.schedule = "cosine";
  o.log_every = 50;
  o.target = 0.88;
  o.dtype = DESCENT_FLOAT32;
  o.data_dir = env_dir && *env_dir ? env_dir : FM_DEFAULT_DIR;

  for (i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes_value = 1, bad = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--resume") == 0) {
      o.resume = 1;
      takes_value = 0;
    } else if (!v) {
      errorf(strncmp(a, "--", 2) == 0 && strstr(kValueOptions, a) &&
                     strstr(kValueOptions, a)[strlen(a)] == ' '
                 ? "%s needs a value (see --help)"
                 : "unknown option %s (see --help)",
             a);
      return EXIT_ERROR;
    } else if (strcmp(a, "--optimizer") == 0) {
      o.optimizer = v;
    } else if (strcmp(a, "--lr") == 0) {
      bad = parse_double(v, &o.lr) || o.lr < 0;
      o.has_lr = 1;
    } else if (strcmp(a, "--config") == 0) {
      o.config = v;
    } else if (strcmp(a, "--schedule") == 0) {
      o.schedule = v;
    } else if (strcmp(a, "--epochs") == 0) {
      bad = parse_positive_int(v, &o.epochs);
    } else if (strcmp(a, "--batch") == 0) {
      bad = parse_positive_int(v, &o.batch) || o.batch > 4096;
    } else if (strcmp(a, "--seed") == 0) {
      bad = parse_u64(v, &o.seed);
    } else if (strcmp(a, "--steps") == 0) {
      bad = parse_u64(v, &o.steps) || o.steps == 0;
    } else if (strcmp(a, "--csv") == 0) {
      o.csv = v;
    } else if (strcmp(a, "--checkpoint") == 0) {
      o.checkpoint = v;
    } else if (strcmp(a, "--compare") == 0) {
      o.compare = v;
    } else if (strcmp(a, "--out") == 0) {
      o.out = v;
    } else if (strcmp(a, "--data") == 0) {
      o.data_dir = v;
    } else if (strcmp(a, "--train-subset") == 0) {
      bad = parse_u64(v, &o.train_subset) || o.train_subset == 0;
    } else if (strcmp(a, "--test-subset") == 0) {
      bad = parse_u64(v, &o.test_subset) || o.test_subset == 0;
    } else if (strcmp(a, "--eval-every") == 0) {
      bad = parse_positive_int(v, &o.eval_every);
    } else if (strcmp(a, "--log-every") == 0) {
      bad = parse_positive_int(v, &o.log_every);
    } else if (strcmp(a, "--dtype") == 0) {
      bad = !v;
      if (v && (strcmp(v, "bf16") == 0 || strcmp(v, "bfloat16") == 0))
        o.dtype = DESCENT_BFLOAT16;
      else if (v && strcmp(v, "float32") == 0)
        o.dtype = DESCENT_FLOAT32;
      else
        bad = 1;
    } else if (strcmp(a, "--target") == 0) {
      bad = parse_double(v, &o.target) || o.target <= 0 || o.target > 1;
    } else {
      errorf("unknown option %s (see --help)", a);
      return EXIT_ERROR;
    }
    if (bad) {
      errorf("invalid value for %s: %s", a, v);
      return EXIT_ERROR;
    }
    if (takes_value) ++i;
  }
  if (o.resume && !o.checkpoint) {
    errorf("--resume needs --checkpoint PATH");
    return EXIT_ERROR;
  }

  /* The runs. */
  if (o.compare) {
    const char* p = o.compare;
    if (o.has_lr) {
      errorf(
          "--lr sets one optimizer's rate; with --compare give rates through --config, e.g. "
          "'{\"adamw\": {\"learning_rate\": 2e-3}}'");
      return EXIT_ERROR;
    }
    if (o.csv) {
      errorf("with --compare the curves go to DIR/<name>.csv (--out DIR); --csv is for one run");
      return EXIT_ERROR;
    }
    if (!o.out) o.out = "fashion-mnist-out";
    while (*p) {
      const size_t len = strcspn(p, ",");
      if (run_count == MAX_RUNS || len == 0 || len >= sizeof runs[0].name) {
        errorf("--compare %s: expected up to %d comma-separated optimizer names", o.compare,
               MAX_RUNS);
        return EXIT_ERROR;
      }
      memcpy(runs[run_count].name, p, len);
      runs[run_count].name[len] = '\0';
      ++run_count;
      p += len;
      if (*p == ',') ++p;
    }
    if (o.config) {
      member_count = json_split(o.config, members, MAX_RUNS);
      if (member_count < 0) {
        errorf(
            "--config with --compare must be a JSON object keyed by optimizer name, e.g. "
            "'{\"adamw\": {\"weight_decay\": 0.1}}': %s",
            o.config);
        return EXIT_ERROR;
      }
      for (i = 0; i < member_count; ++i) {
        int k, found = 0;
        for (k = 0; k < run_count; ++k) {
          if (strcmp(runs[k].name, members[i].key) == 0) {
            runs[k].config = members[i].value;
            found = 1;
          }
        }
        if (!found) {
          errorf("--config: \"%s\" is not one of the compared optimizers (%s)", members[i].key,
                 o.compare);
          return EXIT_ERROR;
        }
      }
    }
  } else {
    if (strlen(o.optimizer) >= sizeof runs[0].name) {
      errorf("--optimizer %s: no such optimizer", o.optimizer);
      return EXIT_ERROR;
    }
    strcpy(runs[0].name, o.optimizer);
    runs[0].config = o.config ? xstrdup(o.config) : NULL;
    run_count = 1;
  }
  for (i = 0; i < run_count; ++i) {
    if (!valid_name(runs[i].name)) {
      errorf("\"%s\" is not an optimizer name (lower-case kinds such as adamw, or muon+adamw)",
             runs[i].name);
      return EXIT_ERROR;
    }
  }
  if (o.out && mkdir_p(o.out) != 0) {
    errorf("cannot create the output directory %s: %s", o.out, strerror(errno));
    return EXIT_ERROR;
  }
  if (o.compare && system("command -v gnuplot >/dev/null 2>&1") != 0) {
    errorf(
        "--compare draws its plot with gnuplot, which is not installed: "
        "sudo apt-get install gnuplot-nox (or scripts/install-deps.sh)");
    return EXIT_ERROR;
  }

  if (load_data(&o, &data)) return EXIT_ERROR;
  if (data.train_count < (size_t)o.batch) {
    errorf("--batch %d is larger than the training set (%zu images)", o.batch, data.train_count);
    return EXIT_ERROR;
  }
  {
    const uint64_t total = (uint64_t)(data.train_count / (size_t)o.batch) * (uint64_t)o.epochs;
    for (i = 0; i < run_count; ++i) {
      runs[i].schedule = expand_schedule(o.schedule, total);
      if (o.compare) {
        runs[i].csv = format_string("%s/%s.csv", o.out, runs[i].name);
        if (o.checkpoint) runs[i].checkpoint = format_string("%s.%s", o.checkpoint, runs[i].name);
      } else {
        if (o.csv)
          runs[i].csv = xstrdup(o.csv);
        else if (o.out)
          runs[i].csv = format_string("%s/%s.csv", o.out, runs[i].name);
        if (o.checkpoint) runs[i].checkpoint = xstrdup(o.checkpoint);
      }
    }
    printf("MLP 784-512-256-10, batch %d, %d epochs (%llu steps), seed %llu%s%s\n", o.batch,
           o.epochs, (unsigned long long)total, (unsigned long long)o.seed,
           runs[0].schedule ? ", schedule " : "", runs[0].schedule ? runs[0].schedule : "");
    fflush(stdout);
  }

  {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
  }

  for (i = 0; i < run_count; ++i) {
    const int rc = train(&o, &runs[i], &data, &results[i]);
    if (rc == EXIT_ERROR || rc == EXIT_INTERRUPTED) {
      status = rc;
      break;
    }
    if (rc != 0) status = rc;
  }

  if (o.compare && (status == 0 || status == EXIT_DIVERGED)) {
    printf("\n%-12s %10s %10s %14s %10s %8s %10s\n", "optimizer", "final acc", "best acc",
           "steps to", "seconds to", "steps", "time");
    for (i = 0; i < run_count; ++i) {
      const result* r = &results[i];
      char target[32], target_time[32];
      if (r->diverged) {
        printf("%-12s diverged\n", runs[i].name);
        continue;
      }
      if (r->target_step) {
        snprintf(target, sizeof target, "%.0f%%: %llu", 100.0 * o.target,
                 (unsigned long long)r->target_step);
        snprintf(target_time, sizeof target_time, "%.1fs", r->target_elapsed);
      } else {
        snprintf(target, sizeof target, "%.0f%%: never", 100.0 * o.target);
        snprintf(target_time, sizeof target_time, "never");
      }
      printf("%-12s %9.2f%% %9.2f%% %14s %10s %8llu %9.1fs\n", runs[i].name, 100.0 * r->final_acc,
             100.0 * r->best_acc, target, target_time, (unsigned long long)r->steps, r->elapsed);
    }
    if (plot_comparison(&o, runs, run_count) == 0)
      printf("\nplot: %s/compare.png   curves: %s/<optimizer>.csv\n", o.out, o.out);
    else if (status == 0)
      status = EXIT_ERROR;
  }

  for (i = 0; i < run_count; ++i) {
    free(runs[i].schedule);
    free(runs[i].csv);
    free(runs[i].checkpoint);
    if (!o.compare) free(runs[i].config);
  }
  json_free_members(members, member_count);
  fm_free_split(&data.train);
  fm_free_split(&data.test);
  return status;
}
