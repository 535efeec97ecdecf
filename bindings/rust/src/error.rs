//! The error type: a status code and a message, plus the callback failure that caused it.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::fmt;
use std::sync::Mutex;

use crate::sys;

/// A boxed error from a callback (what a closure's `Err` is turned into).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a failing callback left behind, kept on the Rust side while the library unwinds the call.
pub(crate) enum Cause {
    /// The closure returned `Err`.
    Failed(BoxError),
    /// The closure panicked; the payload, to re-raise with [`Error::resume_panic`].
    Panicked(Mutex<Option<Box<dyn Any + Send + 'static>>>),
}

thread_local! {
    // Callbacks run on the thread of the call that invokes them, so the failure of a callback
    // is stashed here by the trampoline and picked up by that call's status check.
    static PENDING: RefCell<Option<Cause>> = const { RefCell::new(None) };
}

pub(crate) fn stash(cause: Cause) {
    PENDING.with(|p| *p.borrow_mut() = Some(cause));
}

fn take_pending() -> Option<Cause> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// An error from libdescent (or from this binding's checks, with the status the library
/// would use): the status code, the library's message, and, when a Rust callback failed, the
/// callback's error or panic.
pub struct Error {
    status: u32,
    message: String,
    cause: Option<Cause>,
}

impl Error {
    pub(crate) fn new(status: u32, message: impl Into<String>) -> Self {
        Error { status, message: message.into(), cause: None }
    }

    /// The status code (`sys::DESCENT_ERR_*`). Codes unknown to this binding are kept as they are.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The status's name as the library spells it (`"DESCENT_ERR_UNKNOWN_KEY"`;
    /// `"DESCENT_ERR_UNKNOWN_STATUS"` for a code the library does not know).
    pub fn status_name(&self) -> &'static str {
        crate::status_name(self.status)
    }

    /// The message (it names the offending key, index or argument).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when a Rust callback panicked during the failing call.
    pub fn is_panic(&self) -> bool {
        matches!(self.cause, Some(Cause::Panicked(_)))
    }

    /// The panic payload of a callback that panicked during the failing call (once: a second
    /// call returns `None`).
    pub fn take_panic(&self) -> Option<Box<dyn Any + Send + 'static>> {
        match &self.cause {
            Some(Cause::Panicked(p)) => p.lock().unwrap_or_else(|e| e.into_inner()).take(),
            _ => None,
        }
    }

    /// Re-raises the panic of a callback (see [`Error::take_panic`]); returns `self` when
    /// there is none.
    pub fn resume_panic(self) -> Self {
        match self.take_panic() {
            Some(payload) => std::panic::resume_unwind(payload),
            None => self,
        }
    }

    /// The error a callback returned, when the failing call failed because of it.
    pub fn callback_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.cause {
            Some(Cause::Failed(e)) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status_name(), self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("status", &self.status)
            .field("name", &self.status_name())
            .field("message", &self.message);
        match &self.cause {
            Some(Cause::Failed(e)) => d.field("callback_error", e),
            Some(Cause::Panicked(_)) => d.field("callback_panicked", &true),
            None => &mut d,
        };
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(Cause::Failed(e)) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Copies a C string the library returned (NULL reads as "").
pub(crate) unsafe fn string_from(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Checks a call on a handle: on failure the message is the handle's last error, plus the
/// failure a callback stashed during the call.
pub(crate) fn check(opt: *const sys::descent_optimizer, status: u32) -> Result<()> {
    let cause = take_pending();
    if status == sys::DESCENT_OK {
        return Ok(());
    }
    // SAFETY: opt is a live handle; the message is copied at once.
    let message = unsafe { string_from(sys::descent_optimizer_last_error(opt)) };
    Err(Error { status, message, cause })
}

/// Checks a handle-less call that wrote its message into a caller buffer.
pub(crate) fn check_buffer(status: u32, buffer: &[u8]) -> Result<()> {
    let cause = take_pending();
    if status == sys::DESCENT_OK {
        return Ok(());
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let message = String::from_utf8_lossy(&buffer[..end]).into_owned();
    Err(Error { status, message, cause })
}
