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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_truncated_on_a_char_boundary_and_nul_terminated() {
        let mut buf = [0x55u8; 6];
        // "héllo": h(1) é(2) l l o; 5 bytes fit before the NUL -> "héll".
        unsafe { write_message(buf.as_mut_ptr().cast(), buf.len(), "héllo") };
        assert_eq!(&buf, b"h\xc3\xa9ll\0");
        let mut buf = [0x55u8; 3];
        // "hé" is 3 bytes; only 2 fit: the é would be cut, so only "h".
        unsafe { write_message(buf.as_mut_ptr().cast(), buf.len(), "hé") };
        assert_eq!(&buf[..2], b"h\0");
        unsafe { write_message(std::ptr::null_mut(), 10, "ignored") };
    }

    #[test]
    fn panic_payloads_are_named() {
        let s: Box<dyn Any + Send> = Box::new("static");
        assert_eq!(panic_message(&*s), "static");
        let s: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_message(&*s), "owned");
        let s: Box<dyn Any + Send> = Box::new(42u8);
        assert_eq!(panic_message(&*s), "a panic with a non-string payload");
    }

    #[test]
    fn trampoline_maps_err_and_panic_to_callback_status() {
        let mut f: ScheduleFn = Box::new(|step| if step == 0 { Ok(1.5) } else if step == 1 { Err("bad".into()) } else { panic!("boom") });
        let ud: *mut ScheduleFn = &mut f;
        let mut value = 0.0;
        let mut msg = [0u8; 64];
        let call = |step, value: &mut f64, msg: &mut [u8; 64]| unsafe {
            schedule_trampoline(step, ud.cast(), value, msg.as_mut_ptr().cast(), msg.len())
        };
        assert_eq!(call(0, &mut value, &mut msg), sys::DESCENT_OK);
        assert_eq!(value, 1.5);
        assert_eq!(call(1, &mut value, &mut msg), sys::DESCENT_ERR_CALLBACK);
        assert!(msg.starts_with(b"bad\0"));
        assert_eq!(value, 1.5);
        assert_eq!(call(2, &mut value, &mut msg), sys::DESCENT_ERR_CALLBACK);
        assert!(msg.starts_with(b"panicked: boom\0"));
        // The last failure is what the next status check picks up.
        let e = crate::error::check_buffer(sys::DESCENT_ERR_CALLBACK, b"x\0").unwrap_err();
        assert!(e.is_panic());
    }
}
