//! Raw declarations of every function in `include/descent/descent.h` (C ABI 1.1; the
//! functions marked "since 1.1" need libdescent 1.1).
//!
//! Statuses, dtypes and value types are plain `u32`s: the library may return codes this
//! binding does not know, and an out-of-range Rust enum would be undefined behaviour. The
//! constants below name the values known to ABI 1.0. Everything here is `unsafe` to call; the
//! crate root has the safe API.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_uint, c_void};

/// `descent_status`: 0 is success, anything else a failure (see the `DESCENT_ERR_*` constants).
pub type descent_status = u32;
/// `descent_dtype`: the element type of a tensor or state slot.
pub type descent_dtype = u32;
/// `descent_value_type`: the type of a hyperparameter's current value.
pub type descent_value_type = u32;

/// Success.
pub const DESCENT_OK: descent_status = 0;
/// A required pointer argument was NULL.
pub const DESCENT_ERR_NULL_ARGUMENT: descent_status = 1;
/// An argument is malformed (empty name, bad dimension, ...).
pub const DESCENT_ERR_INVALID_ARGUMENT: descent_status = 2;
/// No optimizer of that kind name.
pub const DESCENT_ERR_UNKNOWN_KIND: descent_status = 3;
/// No hyperparameter, state slot or tensor of that name.
pub const DESCENT_ERR_UNKNOWN_KEY: descent_status = 4;
/// A hyperparameter value of the wrong type.
pub const DESCENT_ERR_WRONG_TYPE: descent_status = 5;
/// A hyperparameter value outside its valid range.
pub const DESCENT_ERR_OUT_OF_RANGE: descent_status = 6;
/// A buffer's dtype differs from the declared tensor's.
pub const DESCENT_ERR_DTYPE_MISMATCH: descent_status = 7;
/// A buffer's shape or size differs from the declared one.
pub const DESCENT_ERR_SHAPE_MISMATCH: descent_status = 8;
/// The call is not valid now (e.g. learning_rate never set).
pub const DESCENT_ERR_INVALID_STATE: descent_status = 9;
/// Malformed JSON or configuration text.
pub const DESCENT_ERR_PARSE: descent_status = 10;
/// An output buffer cannot hold the result.
pub const DESCENT_ERR_BUFFER_TOO_SMALL: descent_status = 11;
/// A file could not be read or written.
pub const DESCENT_ERR_IO: descent_status = 12;
/// A state file or buffer is damaged or not descent's.
pub const DESCENT_ERR_CORRUPT: descent_status = 13;
/// An allocation failed.
pub const DESCENT_ERR_OUT_OF_MEMORY: descent_status = 14;
/// A valid request this build cannot do (e.g. a reserved dtype).
pub const DESCENT_ERR_UNSUPPORTED: descent_status = 15;
/// A name given twice.
pub const DESCENT_ERR_DUPLICATE: descent_status = 16;
/// A callback failed.
pub const DESCENT_ERR_CALLBACK: descent_status = 17;
/// A bug in descent.
pub const DESCENT_ERR_INTERNAL: descent_status = 99;

/// 32-bit IEEE float.
pub const DESCENT_FLOAT32: descent_dtype = 1;
/// 64-bit IEEE float.
pub const DESCENT_FLOAT64: descent_dtype = 2;
/// bfloat16 (parameters, gradients and state).
pub const DESCENT_BFLOAT16: descent_dtype = 3;
/// IEEE binary16 (parameters, gradients and state).
pub const DESCENT_FLOAT16: descent_dtype = 4;
/// Unsigned 64-bit integer, used by the "step" state slot only.
pub const DESCENT_UINT64: descent_dtype = 5;

/// An optional hyperparameter that is not set.
pub const DESCENT_VALUE_NONE: descent_value_type = 0;
/// A double.
pub const DESCENT_VALUE_DOUBLE: descent_value_type = 1;
/// A 64-bit integer.
pub const DESCENT_VALUE_INT: descent_value_type = 2;
/// A bool.
pub const DESCENT_VALUE_BOOL: descent_value_type = 3;
/// An array of doubles.
pub const DESCENT_VALUE_DOUBLE_ARRAY: descent_value_type = 4;
/// A choice among named options.
pub const DESCENT_VALUE_STRING: descent_value_type = 5;

/// `DESCENT_VERSION_MAJOR` of the header this module was written from.
pub const DESCENT_VERSION_MAJOR: u32 = 1;
/// `DESCENT_VERSION_MINOR` of the header this module was written from.
pub const DESCENT_VERSION_MINOR: u32 = 2;
/// `DESCENT_VERSION_PATCH` of the header this module was written from.
pub const DESCENT_VERSION_PATCH: u32 = 1;
/// `DESCENT_VERSION_NUMBER` of the header this module was written from.
pub const DESCENT_VERSION_NUMBER: u32 =
    DESCENT_VERSION_MAJOR * 10000 + DESCENT_VERSION_MINOR * 100 + DESCENT_VERSION_PATCH;
/// Largest number of dimensions a tensor may have.
pub const DESCENT_MAX_NDIM: usize = 16;
/// A caller's error buffer of this many bytes always holds a whole message.
pub const DESCENT_ERROR_CAPACITY: usize = 1024;
/// Alignment in bytes of every parameter's offset in the flat layout and of its total size.
pub const DESCENT_FLAT_ALIGNMENT: usize = 64;

/// The opaque optimizer handle.
#[repr(C)]
pub struct descent_optimizer {
    _private: [u8; 0],
}

/// A schedule callback: stores the learning rate for `step` in `*value` and returns
/// `DESCENT_OK`, or returns a failure status and writes a message.
pub type descent_schedule_fn = unsafe extern "C" fn(
    step: u64,
    user_data: *mut c_void,
    value: *mut f64,
    message: *mut c_char,
    message_capacity: usize,
) -> descent_status;

/// A filter callback: sets `*accept` and returns `DESCENT_OK`, or returns a failure status and
/// writes a message.
pub type descent_filter_fn = unsafe extern "C" fn(
    name: *const c_char,
    ndim: usize,
    shape: *const i64,
    user_data: *mut c_void,
    accept: *mut bool,
    message: *mut c_char,
    message_capacity: usize,
) -> descent_status;

/// Releases a callback's `user_data`.
pub type descent_free_fn = unsafe extern "C" fn(user_data: *mut c_void);

/// `descent_reduce_op` (since 1.1): the operator of a [`descent_allreduce_fn`].
pub type descent_reduce_op = u32;
/// Element-wise sum.
pub const DESCENT_REDUCE_SUM: descent_reduce_op = 1;
/// Element-wise maximum.
pub const DESCENT_REDUCE_MAX: descent_reduce_op = 2;

/// The opaque collectives handle (since 1.1).
#[repr(C)]
pub struct descent_collectives {
    _private: [u8; 0],
}

/// In-place all-gatherv of bytes (since 1.1): `buffer` holds world_size segments, segment r of
/// `bytes[r]` bytes; on return every segment holds its rank's contribution.
pub type descent_allgatherv_fn = unsafe extern "C" fn(
    buffer: *mut c_void,
    bytes: *const usize,
    user_data: *mut c_void,
    message: *mut c_char,
    message_capacity: usize,
) -> descent_status;

/// In-place all-reduce of `count` doubles with `op` (since 1.1).
pub type descent_allreduce_fn = unsafe extern "C" fn(
    values: *mut f64,
    count: usize,
    op: descent_reduce_op,
    user_data: *mut c_void,
    message: *mut c_char,
    message_capacity: usize,
) -> descent_status;

extern "C" {
    /// `DESCENT_VERSION_NUMBER` of the library.
    pub fn descent_version_number() -> c_uint;
    /// "MAJOR.MINOR.PATCH".
    pub fn descent_version_string() -> *const c_char;
    /// "DESCENT_ERR_..." (static).
    pub fn descent_status_name(status: descent_status) -> *const c_char;
    /// "float32", ... (static).
    pub fn descent_dtype_name(dtype: descent_dtype) -> *const c_char;
    /// Number of optimizer kinds, "multi" included (last).
    pub fn descent_kind_count() -> usize;
    /// Kind name by index in `[0, descent_kind_count())`; NULL past the end (static).
    pub fn descent_kind_name(index: usize) -> *const c_char;
    /// Message of the last failed call on this OS thread.
    pub fn descent_last_error() -> *const c_char;

    /// Creates an optimizer of `kind`.
    pub fn descent_optimizer_create(
        kind: *const c_char,
        out: *mut *mut descent_optimizer,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// Frees an optimizer (NULL is fine).
    pub fn descent_optimizer_free(opt: *mut descent_optimizer);
    /// The kind name given at creation.
    pub fn descent_optimizer_kind(opt: *const descent_optimizer) -> *const c_char;
    /// Message of the last failed call on this handle.
    pub fn descent_optimizer_last_error(opt: *const descent_optimizer) -> *const c_char;

    /// Sets a double hyperparameter.
    pub fn descent_optimizer_set_double(opt: *mut descent_optimizer, key: *const c_char, value: f64) -> descent_status;
    /// Sets an int hyperparameter.
    pub fn descent_optimizer_set_int(opt: *mut descent_optimizer, key: *const c_char, value: i64) -> descent_status;
    /// Sets a bool hyperparameter.
    pub fn descent_optimizer_set_bool(opt: *mut descent_optimizer, key: *const c_char, value: bool) -> descent_status;
    /// Sets an array-of-doubles hyperparameter.
    pub fn descent_optimizer_set_doubles(
        opt: *mut descent_optimizer,
        key: *const c_char,
        values: *const f64,
        count: usize,
    ) -> descent_status;
    /// Sets a string hyperparameter.
    pub fn descent_optimizer_set_string(opt: *mut descent_optimizer, key: *const c_char, value: *const c_char) -> descent_status;
    /// Unsets an optional hyperparameter.
    pub fn descent_optimizer_unset(opt: *mut descent_optimizer, key: *const c_char) -> descent_status;
    /// Reads a double hyperparameter.
    pub fn descent_optimizer_get_double(opt: *const descent_optimizer, key: *const c_char, out: *mut f64) -> descent_status;
    /// Reads an int hyperparameter.
    pub fn descent_optimizer_get_int(opt: *const descent_optimizer, key: *const c_char, out: *mut i64) -> descent_status;
    /// Reads a bool hyperparameter.
    pub fn descent_optimizer_get_bool(opt: *const descent_optimizer, key: *const c_char, out: *mut bool) -> descent_status;
    /// Reads an array-of-doubles hyperparameter.
    pub fn descent_optimizer_get_doubles(
        opt: *const descent_optimizer,
        key: *const c_char,
        out: *mut f64,
        capacity: usize,
        count: *mut usize,
    ) -> descent_status;
    /// Reads a string hyperparameter.
    pub fn descent_optimizer_get_string(
        opt: *const descent_optimizer,
        key: *const c_char,
        out: *mut c_char,
        capacity: usize,
        length: *mut usize,
    ) -> descent_status;
    /// Number of hyperparameters of this kind.
    pub fn descent_optimizer_hyperparameter_count(opt: *const descent_optimizer, out: *mut usize) -> descent_status;
    /// Name of hyperparameter `index`.
    pub fn descent_optimizer_hyperparameter_name(
        opt: *const descent_optimizer,
        index: usize,
        out: *mut *const c_char,
    ) -> descent_status;
    /// Current value type of a hyperparameter.
    pub fn descent_optimizer_hyperparameter_type(
        opt: *const descent_optimizer,
        key: *const c_char,
        out: *mut descent_value_type,
    ) -> descent_status;
    /// Applies a JSON object of hyperparameters (all or nothing).
    pub fn descent_optimizer_configure_json(opt: *mut descent_optimizer, json: *const c_char) -> descent_status;

    /// Declares a parameter.
    pub fn descent_optimizer_add_parameter(
        opt: *mut descent_optimizer,
        name: *const c_char,
        dtype: descent_dtype,
        ndim: usize,
        shape: *const i64,
    ) -> descent_status;
    /// Number of declared parameters.
    pub fn descent_optimizer_parameter_count(opt: *const descent_optimizer, out: *mut usize) -> descent_status;
    /// A declared parameter by index: name (owned by the handle), dtype, ndim and dimensions
    /// (`shape` may be NULL, else it holds `capacity >= ndim` entries).
    pub fn descent_optimizer_parameter_info(
        opt: *const descent_optimizer,
        index: usize,
        name: *mut *const c_char,
        dtype: *mut descent_dtype,
        ndim: *mut usize,
        shape: *mut i64,
        capacity: usize,
    ) -> descent_status;
    /// Index of a declared parameter.
    pub fn descent_optimizer_parameter_index(
        opt: *const descent_optimizer,
        name: *const c_char,
        out: *mut usize,
    ) -> descent_status;
    /// Allocates the state.
    pub fn descent_optimizer_init(opt: *mut descent_optimizer) -> descent_status;

    /// One step, tensors by name.
    pub fn descent_optimizer_update(
        opt: *mut descent_optimizer,
        count: usize,
        names: *const *const c_char,
        dtypes: *const descent_dtype,
        numels: *const i64,
        params: *const *mut c_void,
        grads: *const *const c_void,
    ) -> descent_status;
    /// One step, tensors by index.
    pub fn descent_optimizer_update_indexed(
        opt: *mut descent_optimizer,
        count: usize,
        indices: *const usize,
        dtypes: *const descent_dtype,
        numels: *const i64,
        params: *const *mut c_void,
        grads: *const *const c_void,
    ) -> descent_status;
    /// Byte offset of parameter `index` in the flat layout.
    pub fn descent_optimizer_flat_offset(
        opt: *const descent_optimizer,
        index: usize,
        byte_offset: *mut usize,
    ) -> descent_status;
    /// Total byte size of the flat layout.
    pub fn descent_optimizer_flat_size(opt: *const descent_optimizer, bytes: *mut usize) -> descent_status;
    /// One step over every declared parameter, from two flat buffers.
    pub fn descent_optimizer_update_flat(
        opt: *mut descent_optimizer,
        params: *mut c_void,
        grads: *const c_void,
        size: usize,
    ) -> descent_status;

    /// Number of state keys.
    pub fn descent_optimizer_state_count(opt: *const descent_optimizer, out: *mut usize) -> descent_status;
    /// State key `index`.
    pub fn descent_optimizer_state_key(
        opt: *const descent_optimizer,
        index: usize,
        out: *mut *const c_char,
    ) -> descent_status;
    /// dtype and shape of a state slot.
    pub fn descent_optimizer_state_info(
        opt: *const descent_optimizer,
        key: *const c_char,
        dtype: *mut descent_dtype,
        ndim: *mut usize,
        shape: *mut i64,
        capacity: usize,
    ) -> descent_status;
    /// Copies a state slot out.
    pub fn descent_optimizer_state_get(
        opt: *const descent_optimizer,
        key: *const c_char,
        dtype: descent_dtype,
        out: *mut c_void,
        numel: i64,
    ) -> descent_status;
    /// Copies a state slot in.
    pub fn descent_optimizer_state_set(
        opt: *mut descent_optimizer,
        key: *const c_char,
        dtype: descent_dtype,
        data: *const c_void,
        numel: i64,
    ) -> descent_status;

    /// Attaches a schedule given as a string or JSON.
    pub fn descent_optimizer_set_schedule(opt: *mut descent_optimizer, spec: *const c_char) -> descent_status;
    /// Attaches a schedule callback.
    pub fn descent_optimizer_set_schedule_callback(
        opt: *mut descent_optimizer,
        fn_: Option<descent_schedule_fn>,
        user_data: *mut c_void,
        free_user_data: Option<descent_free_fn>,
    ) -> descent_status;
    /// Removes the schedule.
    pub fn descent_optimizer_clear_schedule(opt: *mut descent_optimizer) -> descent_status;
    /// Evaluates a schedule without an optimizer.
    pub fn descent_schedule_value(
        spec: *const c_char,
        init_lr: f64,
        step: u64,
        out: *mut f64,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;

    /// MLX's clip_grad_norm, in place.
    pub fn descent_clip_grad_norm(
        count: usize,
        dtypes: *const descent_dtype,
        numels: *const i64,
        grads: *const *mut c_void,
        max_norm: f64,
        total_norm: *mut f64,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;

    /// Saves the state to a file.
    pub fn descent_optimizer_save(opt: *const descent_optimizer, path: *const c_char) -> descent_status;
    /// Loads the state from a file.
    pub fn descent_optimizer_load(opt: *mut descent_optimizer, path: *const c_char) -> descent_status;
    /// Serialises the state into a buffer.
    pub fn descent_optimizer_save_to_buffer(
        opt: *const descent_optimizer,
        buf: *mut c_void,
        capacity: usize,
        size: *mut usize,
    ) -> descent_status;
    /// Loads the state from a buffer.
    pub fn descent_optimizer_load_from_buffer(
        opt: *mut descent_optimizer,
        buf: *const c_void,
        size: usize,
    ) -> descent_status;

    /// Adds a parameter group to a multi optimizer.
    pub fn descent_multi_add_group(
        multi: *mut descent_optimizer,
        kind: *const c_char,
        config_json: *const c_char,
        index: *mut usize,
    ) -> descent_status;
    /// Number of groups.
    pub fn descent_multi_group_count(multi: *const descent_optimizer, out: *mut usize) -> descent_status;
    /// Borrowed handle on group `index`.
    pub fn descent_multi_group(
        multi: *mut descent_optimizer,
        index: usize,
        out: *mut *mut descent_optimizer,
    ) -> descent_status;
    /// Include clause: a name glob.
    pub fn descent_multi_filter_name(multi: *mut descent_optimizer, index: usize, glob: *const c_char) -> descent_status;
    /// Include clause: a range of ndim.
    pub fn descent_multi_filter_ndim(
        multi: *mut descent_optimizer,
        index: usize,
        min_ndim: i64,
        max_ndim: i64,
    ) -> descent_status;
    /// Include clause: a callback.
    pub fn descent_multi_filter_callback(
        multi: *mut descent_optimizer,
        index: usize,
        fn_: Option<descent_filter_fn>,
        user_data: *mut c_void,
        free_user_data: Option<descent_free_fn>,
    ) -> descent_status;
    /// Exclude clause: a name glob.
    pub fn descent_multi_exclude_name(multi: *mut descent_optimizer, index: usize, glob: *const c_char) -> descent_status;
    /// The group a declared parameter belongs to.
    pub fn descent_multi_parameter_group(
        multi: *const descent_optimizer,
        name: *const c_char,
        out: *mut usize,
    ) -> descent_status;
    /// Muon for matrices, AdamW for the rest, in one call.
    pub fn descent_multi_create_muon_adamw(
        muon_config_json: *const c_char,
        adamw_config_json: *const c_char,
        adamw_names: *const c_char,
        out: *mut *mut descent_optimizer,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;

    // ---- Distributed (since 1.1) ----
    /// A collectives handle for this process (rank in `[0, world_size)`).
    pub fn descent_collectives_create(
        rank: usize,
        world_size: usize,
        out: *mut *mut descent_collectives,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// Releases the caller's reference (NULL is accepted).
    pub fn descent_collectives_free(coll: *mut descent_collectives);
    /// The handle's rank and world size.
    pub fn descent_collectives_rank(
        coll: *const descent_collectives,
        rank: *mut usize,
        world_size: *mut usize,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// Sets (replaces) the all-gatherv operation.
    pub fn descent_collectives_set_allgatherv(
        coll: *mut descent_collectives,
        fn_: Option<descent_allgatherv_fn>,
        user_data: *mut c_void,
        free_user_data: Option<descent_free_fn>,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// Sets (replaces) the all-reduce operation.
    pub fn descent_collectives_set_allreduce(
        coll: *mut descent_collectives,
        fn_: Option<descent_allreduce_fn>,
        user_data: *mut c_void,
        free_user_data: Option<descent_free_fn>,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// `descent_clip_grad_norm` with the work split over the ranks (collective).
    pub fn descent_collectives_clip_grad_norm(
        coll: *mut descent_collectives,
        count: usize,
        dtypes: *const descent_dtype,
        numels: *const i64,
        grads: *const *mut c_void,
        max_norm: f64,
        total_norm: *mut f64,
        error: *mut c_char,
        error_capacity: usize,
    ) -> descent_status;
    /// Shards the optimizer's state over the ranks of `coll` (ZeRO-1; collective).
    pub fn descent_optimizer_shard(opt: *mut descent_optimizer, coll: *mut descent_collectives) -> descent_status;
    /// Whether `opt` is sharded, its rank and world size (any output may be NULL).
    pub fn descent_optimizer_shard_info(
        opt: *const descent_optimizer,
        sharded: *mut bool,
        rank: *mut usize,
        world_size: *mut usize,
    ) -> descent_status;
    /// Bytes of state this process holds and of step scratch (either output may be NULL).
    pub fn descent_optimizer_state_bytes(
        opt: *const descent_optimizer,
        state_bytes: *mut usize,
        scratch_bytes: *mut usize,
    ) -> descent_status;

    // ---- Threads (since 1.1) ----
    /// The process-wide thread count (at most `DESCENT_MAX_THREADS`); 0 restores the default.
    pub fn descent_set_num_threads(n: usize, error: *mut c_char, error_capacity: usize) -> descent_status;
    /// The process-wide thread count in effect (at least 1).
    pub fn descent_get_num_threads(out: *mut usize, error: *mut c_char, error_capacity: usize) -> descent_status;
    /// This optimizer's thread count; 0 follows the process-wide count.
    pub fn descent_optimizer_set_num_threads(opt: *mut descent_optimizer, n: usize) -> descent_status;
    /// This optimizer's setting (0: follows the process-wide count).
    pub fn descent_optimizer_get_num_threads(opt: *const descent_optimizer, out: *mut usize) -> descent_status;
}
