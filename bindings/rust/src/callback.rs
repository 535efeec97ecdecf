//! Trampolines between the library's C callbacks and Rust closures. A closure's `Err` or panic
//! never crosses into the library: it becomes a `DESCENT_ERR_CALLBACK` status plus a message,
//! and the original error or panic payload is stashed for the failing call's [`Error`].

use std::any::Any;
use std::borrow::Cow;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::error::{stash, BoxError, Cause};
use crate::sys;

pub(crate) type ScheduleFn = Box<dyn FnMut(u64) -> Result<f64, BoxError> + Send + 'static>;
pub(crate) type FilterFn = Box<dyn Fn(&str, &[i64]) -> Result<bool, BoxError> + Send + 'static>;

/// Writes `text` NUL-terminated into the library's message buffer, truncated on a UTF-8
/// boundary.
unsafe fn write_message(buf: *mut c_char, capacity: usize, text: &str) {
    if buf.is_null() || capacity == 0 {
        return;
    }
    let mut n = text.len().min(capacity - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
    *buf.add(n) = 0;
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Cow<'_, str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Cow::Borrowed(s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Cow::Borrowed(s.as_str())
    } else {
        Cow::Borrowed("a panic with a non-string payload")
    }
}

/// Turns the outcome of a closure into a status, stashing what failed.
unsafe fn settle<T>(
    outcome: std::thread::Result<Result<T, BoxError>>,
    message: *mut c_char,
    capacity: usize,
    store: impl FnOnce(T),
) -> sys::descent_status {
    match outcome {
        Ok(Ok(value)) => {
            store(value);
            sys::DESCENT_OK
        }
        Ok(Err(error)) => {
            write_message(message, capacity, &error.to_string());
            stash(Cause::Failed(error));
            sys::DESCENT_ERR_CALLBACK
        }
        Err(payload) => {
            write_message(message, capacity, &format!("panicked: {}", panic_message(&*payload)));
            stash(Cause::Panicked(Mutex::new(Some(payload))));
            sys::DESCENT_ERR_CALLBACK
        }
    }
}

pub(crate) unsafe extern "C" fn schedule_trampoline(
    step: u64,
    user_data: *mut c_void,
    value: *mut f64,
    message: *mut c_char,
    capacity: usize,
) -> sys::descent_status {
    // SAFETY: user_data is the Box<ScheduleFn> leaked when the callback was attached; the
    // library calls it from one thread at a time and never re-entrantly (the closure cannot
    // reach the optimizer that runs it).
    let f = &mut *user_data.cast::<ScheduleFn>();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(step)));
    settle(outcome, message, capacity, |v| *value = v)
}

pub(crate) unsafe extern "C" fn filter_trampoline(
    name: *const c_char,
    ndim: usize,
    shape: *const i64,
    user_data: *mut c_void,
    accept: *mut bool,
    message: *mut c_char,
    capacity: usize,
) -> sys::descent_status {
    let f = &*user_data.cast::<FilterFn>();
    let name = if name.is_null() { Cow::Borrowed("") } else { CStr::from_ptr(name).to_string_lossy() };
    let shape: &[i64] = if ndim == 0 || shape.is_null() { &[] } else { std::slice::from_raw_parts(shape, ndim) };
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&name, shape)));
    settle(outcome, message, capacity, |v| *accept = v)
}

pub(crate) unsafe extern "C" fn free_schedule(user_data: *mut c_void) {
    let boxed = Box::from_raw(user_data.cast::<ScheduleFn>());
    // A panic in a captured value's Drop must not unwind into the library.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

pub(crate) unsafe extern "C" fn free_filter(user_data: *mut c_void) {
    let boxed = Box::from_raw(user_data.cast::<FilterFn>());
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}
