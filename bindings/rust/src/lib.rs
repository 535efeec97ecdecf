//! Safe Rust binding of libdescent, neural-network optimizers with MLX semantics behind a C ABI.
//!
//! ```no_run
//! use descent::Optimizer;
//! # fn main() -> descent::Result<()> {
//! let mut opt = Optimizer::new("adamw")?;
//! opt.configure_json(r#"{"learning_rate": 0.01, "weight_decay": 0.01}"#)?;
//! let w = opt.add_parameter::<f32>("layer.weight", &[2, 3])?;
//! let mut weight = vec![0.5f32; 6];
//! let grad = vec![0.1f32; 6];
//! opt.update().tensor(w, &mut weight, &grad).apply()?;
//! # Ok(()) }
//! ```
//!
//! * Errors are [`Error`]s carrying the library's status code (a `u32`, see [`sys`]) and message.
//!   A failed call changes nothing.
//! * [`Optimizer`] frees its handle on drop. It is `Send` (move it to another thread) but not
//!   `Sync` (one thread at a time, as the C API requires).
//! * Closures given as schedules or filters may fail: an `Err` or a panic fails the call that ran
//!   the closure with `DESCENT_ERR_CALLBACK`, the closure's message, and the original error
//!   ([`Error::callback_error`]) or panic payload ([`Error::take_panic`]).
#![deny(missing_docs)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};

mod callback;
mod error;
mod flat;
pub mod sys;

pub use error::{BoxError, Error, Result};
pub use flat::{FlatBuffer, FlatEntry, FlatLayout};

use callback::{FilterFn, ScheduleFn};
use error::{check, check_buffer, string_from};

// ---- Library information ---------------------------------------------------------------------

/// The library's version string, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    // SAFETY: a static NUL-terminated string.
    unsafe { static_str(sys::descent_version_string()) }
}

/// The library's version number (MAJOR * 10000 + MINOR * 100 + PATCH).
pub fn version_number() -> u32 {
    // SAFETY: no arguments.
    unsafe { sys::descent_version_number() }
}

/// The version number of the C header this binding was written from.
pub const HEADER_VERSION_NUMBER: u32 = sys::DESCENT_VERSION_NUMBER;

/// The name of a status code (`"DESCENT_ERR_UNKNOWN_KEY"`, or `"DESCENT_ERR_UNKNOWN_STATUS"`).
pub fn status_name(status: u32) -> &'static str {
    // SAFETY: any value may be passed; the result is static.
    unsafe { static_str(sys::descent_status_name(status)) }
}

/// The name of a dtype (`"float32"`, ...).
pub fn dtype_name(dtype: u32) -> &'static str {
    // SAFETY: any value may be passed; the result is static.
    unsafe { static_str(sys::descent_dtype_name(dtype)) }
}

unsafe fn static_str(ptr: *const c_char) -> &'static str {
    if ptr.is_null() {
        ""
    } else {
        CStr::from_ptr(ptr).to_str().unwrap_or("")
    }
}

/// The optimizer kinds, in the library's order (`"sgd"`, ..., `"muon"`, `"multi"`).
pub fn kinds() -> Vec<&'static str> {
    // SAFETY: no arguments; names are static (NULL only past the end).
    (0..unsafe { sys::descent_kind_count() }).map(|i| unsafe { static_str(sys::descent_kind_name(i)) }).collect()
}

// ---- Threads (C ABI 1.1) ---------------------------------------------------------------------

/// Sets the process-wide number of threads the elementwise optimizers split a step over; `0`
/// restores the default (`DESCENT_NUM_THREADS`, else the CPUs this process may run on). Every
/// count gives the same bits. A count above the library's maximum is
/// `DESCENT_ERR_OUT_OF_RANGE` and changes nothing. Needs libdescent 1.1.
pub fn set_num_threads(n: usize) -> Result<()> {
    let mut message = [0u8; sys::DESCENT_ERROR_CAPACITY];
    // SAFETY: a valid caller buffer.
    let status = unsafe { sys::descent_set_num_threads(n, message.as_mut_ptr().cast(), message.len()) };
    check_buffer(status, &message)
}

/// The process-wide thread count in effect (at least 1). Needs libdescent 1.1.
pub fn num_threads() -> usize {
    let mut out = 0usize;
    // SAFETY: out is a valid pointer; with a non-NULL pointer the call cannot fail.
    let status = unsafe { sys::descent_get_num_threads(&mut out, ptr::null_mut(), 0) };
    debug_assert_eq!(status, sys::DESCENT_OK);
    out
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(sys::DESCENT_ERR_INVALID_ARGUMENT, format!("{what} {s:?} contains a NUL byte")))
}

fn opt_cstring(what: &str, s: Option<&str>) -> Result<Option<CString>> {
    s.map(|s| cstring(what, s)).transpose()
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

fn path_cstring(path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::new(sys::DESCENT_ERR_INVALID_ARGUMENT, format!("path {path:?} is not valid UTF-8")))?
        .as_bytes()
        .to_vec();
    CString::new(bytes)
        .map_err(|_| Error::new(sys::DESCENT_ERR_INVALID_ARGUMENT, format!("path {path:?} contains a NUL byte")))
}

// ---- Element types ---------------------------------------------------------------------------

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for u64 {}
    impl Sealed for super::Bf16 {}
    impl Sealed for super::F16 {}
}

/// An element type the library stores: `f32`, `f64`, [`Bf16`], [`F16`] (parameters and their
/// state) and `u64` (the `"step"` state slot).
pub trait Element: sealed::Sealed + Copy + Default + Send + Sync + 'static {
    /// The `descent_dtype` of this type.
    const DTYPE: u32;
}

/// A parameter element type: `f32`, `f64`, [`Bf16`] or [`F16`].
pub trait Float: Element {}

impl Element for f32 {
    const DTYPE: u32 = sys::DESCENT_FLOAT32;
}
impl Element for f64 {
    const DTYPE: u32 = sys::DESCENT_FLOAT64;
}
impl Element for u64 {
    const DTYPE: u32 = sys::DESCENT_UINT64;
}
impl Float for f32 {}
impl Float for f64 {}
impl Element for Bf16 {
    const DTYPE: u32 = sys::DESCENT_BFLOAT16;
}
impl Element for F16 {
    const DTYPE: u32 = sys::DESCENT_FLOAT16;
}
impl Float for Bf16 {}
impl Float for F16 {}

/// A bfloat16 value, stored as its bits (`DESCENT_BFLOAT16`). The library does the arithmetic;
/// this type only carries the bits, with exact widening and round-to-nearest-even narrowing.
/// How the state of a half-precision parameter is kept is the `state_precision`
/// hyperparameter (`"float32"`, `"master"` or `"param"`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// The value as an `f32` (exact).
    pub fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
    /// `f` rounded to nearest even (every NaN becomes the quiet NaN 0x7FC0).
    pub fn from_f32(f: f32) -> Self {
        let u = f.to_bits();
        if u & 0x7FFF_FFFF > 0x7F80_0000 {
            return Bf16(0x7FC0);
        }
        Bf16(((u + 0x7FFF + ((u >> 16) & 1)) >> 16) as u16)
    }
}

/// An IEEE binary16 value, stored as its bits (`DESCENT_FLOAT16`); see [`Bf16`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct F16(pub u16);

impl F16 {
    /// The value as an `f32` (exact).
    pub fn to_f32(self) -> f32 {
        let h = u32::from(self.0);
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1F;
        let mant = h & 0x3FF;
        let magnitude = match exp {
            0 => (mant as f32 * f32::from_bits(0x3380_0000)).to_bits(), // mant * 2^-24, exact
            0x1F => 0x7F80_0000 | (mant << 13) | if mant != 0 { 0x40_0000 } else { 0 },
            _ => ((exp + 112) << 23) | (mant << 13),
        };
        f32::from_bits(sign | magnitude)
    }
    /// `f` rounded to nearest even (subnormals and overflow to infinity included).
    pub fn from_f32(f: f32) -> Self {
        let u = f.to_bits();
        let sign = (u >> 16) & 0x8000;
        let a = u & 0x7FFF_FFFF;
        let r = if a > 0x7F80_0000 {
            0x7E00 | ((a >> 13) & 0x3FF)
        } else if a >= 0x477F_F000 {
            0x7C00
        } else if a < 0x3880_0000 {
            // below 2^-14: adding 0.5 makes the f32 addition round at 2^-24
            (f32::from_bits(a) + 0.5).to_bits() - 0.5f32.to_bits()
        } else {
            (a - (112 << 23) + 0xFFF + ((a >> 13) & 1)) >> 13
        };
        F16((sign | r) as u16)
    }
}

// ---- Values --------------------------------------------------------------------------------

/// A hyperparameter's current value, as [`OptimizerRef::hyperparameter`] reads it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// An optional hyperparameter that is not set (MLX's `None`).
    None,
    /// A double.
    F64(f64),
    /// An integer.
    I64(i64),
    /// A bool.
    Bool(bool),
    /// An array of doubles.
    F64s(Vec<f64>),
    /// A choice among named options.
    Str(String),
    /// A value type this binding does not know (a newer library); the code is kept.
    Unknown(u32),
}

/// The dtype and shape of a state slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateInfo {
    /// The slot's dtype (`sys::DESCENT_*`).
    pub dtype: u32,
    /// The slot's dimensions (empty for a scalar).
    pub shape: Vec<i64>,
}

impl StateInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }
}

/// A declared parameter, as the library reports it ([`Optimizer::parameter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterInfo {
    /// The name (an MLX `tree_flatten` path).
    pub name: String,
    /// The dtype (`sys::DESCENT_FLOAT32`, `FLOAT64`, `BFLOAT16` or `FLOAT16`).
    pub dtype: u32,
    /// The dimensions (empty for a scalar).
    pub shape: Vec<i64>,
}

impl ParameterInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }
}

// ---- Handles -------------------------------------------------------------------------------

/// Operations valid on any optimizer handle: an owned [`Optimizer`] (through `Deref`) or a group
/// of a multi optimizer borrowed with [`Optimizer::group`]. Hyperparameters, schedules, state.
///
/// Only ever used by reference; the reference is the C handle.
pub struct OptimizerRef {
    _opaque: UnsafeCell<()>,
    _not_send_sync: PhantomData<*mut ()>,
}

// SAFETY: a handle is not tied to a thread; exclusive (&mut) or one-thread (&, !Sync) access is
// what the C API requires.
unsafe impl Send for OptimizerRef {}

impl OptimizerRef {
    fn raw(&self) -> *mut sys::descent_optimizer {
        self as *const OptimizerRef as *mut sys::descent_optimizer
    }

    fn check(&self, status: u32) -> Result<()> {
        check(self.raw(), status)
    }

    /// The kind name given at creation (`"adamw"`, `"multi"`, ...).
    pub fn kind(&self) -> String {
        // SAFETY: live handle; copied at once.
        unsafe { string_from(sys::descent_optimizer_kind(self.raw())) }
    }

    /// Message of the last failed call on this handle (`""` if none).
    pub fn last_error(&self) -> String {
        // SAFETY: live handle; copied at once.
        unsafe { string_from(sys::descent_optimizer_last_error(self.raw())) }
    }

    // -- threads

    /// Sets this optimizer's thread count; `0` (the default) follows the process-wide count
    /// ([`set_num_threads`]). Not a hyperparameter: not saved in checkpoints. On a multi
    /// optimizer it sets every group, on a group only that group. A count above the library's
    /// maximum is `DESCENT_ERR_OUT_OF_RANGE` and changes nothing. Needs libdescent 1.1.
    pub fn set_num_threads(&mut self, n: usize) -> Result<()> {
        // SAFETY: live handle.
        self.check(unsafe { sys::descent_optimizer_set_num_threads(self.raw(), n) })
    }

    /// This optimizer's thread setting (`0`: follows the process-wide count).
    pub fn num_threads(&self) -> Result<usize> {
        let mut out = 0usize;
        // SAFETY: live handle, valid out pointer.
        self.check(unsafe { sys::descent_optimizer_get_num_threads(self.raw(), &mut out) })?;
        Ok(out)
    }

    // -- hyperparameters

    /// Sets a double hyperparameter (an integral value also sets an int one).
    pub fn set_f64(&mut self, key: &str, value: f64) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: live handle, NUL-terminated key.
        self.check(unsafe { sys::descent_optimizer_set_double(self.raw(), key.as_ptr(), value) })
    }

    /// Sets an int hyperparameter (also accepted for a double one).
    pub fn set_i64(&mut self, key: &str, value: i64) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: as above.
        self.check(unsafe { sys::descent_optimizer_set_int(self.raw(), key.as_ptr(), value) })
    }

    /// Sets a bool hyperparameter.
    pub fn set_bool(&mut self, key: &str, value: bool) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: as above.
        self.check(unsafe { sys::descent_optimizer_set_bool(self.raw(), key.as_ptr(), value) })
    }

    /// Sets an array-of-doubles hyperparameter (e.g. `betas`).
    pub fn set_f64s(&mut self, key: &str, values: &[f64]) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: values is valid for len reads.
        self.check(unsafe { sys::descent_optimizer_set_doubles(self.raw(), key.as_ptr(), values.as_ptr(), values.len()) })
    }

    /// Sets a string hyperparameter (one of the key's choices).
    pub fn set_str(&mut self, key: &str, value: &str) -> Result<()> {
        let key = cstring("key", key)?;
        let value = cstring("value", value)?;
        // SAFETY: NUL-terminated strings.
        self.check(unsafe { sys::descent_optimizer_set_string(self.raw(), key.as_ptr(), value.as_ptr()) })
    }

    /// Unsets an optional hyperparameter (MLX's `None`).
    pub fn unset(&mut self, key: &str) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: as above.
        self.check(unsafe { sys::descent_optimizer_unset(self.raw(), key.as_ptr()) })
    }

    /// Reads a double hyperparameter (`learning_rate` reads back as the stored float32).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let key = cstring("key", key)?;
        let mut out = 0.0;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_get_double(self.raw(), key.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// Reads an int hyperparameter.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let key = cstring("key", key)?;
        let mut out = 0;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_get_int(self.raw(), key.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// Reads a bool hyperparameter.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let key = cstring("key", key)?;
        let mut out = false;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_get_bool(self.raw(), key.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// Reads an array-of-doubles hyperparameter.
    pub fn get_f64s(&self, key: &str) -> Result<Vec<f64>> {
        let key = cstring("key", key)?;
        let mut count = 0usize;
        // SAFETY: size query with out == NULL.
        self.check(unsafe {
            sys::descent_optimizer_get_doubles(self.raw(), key.as_ptr(), ptr::null_mut(), 0, &mut count)
        })?;
        let mut out = vec![0.0; count];
        // SAFETY: out holds count doubles.
        self.check(unsafe {
            sys::descent_optimizer_get_doubles(self.raw(), key.as_ptr(), out.as_mut_ptr(), out.len(), &mut count)
        })?;
        out.truncate(count);
        Ok(out)
    }

    /// Reads a string hyperparameter.
    pub fn get_string(&self, key: &str) -> Result<String> {
        let key = cstring("key", key)?;
        let mut length = 0usize;
        // SAFETY: size query with out == NULL.
        self.check(unsafe {
            sys::descent_optimizer_get_string(self.raw(), key.as_ptr(), ptr::null_mut(), 0, &mut length)
        })?;
        let mut out = vec![0u8; length + 1];
        // SAFETY: out holds length + 1 bytes.
        self.check(unsafe {
            sys::descent_optimizer_get_string(self.raw(), key.as_ptr(), out.as_mut_ptr().cast(), out.len(), &mut length)
        })?;
        out.truncate(length);
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The current value type of a hyperparameter (`sys::DESCENT_VALUE_*`; may be a code this
    /// binding does not know).
    pub fn hyperparameter_type(&self, key: &str) -> Result<u32> {
        let key = cstring("key", key)?;
        let mut out = 0u32;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_hyperparameter_type(self.raw(), key.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// The current value of a hyperparameter, whatever its type.
    pub fn hyperparameter(&self, key: &str) -> Result<Value> {
        Ok(match self.hyperparameter_type(key)? {
            sys::DESCENT_VALUE_NONE => Value::None,
            sys::DESCENT_VALUE_DOUBLE => Value::F64(self.get_f64(key)?),
            sys::DESCENT_VALUE_INT => Value::I64(self.get_i64(key)?),
            sys::DESCENT_VALUE_BOOL => Value::Bool(self.get_bool(key)?),
            sys::DESCENT_VALUE_DOUBLE_ARRAY => Value::F64s(self.get_f64s(key)?),
            sys::DESCENT_VALUE_STRING => Value::Str(self.get_string(key)?),
            other => Value::Unknown(other),
        })
    }

    /// The names of the hyperparameters this kind knows (`"learning_rate"` first).
    pub fn hyperparameter_names(&self) -> Result<Vec<String>> {
        let mut count = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_hyperparameter_count(self.raw(), &mut count) })?;
        (0..count)
            .map(|i| {
                let mut name: *const c_char = ptr::null();
                // SAFETY: valid out pointer; the name is copied at once.
                self.check(unsafe { sys::descent_optimizer_hyperparameter_name(self.raw(), i, &mut name) })?;
                // SAFETY: a library-owned string.
                Ok(unsafe { string_from(name) })
            })
            .collect()
    }

    /// Applies a JSON object of hyperparameters, all or nothing
    /// (`{"learning_rate": 1e-3, "betas": [0.9, 0.999]}`; `null` unsets an optional key).
    pub fn configure_json(&mut self, json: &str) -> Result<()> {
        let json = cstring("json", json)?;
        // SAFETY: NUL-terminated string.
        self.check(unsafe { sys::descent_optimizer_configure_json(self.raw(), json.as_ptr()) })
    }

    // -- schedules

    /// Attaches a schedule given as a string (`"cosine:<iters>:<min_lr>"`,
    /// `"cosine_decay:0.1:1000:0.0"`, ...) or as JSON (`{"schedule": "cosine_decay", ...}`).
    pub fn set_schedule(&mut self, spec: &str) -> Result<()> {
        let spec = cstring("schedule", spec)?;
        // SAFETY: NUL-terminated string.
        self.check(unsafe { sys::descent_optimizer_set_schedule(self.raw(), spec.as_ptr()) })
    }

    /// Attaches a closure as the schedule: it gets the step count before the increment (update
    /// k uses `f(k - 1)`) and is called once now. `Err(e)` or a panic fails the call that ran it
    /// (this one or an update) with `DESCENT_ERR_CALLBACK` and `e`'s text or the panic's message;
    /// that call changes nothing. The closure is dropped when replaced, cleared or freed.
    pub fn set_schedule_fn<F, E>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(u64) -> std::result::Result<f64, E> + Send + 'static,
        E: Into<BoxError>,
    {
        let boxed: Box<ScheduleFn> = Box::new(Box::new(move |step| f(step).map_err(Into::into)));
        let user_data = Box::into_raw(boxed);
        // SAFETY: the trampoline matches the boxed type; on success the library owns user_data
        // and frees it through free_schedule.
        let status = unsafe {
            sys::descent_optimizer_set_schedule_callback(
                self.raw(),
                Some(callback::schedule_trampoline),
                user_data.cast(),
                Some(callback::free_schedule),
            )
        };
        if status != sys::DESCENT_OK {
            // A failed call leaves user_data with us.
            // SAFETY: not taken by the library.
            drop(unsafe { Box::from_raw(user_data) });
        }
        self.check(status)
    }

    /// Removes the schedule; the learning rate keeps its last value.
    pub fn clear_schedule(&mut self) -> Result<()> {
        // SAFETY: live handle.
        self.check(unsafe { sys::descent_optimizer_clear_schedule(self.raw()) })
    }

    // -- state

    /// The state keys present now (`"step"`, `"learning_rate"`, `"<param>.<slot>"`, ...).
    pub fn state_keys(&self) -> Result<Vec<String>> {
        let mut count = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_state_count(self.raw(), &mut count) })?;
        (0..count)
            .map(|i| {
                let mut key: *const c_char = ptr::null();
                // SAFETY: valid out pointer; copied at once.
                self.check(unsafe { sys::descent_optimizer_state_key(self.raw(), i, &mut key) })?;
                // SAFETY: handle-owned string, copied before the next call.
                Ok(unsafe { string_from(key) })
            })
            .collect()
    }

    /// The dtype and shape of a state slot.
    pub fn state_info(&self, key: &str) -> Result<StateInfo> {
        let key = cstring("key", key)?;
        let mut dtype = 0u32;
        let mut ndim = 0usize;
        let mut shape = [0i64; sys::DESCENT_MAX_NDIM];
        // SAFETY: shape holds DESCENT_MAX_NDIM dimensions.
        self.check(unsafe {
            sys::descent_optimizer_state_info(self.raw(), key.as_ptr(), &mut dtype, &mut ndim, shape.as_mut_ptr(), shape.len())
        })?;
        Ok(StateInfo { dtype, shape: shape[..ndim.min(shape.len())].to_vec() })
    }

    /// Copies a state slot into `out`, whose type and length must match the slot.
    pub fn state_get_into<T: Element>(&self, key: &str, out: &mut [T]) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: out is valid for out.len() writes of T; the library checks dtype and count.
        self.check(unsafe {
            sys::descent_optimizer_state_get(self.raw(), key.as_ptr(), T::DTYPE, out.as_mut_ptr().cast(), out.len() as i64)
        })
    }

    /// Copies a state slot out as a `Vec<T>` (`T` must be the slot's dtype: `u64` for `"step"`,
    /// `f32` for `"learning_rate"`).
    pub fn state_get<T: Element>(&self, key: &str) -> Result<Vec<T>> {
        let info = self.state_info(key)?;
        let mut out = vec![T::default(); info.numel()];
        self.state_get_into(key, &mut out)?;
        Ok(out)
    }

    /// Copies `data` into a state slot (same dtype and element count). Setting a per-parameter
    /// slot before the state exists initialises the state first.
    pub fn state_set<T: Element>(&mut self, key: &str, data: &[T]) -> Result<()> {
        let key = cstring("key", key)?;
        // SAFETY: data is valid for data.len() reads of T.
        self.check(unsafe {
            sys::descent_optimizer_state_set(self.raw(), key.as_ptr(), T::DTYPE, data.as_ptr().cast(), data.len() as i64)
        })
    }

    // -- saving

    /// Saves the whole state as a safetensors file (atomically: a good file is never damaged).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path_cstring(path.as_ref())?;
        // SAFETY: NUL-terminated path.
        self.check(unsafe { sys::descent_optimizer_save(self.raw(), path.as_ptr()) })
    }

    /// Serialises the whole state (the same bytes as [`OptimizerRef::save`] writes).
    pub fn save_to_vec(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        // SAFETY: size query with buf == NULL.
        self.check(unsafe { sys::descent_optimizer_save_to_buffer(self.raw(), ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        // SAFETY: buf holds size bytes.
        self.check(unsafe {
            sys::descent_optimizer_save_to_buffer(self.raw(), buf.as_mut_ptr().cast(), buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }
}

/// An owned optimizer handle (`descent_optimizer*`), freed on drop. `Send`, not `Sync`.
///
/// Everything that works on any handle (hyperparameters, schedules, state, save) is on
/// [`OptimizerRef`], reached through `Deref`.
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<descent::Optimizer>();
/// ```
pub struct Optimizer {
    raw: NonNull<sys::descent_optimizer>,
}

// SAFETY: a handle may move between threads; it is !Sync (NonNull), so one thread uses it at a
// time. Callbacks it holds are Send.
unsafe impl Send for Optimizer {}

impl Drop for Optimizer {
    fn drop(&mut self) {
        // SAFETY: owned handle, freed once. Frees the closures it holds.
        unsafe { sys::descent_optimizer_free(self.raw.as_ptr()) }
    }
}

impl std::ops::Deref for Optimizer {
    type Target = OptimizerRef;
    fn deref(&self) -> &OptimizerRef {
        // SAFETY: OptimizerRef is a zero-sized stand-in for the opaque handle.
        unsafe { &*(self.raw.as_ptr() as *const OptimizerRef) }
    }
}

impl std::ops::DerefMut for Optimizer {
    fn deref_mut(&mut self) -> &mut OptimizerRef {
        // SAFETY: as in deref; &mut self makes it exclusive.
        unsafe { &mut *(self.raw.as_ptr() as *mut OptimizerRef) }
    }
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer").field("kind", &self.kind()).field("parameters", &self.parameters().unwrap_or_default()).finish()
    }
}

impl std::fmt::Debug for OptimizerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimizerRef").field("kind", &self.kind()).finish()
    }
}

impl Optimizer {
    fn from_raw(raw: *mut sys::descent_optimizer) -> Result<Self> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(sys::DESCENT_ERR_INTERNAL, "the library returned a NULL handle"))?;
        Ok(Optimizer { raw })
    }

    /// Creates an optimizer of `kind` ([`kinds`]) with MLX's defaults.
    pub fn new(kind: &str) -> Result<Self> {
        let kind = cstring("kind", kind)?;
        let mut out = ptr::null_mut();
        let mut message = [0u8; sys::DESCENT_ERROR_CAPACITY];
        // SAFETY: valid out pointer and caller buffer.
        let status =
            unsafe { sys::descent_optimizer_create(kind.as_ptr(), &mut out, message.as_mut_ptr().cast(), message.len()) };
        check_buffer(status, &message)?;
        Self::from_raw(out)
    }

    /// Creates a multi optimizer with the usual split: group 0 Muon for parameters with ndim >= 2
    /// whose names match none of the comma-separated globs `adamw_names` (None:
    /// `"*embed*,*lm_head*,*head*,*norm*"`), group 1 AdamW for the rest. Configs are JSON.
    pub fn muon_adamw(muon_config: Option<&str>, adamw_config: Option<&str>, adamw_names: Option<&str>) -> Result<Self> {
        let muon = opt_cstring("muon config", muon_config)?;
        let adamw = opt_cstring("adamw config", adamw_config)?;
        let names = opt_cstring("adamw names", adamw_names)?;
        let mut out = ptr::null_mut();
        let mut message = [0u8; sys::DESCENT_ERROR_CAPACITY];
        // SAFETY: optional NUL-terminated strings, valid out pointer and caller buffer.
        let status = unsafe {
            sys::descent_multi_create_muon_adamw(
                opt_ptr(&muon),
                opt_ptr(&adamw),
                opt_ptr(&names),
                &mut out,
                message.as_mut_ptr().cast(),
                message.len(),
            )
        };
        check_buffer(status, &message)?;
        Self::from_raw(out)
    }

    /// The raw handle, for calling [`sys`] functions directly. It stays owned by `self`.
    pub fn as_raw(&self) -> *mut sys::descent_optimizer {
        self.raw.as_ptr()
    }

    // -- parameters

    /// Declares a parameter of element type `T` and `shape` (empty for a scalar); returns its
    /// index (declaration order, 0-based).
    pub fn add_parameter<T: Float>(&mut self, name: &str, shape: &[i64]) -> Result<usize> {
        self.add_parameter_dtype(name, T::DTYPE, shape)
    }

    /// Declares a parameter with a raw dtype code (`sys::DESCENT_FLOAT32`, `FLOAT64`, `BFLOAT16`
    /// or `FLOAT16`; the library rejects any other); returns its index.
    pub fn add_parameter_dtype(&mut self, name: &str, dtype: u32, shape: &[i64]) -> Result<usize> {
        let cname = cstring("parameter name", name)?;
        // SAFETY: shape is valid for shape.len() reads.
        self.check(unsafe {
            sys::descent_optimizer_add_parameter(self.raw.as_ptr(), cname.as_ptr(), dtype, shape.len(), shape.as_ptr())
        })?;
        self.parameter_count().map(|count| count - 1)
    }

    /// Declared parameter `index` (declaration order): its name, dtype and shape, as the library
    /// holds them.
    pub fn parameter(&self, index: usize) -> Result<ParameterInfo> {
        let mut name: *const c_char = ptr::null();
        let mut dtype = 0u32;
        let mut ndim = 0usize;
        let mut shape = [0i64; sys::DESCENT_MAX_NDIM];
        // SAFETY: valid out pointers; shape holds DESCENT_MAX_NDIM dimensions.
        self.check(unsafe {
            sys::descent_optimizer_parameter_info(
                self.raw.as_ptr(),
                index,
                &mut name,
                &mut dtype,
                &mut ndim,
                shape.as_mut_ptr(),
                shape.len(),
            )
        })?;
        // SAFETY: a handle-owned string, copied at once.
        let name = unsafe { string_from(name) };
        Ok(ParameterInfo { name, dtype, shape: shape[..ndim.min(shape.len())].to_vec() })
    }

    /// The declared parameters, indexed by their index.
    pub fn parameters(&self) -> Result<Vec<ParameterInfo>> {
        (0..self.parameter_count()?).map(|i| self.parameter(i)).collect()
    }

    /// Number of declared parameters.
    pub fn parameter_count(&self) -> Result<usize> {
        let mut out = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_parameter_count(self.raw.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// The index of a declared parameter.
    pub fn parameter_index(&self, name: &str) -> Result<usize> {
        let name = cstring("parameter name", name)?;
        let mut out = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_parameter_index(self.raw.as_ptr(), name.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// Allocates the state (optional: the first update does it).
    pub fn init(&mut self) -> Result<()> {
        // SAFETY: live handle.
        self.check(unsafe { sys::descent_optimizer_init(self.raw.as_ptr()) })
    }

    // -- updates

    /// Starts one optimizer step by index: add tensors with [`Update::tensor`], then
    /// [`Update::apply`]. Parameters not given are left alone; the step advances once.
    pub fn update(&mut self) -> Update<'_, '_> {
        Update { opt: self, indices: Vec::new(), dtypes: Vec::new(), numels: Vec::new(), params: Vec::new(), grads: Vec::new(), error: None, _buffers: PhantomData }
    }

    /// One step over parameters `0..params.len()` (all of dtype `T`), `params[i]` and `grads[i]`
    /// being parameter `i` and its gradient.
    pub fn update_all<T: Float>(&mut self, params: &mut [&mut [T]], grads: &[&[T]]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::new(
                sys::DESCENT_ERR_INVALID_ARGUMENT,
                format!("{} parameter buffers and {} gradient buffers", params.len(), grads.len()),
            ));
        }
        let mut update = self.update();
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            update = update.tensor(i, p, g);
        }
        update.apply()
    }

    /// The flat layout of the declared parameters (each at a 64-byte aligned offset).
    pub fn flat_layout(&self) -> Result<FlatLayout> {
        let mut size = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_optimizer_flat_size(self.raw.as_ptr(), &mut size) })?;
        let entries = (0..self.parameter_count()?)
            .map(|i| {
                let p = self.parameter(i)?;
                let mut offset = 0usize;
                // SAFETY: valid out pointer.
                self.check(unsafe { sys::descent_optimizer_flat_offset(self.raw.as_ptr(), i, &mut offset) })?;
                Ok(FlatEntry { offset, dtype: p.dtype, numel: p.numel() })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FlatLayout { entries, size })
    }

    /// One step over every declared parameter from two flat buffers made for the current
    /// [`Optimizer::flat_layout`].
    pub fn update_flat(&mut self, params: &mut FlatBuffer, grads: &FlatBuffer) -> Result<()> {
        if params.layout() != grads.layout() {
            return Err(Error::new(
                sys::DESCENT_ERR_SHAPE_MISMATCH,
                "the parameter and gradient buffers have different flat layouts",
            ));
        }
        let size = params.layout().size();
        // SAFETY: both buffers hold `size` bytes, 64-byte aligned, distinct allocations.
        self.check(unsafe {
            sys::descent_optimizer_update_flat(self.raw.as_ptr(), params.as_mut_ptr().cast(), grads.as_ptr().cast(), size)
        })
    }

    // -- loading

    /// Loads a state file (parameters must be declared first); all or nothing.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path_cstring(path.as_ref())?;
        // SAFETY: NUL-terminated path.
        self.check(unsafe { sys::descent_optimizer_load(self.raw.as_ptr(), path.as_ptr()) })
    }

    /// Loads a state from bytes written by [`OptimizerRef::save_to_vec`] or a safetensors file.
    pub fn load_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        // SAFETY: bytes is valid for len reads.
        self.check(unsafe { sys::descent_optimizer_load_from_buffer(self.raw.as_ptr(), bytes.as_ptr().cast(), bytes.len()) })
    }

    // -- multi

    /// Adds a group (a new optimizer of `kind`, configured by `config_json`) to a multi
    /// optimizer; returns its index.
    pub fn add_group(&mut self, kind: &str, config_json: Option<&str>) -> Result<usize> {
        let kind = cstring("kind", kind)?;
        let config = opt_cstring("config", config_json)?;
        let mut index = 0usize;
        // SAFETY: NUL-terminated strings, valid out pointer.
        self.check(unsafe { sys::descent_multi_add_group(self.raw.as_ptr(), kind.as_ptr(), opt_ptr(&config), &mut index) })?;
        Ok(index)
    }

    /// Number of groups of a multi optimizer.
    pub fn group_count(&self) -> Result<usize> {
        let mut out = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_multi_group_count(self.raw.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// A borrowed handle on group `index`, for its hyperparameters, schedule and state. It
    /// borrows the multi optimizer mutably: they count as one handle.
    pub fn group(&mut self, index: usize) -> Result<&mut OptimizerRef> {
        let mut out = ptr::null_mut();
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_multi_group(self.raw.as_ptr(), index, &mut out) })?;
        if out.is_null() {
            return Err(Error::new(sys::DESCENT_ERR_INTERNAL, "the library returned a NULL group handle"));
        }
        // SAFETY: owned by the multi optimizer and valid as long as it; the borrow ties the lifetime.
        Ok(unsafe { &mut *(out as *mut OptimizerRef) })
    }

    /// Include clause for group `index`: a name glob (`*` any run, `?` one character).
    pub fn filter_name(&mut self, index: usize, glob: &str) -> Result<()> {
        let glob = cstring("glob", glob)?;
        // SAFETY: NUL-terminated string.
        self.check(unsafe { sys::descent_multi_filter_name(self.raw.as_ptr(), index, glob.as_ptr()) })
    }

    /// Include clause for group `index`: `min_ndim <= ndim <= max_ndim` (None: unbounded).
    pub fn filter_ndim(&mut self, index: usize, min_ndim: i64, max_ndim: Option<i64>) -> Result<()> {
        // SAFETY: live handle.
        self.check(unsafe { sys::descent_multi_filter_ndim(self.raw.as_ptr(), index, min_ndim, max_ndim.unwrap_or(-1)) })
    }

    /// Include clause for group `index`: a closure of the parameter's name and shape. `Err(e)` or
    /// a panic fails the call that evaluated it with `DESCENT_ERR_CALLBACK` (see
    /// [`OptimizerRef::set_schedule_fn`]).
    pub fn filter_fn<F, E>(&mut self, index: usize, f: F) -> Result<()>
    where
        F: Fn(&str, &[i64]) -> std::result::Result<bool, E> + Send + 'static,
        E: Into<BoxError>,
    {
        let boxed: Box<FilterFn> = Box::new(Box::new(move |name: &str, shape: &[i64]| f(name, shape).map_err(Into::into)));
        let user_data = Box::into_raw(boxed);
        // SAFETY: the trampoline matches the boxed type; on success the library owns user_data.
        let status = unsafe {
            sys::descent_multi_filter_callback(
                self.raw.as_ptr(),
                index,
                Some(callback::filter_trampoline),
                user_data.cast(),
                Some(callback::free_filter),
            )
        };
        if status != sys::DESCENT_OK {
            // SAFETY: a failed call leaves user_data with us.
            drop(unsafe { Box::from_raw(user_data) });
        }
        self.check(status)
    }

    /// Exclude clause for group `index`: a name glob that rejects a parameter.
    pub fn exclude_name(&mut self, index: usize, glob: &str) -> Result<()> {
        let glob = cstring("glob", glob)?;
        // SAFETY: NUL-terminated string.
        self.check(unsafe { sys::descent_multi_exclude_name(self.raw.as_ptr(), index, glob.as_ptr()) })
    }

    /// The group a declared parameter belongs to (evaluates the filters before init).
    pub fn parameter_group(&self, name: &str) -> Result<usize> {
        let name = cstring("parameter name", name)?;
        let mut out = 0usize;
        // SAFETY: valid out pointer.
        self.check(unsafe { sys::descent_multi_parameter_group(self.raw.as_ptr(), name.as_ptr(), &mut out) })?;
        Ok(out)
    }
}

/// One optimizer step being assembled by [`Optimizer::update`]. The borrow checker guarantees
/// that no two parameter buffers overlap and no gradient overlaps a parameter.
#[must_use = "an update does nothing until apply() is called"]
pub struct Update<'o, 'a> {
    opt: &'o mut Optimizer,
    indices: Vec<usize>,
    dtypes: Vec<u32>,
    numels: Vec<i64>,
    params: Vec<*mut c_void>,
    grads: Vec<*const c_void>,
    error: Option<Error>,
    _buffers: PhantomData<(&'a mut [u8], &'a [u8])>,
}

impl<'o, 'a> Update<'o, 'a> {
    /// Adds parameter `index` with its buffer and gradient (same length). The library checks
    /// that `T` and the length match the declaration.
    pub fn tensor<T: Float>(mut self, index: usize, param: &'a mut [T], grad: &'a [T]) -> Self {
        if self.error.is_none() && param.len() != grad.len() {
            self.error = Some(Error::new(
                sys::DESCENT_ERR_SHAPE_MISMATCH,
                format!("parameter {index}: {} parameter elements, {} gradient elements", param.len(), grad.len()),
            ));
        }
        self.indices.push(index);
        self.dtypes.push(T::DTYPE);
        self.numels.push(param.len() as i64);
        self.params.push(param.as_mut_ptr().cast());
        self.grads.push(grad.as_ptr().cast());
        self
    }

    /// Adds a parameter by name (looks its index up once).
    pub fn tensor_named<T: Float>(mut self, name: &str, param: &'a mut [T], grad: &'a [T]) -> Self {
        match self.opt.parameter_index(name) {
            Ok(index) => self.tensor(index, param, grad),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// Runs the step: all tensors are validated before any is written; on error nothing changes.
    pub fn apply(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // SAFETY: every array has `count` entries; buffers are valid for their numels (the same
        // for the parameter and its gradient) and the library checks numels against the
        // declarations before touching anything.
        let status = unsafe {
            sys::descent_optimizer_update_indexed(
                self.opt.raw.as_ptr(),
                self.indices.len(),
                self.indices.as_ptr(),
                self.dtypes.as_ptr(),
                self.numels.as_ptr(),
                self.params.as_ptr(),
                self.grads.as_ptr(),
            )
        };
        self.opt.check(status)
    }
}

// ---- Handle-less functions --------------------------------------------------------------------

/// Evaluates a schedule (string or JSON form) at `step`, without an optimizer; `init_lr` is the
/// initial value of the forms that take it from an optimizer.
pub fn schedule_value(spec: &str, init_lr: f64, step: u64) -> Result<f64> {
    let spec = cstring("schedule", spec)?;
    let mut out = 0.0;
    let mut message = [0u8; sys::DESCENT_ERROR_CAPACITY];
    // SAFETY: valid out pointer and caller buffer.
    let status = unsafe {
        sys::descent_schedule_value(spec.as_ptr(), init_lr, step, &mut out, message.as_mut_ptr().cast(), message.len())
    };
    check_buffer(status, &message)?;
    Ok(out)
}

/// MLX's `clip_grad_norm` over `grads`, in place: scales every gradient by
/// `min(max_norm / (total + 1e-6), 1)`; returns `total`, the norm before clipping.
pub fn clip_grad_norm<T: Float>(grads: &mut [&mut [T]], max_norm: f64) -> Result<f64> {
    let dtypes = vec![T::DTYPE; grads.len()];
    let numels: Vec<i64> = grads.iter().map(|g| g.len() as i64).collect();
    let ptrs: Vec<*mut c_void> = grads.iter_mut().map(|g| g.as_mut_ptr().cast()).collect();
    clip_raw(&dtypes, &numels, &ptrs, max_norm)
}

pub(crate) fn clip_raw(dtypes: &[u32], numels: &[i64], ptrs: &[*mut c_void], max_norm: f64) -> Result<f64> {
    let mut total = 0.0;
    let mut message = [0u8; sys::DESCENT_ERROR_CAPACITY];
    // SAFETY: the arrays have the same length; each buffer holds numels[i] elements of dtypes[i].
    let status = unsafe {
        sys::descent_clip_grad_norm(
            ptrs.len(),
            dtypes.as_ptr(),
            numels.as_ptr(),
            ptrs.as_ptr(),
            max_norm,
            &mut total,
            message.as_mut_ptr().cast(),
            message.len(),
        )
    };
    check_buffer(status, &message)?;
    Ok(total)
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
