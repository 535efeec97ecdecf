/*
 * descent: neural-network optimizers behind a stable C ABI.
 *
 * Conventions that hold for every function in this header:
 *  - Fallible functions return a descent_status; DESCENT_OK (0) means success.
 *  - On error nothing observable changes: out-parameters, the caller's parameter buffers and
 *    the optimizer's state are exactly as they were before the call.
 *  - Messages: every failed call on a handle records its message on the handle
 *    (descent_optimizer_last_error). Functions without a handle (create, the muon+adamw
 *    constructor, schedule evaluation, clipping) take a caller buffer (char* error, size_t
 *    error_capacity; may be NULL/0) and write the message there, NUL-terminated and truncated to
 *    fit, only when they fail; DESCENT_ERROR_CAPACITY bytes always hold a whole message. The
 *    message of the last failed call of the calling OS thread is also kept
 *    (descent_last_error), a convenience for C: goroutines and Julia tasks may hop between
 *    threads, so bindings use the handle or the caller buffer.
 *  - The library never keeps a pointer the caller passed in after the call returns, with one
 *    documented exception: callbacks (schedules, filters) and their user_data, which are kept
 *    until replaced or until the optimizer is freed, then released through free_user_data.
 *  - Strings are NUL-terminated UTF-8. Counts of things (tensors, keys, array capacities) and
 *    byte sizes are size_t; element counts and tensor dimensions are int64_t.
 *  - Strings the library returns are owned by it: static ones (names of kinds, statuses,
 *    dtypes, versions) live as long as the process; those owned by a handle (kind, last error,
 *    state keys, hyperparameter names) stay valid until the next call on that handle that is not
 *    a const (read-only) call, or until it is freed. Copy them if you need them longer.
 *  - Threading: a handle may be used by one thread at a time; distinct handles are
 *    independent and may be used concurrently from different threads.
 *  - Free functions return void and accept NULL.
 *  - ABI: libdescent.so.1. Every 1.x release is backward compatible with 1.0: functions, enum
 *    values and status codes are only ever added (each marked "since 1.x" from 1.1 on); nothing
 *    is removed or changes signature before 2.0. Everything below exists since 1.0.
 *    docs/abi-policy.md has the rules and the deprecation process.
 */
#ifndef DESCENT_DESCENT_H
#define DESCENT_DESCENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Version ---------------------------------------------------------------------------- */
#define DESCENT_VERSION_MAJOR 1
#define DESCENT_VERSION_MINOR 2
#define DESCENT_VERSION_PATCH 1
#define DESCENT_VERSION_NUMBER \
  (DESCENT_VERSION_MAJOR * 10000 + DESCENT_VERSION_MINOR * 100 + DESCENT_VERSION_PATCH)

/* ---- Export ----------------------------------------------------------------------------- */
#if defined(_WIN32) && defined(DESCENT_BUILDING_SHARED)
#define DESCENT_API __declspec(dllexport)
#elif defined(_WIN32) && defined(DESCENT_SHARED)
#define DESCENT_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define DESCENT_API __attribute__((visibility("default")))
#else
#define DESCENT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status codes: values are frozen; new codes are only ever appended. ------------------ */
typedef enum descent_status {
  DESCENT_OK = 0,
  DESCENT_ERR_NULL_ARGUMENT = 1,     /* a required pointer argument was NULL */
  DESCENT_ERR_INVALID_ARGUMENT = 2,  /* an argument is malformed (empty name, bad dimension...) */
  DESCENT_ERR_UNKNOWN_KIND = 3,      /* no optimizer of that kind name */
  DESCENT_ERR_UNKNOWN_KEY = 4,       /* no hyperparameter, state slot or tensor of that name */
  DESCENT_ERR_WRONG_TYPE = 5,        /* a hyperparameter value of the wrong type */
  DESCENT_ERR_OUT_OF_RANGE = 6,      /* a hyperparameter value outside its valid range */
  DESCENT_ERR_DTYPE_MISMATCH = 7,    /* a buffer's dtype differs from the declared tensor's */
  DESCENT_ERR_SHAPE_MISMATCH = 8,    /* a buffer's shape or size differs from the declared one */
  DESCENT_ERR_INVALID_STATE = 9,     /* the call is not valid now (e.g. learning_rate never set) */
  DESCENT_ERR_PARSE = 10,            /* malformed JSON or configuration text */
  DESCENT_ERR_BUFFER_TOO_SMALL = 11, /* an output buffer cannot hold the result */
  DESCENT_ERR_IO = 12,               /* a file could not be read or written */
  DESCENT_ERR_CORRUPT = 13,          /* a state file or buffer is damaged or not descent's */
  DESCENT_ERR_OUT_OF_MEMORY = 14,
  DESCENT_ERR_UNSUPPORTED = 15, /* valid request this build cannot do */
  DESCENT_ERR_DUPLICATE = 16,   /* a name given twice */
  DESCENT_ERR_CALLBACK = 17,    /* a callback failed (returned a status that is not a
                                   descent_status of this header, or DESCENT_ERR_CALLBACK) */
  DESCENT_ERR_INTERNAL = 99,
  /* Not a status: makes the enum 32 bits wide and lets any int32 value be passed safely. */
  DESCENT_STATUS_FORCE_32BIT = 0x7fffffff
} descent_status;

/* Element types. Values are frozen. Parameters and gradients are float32, float64, bfloat16 or
 * float16 (since 1.2); how the state of a half-precision parameter is kept is the hyperparameter
 * "state_precision" of every kind: "float32" (default: float32 state and arithmetic, the parameter
 * rounded once per step), "master" (plus a float32 master copy, slot "<param>.master") or "param"
 * (MLX's behaviour: state in the parameter's dtype, every operation rounded to it). With
 * "float32", "stochastic_rounding" (bool) and "rounding_seed" (int >= 0) round the parameter
 * stochastically and reproducibly. The policy is fixed once the state is initialised
 * (docs/precision.md). */
typedef enum descent_dtype {
  DESCENT_FLOAT32 = 1,
  DESCENT_FLOAT64 = 2,
  DESCENT_BFLOAT16 = 3,
  DESCENT_FLOAT16 = 4,
  DESCENT_UINT64 = 5,                    /* used by the "step" state slot only */
  DESCENT_DTYPE_FORCE_32BIT = 0x7fffffff /* not a dtype: keeps the enum 32 bits wide */
} descent_dtype;

/* Hyperparameter value types, as reported by descent_optimizer_hyperparameter_type. */
typedef enum descent_value_type {
  DESCENT_VALUE_NONE = 0, /* an optional hyperparameter that is not set (e.g. adafactor beta_1) */
  DESCENT_VALUE_DOUBLE = 1,
  DESCENT_VALUE_INT = 2,
  DESCENT_VALUE_BOOL = 3,
  DESCENT_VALUE_DOUBLE_ARRAY = 4,
  DESCENT_VALUE_STRING = 5, /* a choice among named options (e.g. muon "coefficients") */
  DESCENT_VALUE_TYPE_FORCE_32BIT = 0x7fffffff /* not a type: keeps the enum 32 bits wide */
} descent_value_type;

/* Largest number of dimensions a tensor may have. */
#define DESCENT_MAX_NDIM 16
/* A caller's error buffer of this many bytes always holds a whole message (with its NUL). */
#define DESCENT_ERROR_CAPACITY 1024
/* Alignment, in bytes, of every parameter's offset in the flat layout and of its total size. */
#define DESCENT_FLAT_ALIGNMENT 64

/* ---- Library information ------------------------------------------------------------------ */
DESCENT_API unsigned descent_version_number(void);    /* DESCENT_VERSION_NUMBER of the library */
DESCENT_API const char* descent_version_string(void); /* "MAJOR.MINOR.PATCH" */
DESCENT_API const char* descent_status_name(descent_status status); /* "DESCENT_ERR_..." */
DESCENT_API const char* descent_dtype_name(descent_dtype dtype);    /* "float32", ... */
/* The optimizer kinds descent_optimizer_create accepts, "multi" included (it is last). */
DESCENT_API size_t descent_kind_count(void);
/* Kind name by index in [0, descent_kind_count()); NULL past the end. Static storage. */
DESCENT_API const char* descent_kind_name(size_t index);
/* Message of the last failed call made on this OS thread ("" if none). Valid until the next
 * call on this thread. Prefer the per-handle message or a caller buffer (see the top). */
DESCENT_API const char* descent_last_error(void);

/* ---- Optimizer lifecycle -------------------------------------------------------------------
 * create -> configure -> declare parameters -> [init] -> update ... -> free
 * Kinds are MLX's class names in lower case: "sgd", "rmsprop", "adagrad", "adadelta", "adam",
 * "adamw", "adamax", "lion", "adafactor", "muon", and "multi" (parameter groups, see below). */
typedef struct descent_optimizer descent_optimizer;

/* Creates an optimizer with MLX's defaults. *out is set only on success and must be released
 * with descent_optimizer_free. On failure the message goes to error[0..error_capacity) (may be
 * NULL). */
DESCENT_API descent_status descent_optimizer_create(const char* kind, descent_optimizer** out,
                                                    char* error, size_t error_capacity);
DESCENT_API void descent_optimizer_free(descent_optimizer* opt);
/* The kind name given at creation; owned by the handle. Freeing the handle from inside one of
 * its own callbacks is undefined behaviour. */
DESCENT_API const char* descent_optimizer_kind(const descent_optimizer* opt);
/* Message of the last failed call on this handle ("" if none); owned by the handle, valid
 * until the next call on it. */
DESCENT_API const char* descent_optimizer_last_error(const descent_optimizer* opt);

/* ---- Hyperparameters, by MLX's names ------------------------------------------------------
 * Setters validate immediately (range errors name the key). Constraints that involve several
 * keys (e.g. nesterov needs momentum > 0 and dampening == 0) are checked by
 * descent_optimizer_configure_json and by init/update. A change takes effect at the next
 * update. An int is accepted where a double is expected and an integral double where an int
 * is. "learning_rate" is held as float32, as MLX holds it. */
DESCENT_API descent_status descent_optimizer_set_double(descent_optimizer* opt, const char* key,
                                                        double value);
DESCENT_API descent_status descent_optimizer_set_int(descent_optimizer* opt, const char* key,
                                                     int64_t value);
DESCENT_API descent_status descent_optimizer_set_bool(descent_optimizer* opt, const char* key,
                                                      bool value);
DESCENT_API descent_status descent_optimizer_set_doubles(descent_optimizer* opt, const char* key,
                                                         const double* values, size_t count);
/* A string hyperparameter; the value is copied. A value that is not one of the key's choices is
 * DESCENT_ERR_OUT_OF_RANGE (the message lists them). */
DESCENT_API descent_status descent_optimizer_set_string(descent_optimizer* opt, const char* key,
                                                        const char* value);
/* Unsets an optional hyperparameter (MLX's None). */
DESCENT_API descent_status descent_optimizer_unset(descent_optimizer* opt, const char* key);

DESCENT_API descent_status descent_optimizer_get_double(const descent_optimizer* opt,
                                                        const char* key, double* out);
DESCENT_API descent_status descent_optimizer_get_int(const descent_optimizer* opt, const char* key,
                                                     int64_t* out);
DESCENT_API descent_status descent_optimizer_get_bool(const descent_optimizer* opt, const char* key,
                                                      bool* out);
/* Writes the array into out[0..capacity) and its length to *count. With out == NULL only *count
 * is written; a capacity smaller than the length is DESCENT_ERR_BUFFER_TOO_SMALL. */
DESCENT_API descent_status descent_optimizer_get_doubles(const descent_optimizer* opt,
                                                         const char* key, double* out,
                                                         size_t capacity, size_t* count);
/* Writes the string and its terminating NUL into out[0..capacity) and its length (without the
 * NUL) to *length. With out == NULL only *length is written; a capacity smaller than length + 1
 * is DESCENT_ERR_BUFFER_TOO_SMALL. */
DESCENT_API descent_status descent_optimizer_get_string(const descent_optimizer* opt,
                                                        const char* key, char* out, size_t capacity,
                                                        size_t* length);

/* Number of hyperparameters this kind knows, their names by index, and the current type of
 * one (DESCENT_VALUE_NONE when an optional one is unset). Names are owned by the library. */
DESCENT_API descent_status descent_optimizer_hyperparameter_count(const descent_optimizer* opt,
                                                                  size_t* out);
DESCENT_API descent_status descent_optimizer_hyperparameter_name(const descent_optimizer* opt,
                                                                 size_t index, const char** out);
DESCENT_API descent_status descent_optimizer_hyperparameter_type(const descent_optimizer* opt,
                                                                 const char* key,
                                                                 descent_value_type* out);

/* Applies a JSON object of hyperparameters, e.g.
 *   {"learning_rate": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01}
 * All or nothing: an unknown key, a wrong type or an invalid value changes nothing, and the
 * message names the key. JSON null unsets an optional key. */
DESCENT_API descent_status descent_optimizer_configure_json(descent_optimizer* opt,
                                                            const char* json);

/* ---- Parameters -----------------------------------------------------------------------------
 * Declares a named tensor the optimizer will update. Names are MLX tree_flatten paths
 * ("layers.0.weight"); state keys are "<name>.<slot>". ndim may be 0 (a scalar; shape may then
 * be NULL). Parameters can be declared until the state is initialised. The i-th declared
 * parameter has index i (0-based); indices never change. */
DESCENT_API descent_status descent_optimizer_add_parameter(descent_optimizer* opt, const char* name,
                                                           descent_dtype dtype, size_t ndim,
                                                           const int64_t* shape);
DESCENT_API descent_status descent_optimizer_parameter_count(const descent_optimizer* opt,
                                                             size_t* out);
/* A declared parameter by index: its name (owned by the handle; see the top for how long it
 * lives: declaring another parameter or loading a state may move it), dtype,
 * number of dimensions and dimensions, as declared. Each output may be NULL; when shape is given,
 * capacity must be at least its ndim (DESCENT_MAX_NDIM always suffices). */
DESCENT_API descent_status descent_optimizer_parameter_info(const descent_optimizer* opt,
                                                            size_t index, const char** name,
                                                            descent_dtype* dtype, size_t* ndim,
                                                            int64_t* shape, size_t capacity);
/* The index of a declared parameter (DESCENT_ERR_UNKNOWN_KEY if none has that name). */
DESCENT_API descent_status descent_optimizer_parameter_index(const descent_optimizer* opt,
                                                             const char* name, size_t* out);

/* Allocates the state of every declared parameter (zeros, as MLX's init). Optional: the first
 * update does it. Calling it again is a no-op. */
DESCENT_API descent_status descent_optimizer_init(descent_optimizer* opt);

/* ---- Updates -----------------------------------------------------------------------------------
 * One optimizer step (MLX's apply_gradients): the step counter advances once, then each given
 * parameter is updated in place from its gradient. Three forms, same arithmetic, same bits:
 *  - by name:  tensor i is names[i] with params[i] and grads[i];
 *  - by index: tensor i is the parameter declared at indices[i] (no string work per step);
 *  - flat:     every declared parameter at once, from two buffers in the flat layout below.
 * In the first two forms a parameter may appear once; parameters not given are left alone and
 * their state untouched. dtypes and numels are optional (NULL) checks: when given, each must
 * equal the declared tensor's dtype and element count, else nothing is updated. params[i] and
 * grads[i] must not overlap (checked); buffers of different tensors must not overlap either
 * (not checked). */
DESCENT_API descent_status descent_optimizer_update(descent_optimizer* opt, size_t count,
                                                    const char* const* names,
                                                    const descent_dtype* dtypes,
                                                    const int64_t* numels, void* const* params,
                                                    const void* const* grads);
DESCENT_API descent_status descent_optimizer_update_indexed(
    descent_optimizer* opt, size_t count, const size_t* indices, const descent_dtype* dtypes,
    const int64_t* numels, void* const* params, const void* const* grads);

/* The flat layout: the declared parameters one after another in declaration order, each at a
 * byte offset that is a multiple of DESCENT_FLAT_ALIGNMENT (padding between them is never read
 * or written), the total size rounded up to DESCENT_FLAT_ALIGNMENT. Declaring a parameter
 * appends it: earlier offsets never move. float32 and float64 parameters may share a layout. */
DESCENT_API descent_status descent_optimizer_flat_offset(const descent_optimizer* opt, size_t index,
                                                         size_t* byte_offset);
DESCENT_API descent_status descent_optimizer_flat_size(const descent_optimizer* opt, size_t* bytes);
/* Updates every declared parameter: parameter i lives at (char*)params + flat_offset(i), its
 * gradient at (const char*)grads + flat_offset(i). size must equal descent_optimizer_flat_size;
 * both buffers must be aligned to the largest element size declared (8 bytes suffice; 64 let
 * the kernels run fastest) and must not overlap each other. Both are plain pointers to memory
 * without pointers in it, which Go passes from ordinary slices and Python from one array. */
DESCENT_API descent_status descent_optimizer_update_flat(descent_optimizer* opt, void* params,
                                                         const void* grads, size_t size);

/* ---- State -----------------------------------------------------------------------------------
 * Keys follow MLX's tree_flatten(optimizer.state): "step" (uint64, shape ()), "learning_rate"
 * (float32, shape ()) and "<param>.<slot>" (e.g. "w.m", "w.v") in the parameter's dtype (for a
 * bfloat16/float16 parameter: float32 unless state_precision is "param"; "<param>.master" is
 * float32 and holds NaN until the parameter's first update seeds it).
 * Per-parameter slots exist once the state is initialised. Copying state in and then updating
 * continues exactly where that state came from. */
DESCENT_API descent_status descent_optimizer_state_count(const descent_optimizer* opt, size_t* out);
/* Key by index in [0, count); owned by the handle (see the top for how long it lives). */
DESCENT_API descent_status descent_optimizer_state_key(const descent_optimizer* opt, size_t index,
                                                       const char** out);
/* dtype, number of dimensions and dimensions of a slot. Each output may be NULL; when shape is
 * given, capacity must be at least the slot's ndim. Before the state is initialised only "step"
 * and "learning_rate" exist here (as in MLX); descent_optimizer_state_set on a per-parameter key
 * initialises the state first. */
DESCENT_API descent_status descent_optimizer_state_info(const descent_optimizer* opt,
                                                        const char* key, descent_dtype* dtype,
                                                        size_t* ndim, int64_t* shape,
                                                        size_t capacity);
/* Copies a slot out of / into the optimizer. dtype and numel (elements) must match the slot. */
DESCENT_API descent_status descent_optimizer_state_get(const descent_optimizer* opt,
                                                       const char* key, descent_dtype dtype,
                                                       void* out, int64_t numel);
DESCENT_API descent_status descent_optimizer_state_set(descent_optimizer* opt, const char* key,
                                                       descent_dtype dtype, const void* data,
                                                       int64_t numel);

/* ---- Callbacks ---------------------------------------------------------------------------------
 * Schedules and filters can be the caller's functions. A callback returns DESCENT_OK, or a
 * failure status and, optionally, a message written into message[0..message_capacity) (a
 * library buffer, valid during the call only, DESCENT_ERROR_CAPACITY bytes). A failure fails
 * the call that ran the callback with that status (DESCENT_ERR_CALLBACK when it is not one of
 * this header's codes) and the callback's message, and that call changes nothing. Callbacks
 * must not let exceptions, panics or longjmps cross into the library: catch them and return a
 * status. The callback and user_data are kept until replaced or until the optimizer is freed;
 * then free_user_data (may be NULL) is called with user_data, once, on whichever thread frees
 * the optimizer (a garbage collector's finalizer thread, say). A call that fails leaves
 * user_data with the caller (free_user_data is not called).
 * Re-entrancy: inside a callback, read-only calls on the optimizer that runs it (getters,
 * state_get, save) are allowed; any call that changes it, or its multi optimizer or groups
 * (including clearing or replacing the schedule being run), is refused with
 * DESCENT_ERR_INVALID_STATE. Freeing it from inside is undefined behaviour. */

/* ---- Learning-rate schedules ----------------------------------------------------------------
 * A schedule replaces the learning rate: before each update the optimizer evaluates it at the
 * step count *before* the increment (MLX), so update k uses schedule(k - 1), and stores the
 * result (float32) as "learning_rate". Schedules are given as
 *  - a string: "cosine:<iters>:<min_lr>", "warmup_cosine:<warmup>:<iters>:<min_lr>" (the initial
 *    value is the optimizer's learning_rate when the schedule is attached), or a spelled-out form
 *    with every argument, e.g. "exponential_decay:0.1:0.9", "step_decay:0.1:0.9:1000",
 *    "cosine_decay:0.1:1000:0.0", "linear_schedule:0:0.1:100" (see docs/schedules.md);
 *  - JSON, as in the golden files and in descent_optimizer_configure_json:
 *    {"learning_rate": {"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000}};
 *  - a callback, evaluated once when attached and once per update. It stores the learning rate
 *    in *value, which must be finite and fit float32 (else DESCENT_ERR_OUT_OF_RANGE). */
typedef descent_status (*descent_schedule_fn)(uint64_t step, void* user_data, double* value,
                                              char* message, size_t message_capacity);

DESCENT_API descent_status descent_optimizer_set_schedule(descent_optimizer* opt, const char* spec);
DESCENT_API descent_status descent_optimizer_set_schedule_callback(descent_optimizer* opt,
                                                                   descent_schedule_fn fn,
                                                                   void* user_data,
                                                                   void (*free_user_data)(void*));
/* Removes the schedule; the learning rate keeps its last value. */
DESCENT_API descent_status descent_optimizer_clear_schedule(descent_optimizer* opt);
/* Evaluates a schedule (string or JSON form) at a step, without an optimizer. String forms that
 * take their initial value from an optimizer use init_lr. */
DESCENT_API descent_status descent_schedule_value(const char* spec, double init_lr, uint64_t step,
                                                  double* out, char* error, size_t error_capacity);

/* ---- Gradient clipping ------------------------------------------------------------------------
 * MLX's clip_grad_norm over a set of tensors, in place: total = sqrt(sum of squares of every
 * element of every tensor) computed accurately (double accumulation), scale =
 * min(max_norm / (total + 1e-6), 1), every gradient multiplied by scale. *total_norm (may be
 * NULL) receives the norm before clipping. max_norm < 0 is DESCENT_ERR_OUT_OF_RANGE.
 * bfloat16/float16 gradients are scaled like float32 ones (a float32 factor), each product
 * computed in float32 and rounded once to the tensor's dtype. */
DESCENT_API descent_status descent_clip_grad_norm(size_t count, const descent_dtype* dtypes,
                                                  const int64_t* numels, void* const* grads,
                                                  double max_norm, double* total_norm, char* error,
                                                  size_t error_capacity);

/* ---- Saving and resuming ----------------------------------------------------------------------
 * The whole state (step, learning rate, schedule position, every slot) plus the hyperparameters
 * needed to continue, as safetensors with MLX's tree_flatten key names: a file written by
 * mx.save_safetensors(path, tree_flatten(opt.state)) loads here and one written here loads in
 * MLX. descent's own information (kind, hyperparameters, format version) is in __metadata__.
 * Parameters must be declared before loading; the file must match them in dtype and shape.
 * A load that fails changes nothing. A save never leaves a damaged file where a good one was
 * (temporary file, fsync, rename, fsync of the directory). */
DESCENT_API descent_status descent_optimizer_save(const descent_optimizer* opt, const char* path);
DESCENT_API descent_status descent_optimizer_load(descent_optimizer* opt, const char* path);
/* Serialises into buf[0..capacity); *size receives the byte count. With buf == NULL only *size is
 * written; a smaller capacity is DESCENT_ERR_BUFFER_TOO_SMALL. */
DESCENT_API descent_status descent_optimizer_save_to_buffer(const descent_optimizer* opt, void* buf,
                                                            size_t capacity, size_t* size);
DESCENT_API descent_status descent_optimizer_load_from_buffer(descent_optimizer* opt,
                                                              const void* buf, size_t size);

/* ---- MultiOptimizer (kind "multi") --------------------------------------------------------------
 * Parameter groups as in MLX: each parameter goes to the first group whose filter accepts it; the
 * last group is the fallback and accepts everything (a filter on it is DESCENT_ERR_INVALID_STATE
 * at init). A group's filter accepts a parameter when any of its include clauses matches (or it
 * has none) and none of its exclude patterns does. Each group keeps its own step and state; state
 * keys are "states.<i>.<key>". A group that receives no parameter is fine (MLX raises
 * IndexError). Groups and filters are fixed once the state is initialised. See docs/multi.md. */
typedef descent_status (*descent_filter_fn)(const char* name, size_t ndim, const int64_t* shape,
                                            void* user_data, bool* accept, char* message,
                                            size_t message_capacity);

/* Adds a group with a new optimizer of `kind`, configured by config_json (may be NULL).
 * *index (may be NULL) receives the group's index. */
DESCENT_API descent_status descent_multi_add_group(descent_optimizer* multi, const char* kind,
                                                   const char* config_json, size_t* index);
DESCENT_API descent_status descent_multi_group_count(const descent_optimizer* multi, size_t* out);
/* A borrowed handle on group `index` for configuring it (hyperparameters, schedule) and reading
 * its state. It is owned by the multi optimizer (descent_optimizer_free ignores it) and valid as
 * long as `multi`. Declaring parameters, init and update on it are DESCENT_ERR_INVALID_STATE. */
DESCENT_API descent_status descent_multi_group(descent_optimizer* multi, size_t index,
                                               descent_optimizer** out);
/* Include clauses: a name glob ('*' any run, '?' one character; "blocks.*" is a prefix,
 * "*.bias" a suffix), a range of ndim (inclusive; max < 0 means unbounded), or a callback
 * (see Callbacks above; it sets *accept). Exclude: a name glob that rejects a parameter. */
DESCENT_API descent_status descent_multi_filter_name(descent_optimizer* multi, size_t index,
                                                     const char* glob);
DESCENT_API descent_status descent_multi_filter_ndim(descent_optimizer* multi, size_t index,
                                                     int64_t min_ndim, int64_t max_ndim);
DESCENT_API descent_status descent_multi_filter_callback(descent_optimizer* multi, size_t index,
                                                         descent_filter_fn fn, void* user_data,
                                                         void (*free_user_data)(void*));
DESCENT_API descent_status descent_multi_exclude_name(descent_optimizer* multi, size_t index,
                                                      const char* glob);
/* The group a declared parameter belongs to (filters are evaluated when this is called). */
DESCENT_API descent_status descent_multi_parameter_group(const descent_optimizer* multi,
                                                         const char* name, size_t* out);
/* The usual split in one call: group 0 is Muon for parameters with ndim >= 2 whose names match
 * none of the comma-separated globs in adamw_names (NULL: "*embed*,*lm_head*,*head*,*norm*"),
 * group 1 is AdamW for everything else. Either config may be NULL (defaults; a learning_rate is
 * still required before the first update). */
DESCENT_API descent_status descent_multi_create_muon_adamw(const char* muon_config_json,
                                                           const char* adamw_config_json,
                                                           const char* adamw_names,
                                                           descent_optimizer** out, char* error,
                                                           size_t error_capacity);

/* ---- Distributed: collectives and sharded optimizer state (since 1.1) ---------------------------
 * Data-parallel training with the optimizer state sharded over ranks (ZeRO-1). The host provides
 * two collective operations as callbacks (MPI, NCCL, Gloo, torch.distributed... the library links
 * none of them; libdescent_mpi and include/descent/descent_mpi.h adapt MPI). docs/distributed.md
 * has the design, the partition plan and the bytes communicated per step.
 *
 * Contract of the collective callbacks:
 *  - Blocking: a call returns when the operation is complete on this rank.
 *  - Ordering: descent makes the same sequence of collective calls, with the same counts, on every
 *    rank of a collectives handle, as long as every rank makes the same sequence of descent calls
 *    with it (sharding, updates, sharded clipping, checkpoints). A handle is used by one thread at
 *    a time; two handles over one communicator must not be used concurrently.
 *  - Failure: a callback returns DESCENT_OK or a failure status and, optionally, a message (see
 *    Callbacks above; DESCENT_ERR_CALLBACK for codes not in this header). A callback that fails
 *    must still have taken part in the exchange, or fail on every rank (as a broken communicator
 *    does): descent treats a failure as that rank's vote to abort the call, exchanged in the next
 *    agreement all-reduce, so that every rank fails it. A rank that leaves a collective without
 *    its peers hangs them, as in MPI.
 *  - Callbacks must not call into descent with the optimizer being stepped, nor let exceptions or
 *    longjmps cross into the library.
 *
 * all-gatherv, in place, of bytes: buffer holds world_size segments one after another, segment r
 * of bytes[r] bytes (bytes has world_size entries; offsets are the prefix sums). On entry this
 * rank's segment holds its contribution; on return every segment holds its rank's. Segments may
 * be empty and the total may exceed 2^31 bytes. (MPI: MPI_Allgatherv with MPI_IN_PLACE.) */
typedef descent_status (*descent_allgatherv_fn)(void* buffer, const size_t* bytes, void* user_data,
                                                char* message, size_t message_capacity);

/* Reduction operators of descent_allreduce_fn. Values are frozen. */
typedef enum descent_reduce_op {
  DESCENT_REDUCE_SUM = 1,
  DESCENT_REDUCE_MAX = 2,
  DESCENT_REDUCE_OP_FORCE_32BIT = 0x7fffffff /* not an operator: keeps the enum 32 bits wide */
} descent_reduce_op;

/* all-reduce, in place, of count doubles (count is small: at most a few per tensor). With
 * DESCENT_REDUCE_SUM descent relies only on the sum being exact when at most one rank
 * contributes a non-zero value per element. (MPI: MPI_Allreduce, MPI_IN_PLACE, MPI_DOUBLE.) */
typedef descent_status (*descent_allreduce_fn)(double* values, size_t count, descent_reduce_op op,
                                               void* user_data, char* message,
                                               size_t message_capacity);

typedef struct descent_collectives descent_collectives;

/* A collectives handle for this process: rank in [0, world_size), world_size >= 1. Both
 * operations must be set before it is used. *out is set only on success. */
DESCENT_API descent_status descent_collectives_create(size_t rank, size_t world_size,
                                                      descent_collectives** out, char* error,
                                                      size_t error_capacity);
/* Releases the caller's reference. Optimizers sharded with the handle keep their own reference:
 * the callbacks' user_data are released (free_user_data, once) when the handle and every such
 * optimizer are freed. */
DESCENT_API void descent_collectives_free(descent_collectives* coll);
DESCENT_API descent_status descent_collectives_rank(const descent_collectives* coll, size_t* rank,
                                                    size_t* world_size, char* error,
                                                    size_t error_capacity);
/* Sets (replaces) an operation. fn may not be NULL. The previous user_data, if any, is released
 * through its free_user_data. On failure user_data stays with the caller. Not while one of the
 * handle's callbacks runs. A collectives handle keeps no message: the calls on it take a caller
 * error buffer, as the calls without a handle do. */
DESCENT_API descent_status descent_collectives_set_allgatherv(descent_collectives* coll,
                                                              descent_allgatherv_fn fn,
                                                              void* user_data,
                                                              void (*free_user_data)(void*),
                                                              char* error, size_t error_capacity);
DESCENT_API descent_status descent_collectives_set_allreduce(descent_collectives* coll,
                                                             descent_allreduce_fn fn,
                                                             void* user_data,
                                                             void (*free_user_data)(void*),
                                                             char* error, size_t error_capacity);
/* descent_clip_grad_norm over the same tensors on every rank (each rank holds the full,
 * averaged gradients): each rank sums the squares of the tensors it is assigned (whole tensors,
 * balanced by size), one all-reduce combines the per-tensor sums and one agrees on the outcome.
 * The result (*total_norm and every clipped gradient) is bitwise that of descent_clip_grad_norm
 * on any number of ranks. Bad input on any rank, or a failing callback, fails every rank and
 * changes no gradient (see the callback contract above). Collective. */
DESCENT_API descent_status descent_collectives_clip_grad_norm(
    descent_collectives* coll, size_t count, const descent_dtype* dtypes, const int64_t* numels,
    void* const* grads, double max_norm, double* total_norm, char* error, size_t error_capacity);

/* Shards the optimizer's state over the ranks of coll (ZeRO-1). Collective: every rank calls it
 * with an optimizer of the same kind (and, for "multi", the same groups) that declared the same
 * parameters (names, dtypes, shapes, order); a mismatch fails it on every rank
 * (DESCENT_ERR_INVALID_ARGUMENT, naming what differs where possible). Call it after declaring
 * the parameters (and, for "multi", adding groups and filters) and before the state is
 * initialised; declarations, groups and filters are then fixed. The partition plan:
 *  - sgd, rmsprop, adagrad, adadelta, adam, adamw, adamax, lion: balanced contiguous ranges of the
 *    elements of all parameters concatenated in declaration order, boundaries multiples of 16;
 *  - adafactor: whole tensors, balanced by size; muon: whole tensors, balanced by Newton-Schulz
 *    flops (rows * cols * min(rows, cols); the element count below two dimensions);
 *  - multi: each group by its kind, over the group's parameters.
 * Afterwards:
 *  - every update form takes the full, already averaged, gradients and the full parameters, the
 *    same set of tensors on every rank; each rank updates its shard, the updated parts are
 *    all-gathered into a scratch buffer, the ranks agree (one all-reduce) and only then are the
 *    caller's parameters written: every rank ends the step with identical parameters, bitwise
 *    equal to the single-process optimizer's. Collective.
 *  - A step that fails on any rank (bad input, a missing learning rate, a failing callback) fails
 *    on every rank and changes nothing: parameters untouched, the state restored from a copy
 *    taken before the step (the first step may leave the state initialised, as
 *    descent_optimizer_init would). If the final agreement all-reduce itself fails on a rank,
 *    that rank cannot know the outcome: it restores its state and parameters and fails, while
 *    ranks whose agreement succeeded may have committed; the next step then fails on every rank
 *    (the ranks disagree on the step count) until a checkpoint is loaded everywhere.
 *  - state keys, state_info/get/set name this rank's shard: slots of a parameter this rank owns
 *    whole keep its shape, a part of one is one-dimensional (its element count), parameters it
 *    does not own have no slots. descent_optimizer_save/load (and the buffer forms) refuse
 *    (DESCENT_ERR_INVALID_STATE): use the collective checkpoints below.
 * The optimizer keeps a reference to coll. A group handle, or an optimizer already sharded or
 * initialised, is DESCENT_ERR_INVALID_STATE. */
DESCENT_API descent_status descent_optimizer_shard(descent_optimizer* opt,
                                                   descent_collectives* coll);
/* Checkpoints of a sharded optimizer (since 1.1). Collective: every rank calls them, in the
 * same order as its other collective calls. All or nothing across ranks: bad input or a
 * failure (I/O, a damaged file, a failing callback) on any rank fails the call on every rank
 * with nothing changed (a load leaves every rank's state as it was; a save leaves the previous
 * checkpoint in place), as a step does; the caveat of a step's final agreement failing on some
 * ranks only applies to each call's last agreement. Both formats reshard when loaded: a
 * checkpoint saved on any number of ranks loads on any number of ranks (the plan is recomputed
 * from the declarations), and the next steps are bitwise those of the uninterrupted run.
 * docs/distributed.md ("Checkpoints") has the formats and the durability guarantee.
 *
 * Gathered: one safetensors file, byte for byte what descent_optimizer_save of the single-process
 * optimizer with the same state writes (so it loads in MLX, in descent_optimizer_load, and into a
 * sharded optimizer of any world size). The shards are all-gathered (each rank briefly holds
 * the whole state) and rank 0 writes the file atomically (path is used on rank 0 only, but must
 * be valid on every rank). The load reads the whole file on every rank, each keeping its shard.
 * On an optimizer that is not sharded they are descent_optimizer_save and _load. */
DESCENT_API descent_status descent_optimizer_save_gathered(const descent_optimizer* opt,
                                                           const char* path);
DESCENT_API descent_status descent_optimizer_load_gathered(descent_optimizer* opt,
                                                           const char* path);
/* Sharded: a directory (created if missing; one directory that every rank sees, on a shared file
 * system for several machines) holding one safetensors file per rank with that rank's shard,
 * "shard-g<generation>-r<rank>-of-<world>.safetensors", each written atomically, and
 * "index.json", written atomically by rank 0 last, after every rank confirmed its shard durable:
 * it names the complete set (world size, generation, the partition plan's fingerprint, every
 * file's size and FNV-1a 64 checksum). Each save uses a new generation, so a save interrupted at
 * any point (a rank killed, a full disk) leaves the previous index and its files loadable; shard
 * files of older generations are removed after the new index is durable. The load reads the
 * index and, on each rank, only the shard files that hold part of its new shard, checking sizes
 * and checksums. The optimizer must be sharded (DESCENT_ERR_INVALID_STATE otherwise; shard over
 * a 1-rank collectives handle to save or load in a single process). */
DESCENT_API descent_status descent_optimizer_save_sharded(const descent_optimizer* opt,
                                                          const char* dir);
DESCENT_API descent_status descent_optimizer_load_sharded(descent_optimizer* opt, const char* dir);
/* Whether opt is sharded, and its rank and world size (both 0 when it is not). Any output may be
 * NULL. */
DESCENT_API descent_status descent_optimizer_shard_info(const descent_optimizer* opt, bool* sharded,
                                                        size_t* rank, size_t* world_size);
/* Bytes of optimizer state this process holds (every slot of every parameter; for a sharded
 * optimizer, its shard) and, for a sharded optimizer, the scratch it keeps for steps (the
 * gather buffer: every parameter's bytes; the copy of its state: as much again as the state).
 * Muon's Newton-Schulz workspace is not state. Either output may be NULL. Before the state is
 * initialised both are what init will allocate. */
DESCENT_API descent_status descent_optimizer_state_bytes(const descent_optimizer* opt,
                                                         size_t* state_bytes,
                                                         size_t* scratch_bytes);

/* ---- Threads (since 1.1) -------------------------------------------------------------------
 * The elementwise optimizers (every kind but adafactor and muon) split a step across a pool of
 * worker threads: large tensors into contiguous ranges, many small tensors by assigning whole
 * tensors to threads. The split never changes a result: every thread count gives the same bits.
 * Steps of fewer than about 64K elements per thread (DESCENT_MIN_ELEMENTS_PER_THREAD) run on the
 * calling thread. The pool starts on the first step that uses it. When several threads step
 * different optimizers at once, one uses the pool and the others run on their own thread.
 * Environment, read once: DESCENT_NUM_THREADS (the default of the process-wide count),
 * DESCENT_MIN_ELEMENTS_PER_THREAD, DESCENT_ISA (sse2, avx2 or avx512: the widest instruction set
 * the kernels may use; default and upper bound: what the CPU supports). docs/performance.md. */

/* Largest thread count the setters accept (more is DESCENT_ERR_OUT_OF_RANGE). */
#define DESCENT_MAX_THREADS 1024
/* The process-wide thread count, at most DESCENT_MAX_THREADS; 0 restores the default
 * (DESCENT_NUM_THREADS, else the number of CPUs this process may run on). Messages go to the
 * caller's error buffer (may be NULL). Since 1.1. */
DESCENT_API descent_status descent_set_num_threads(size_t n, char* error, size_t error_capacity);
/* The process-wide thread count in effect (at least 1). Since 1.1. */
DESCENT_API descent_status descent_get_num_threads(size_t* out, char* error, size_t error_capacity);
/* This optimizer's thread count, at most DESCENT_MAX_THREADS; 0 (the default) follows the
 * process-wide count. Not a
 * hyperparameter: not saved in checkpoints. On a multi optimizer it sets every group; a group
 * handle sets its own group. Since 1.1. */
DESCENT_API descent_status descent_optimizer_set_num_threads(descent_optimizer* opt, size_t n);
/* This optimizer's setting (0: follows the process-wide count). Since 1.1. */
DESCENT_API descent_status descent_optimizer_get_num_threads(const descent_optimizer* opt,
                                                             size_t* out);

#ifdef __cplusplus
}
#endif

#endif /* DESCENT_DESCENT_H */
