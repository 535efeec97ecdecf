package descent

/*
#include <descent/descent.h>
*/
import "C"

import "errors"

// Status is a descent_status code. It is an open set: the library may return codes this binding
// does not name (String still works).
type Status uint32

// The status codes of descent.h (values frozen by the ABI).
const (
	StatusOK              Status = 0
	StatusNullArgument    Status = 1
	StatusInvalidArgument Status = 2
	StatusUnknownKind     Status = 3
	StatusUnknownKey      Status = 4
	StatusWrongType       Status = 5
	StatusOutOfRange      Status = 6
	StatusDTypeMismatch   Status = 7
	StatusShapeMismatch   Status = 8
	StatusInvalidState    Status = 9
	StatusParse           Status = 10
	StatusBufferTooSmall  Status = 11
	StatusIO              Status = 12
	StatusCorrupt         Status = 13
	StatusOutOfMemory     Status = 14
	StatusUnsupported     Status = 15
	StatusDuplicate       Status = 16
	StatusCallback        Status = 17
	StatusInternal        Status = 99
)

// String is the library's name of the status, e.g. "DESCENT_ERR_UNKNOWN_KEY".
func (s Status) String() string { return C.GoString(C.descent_status_name(C.descent_status(s))) }

// Error is the error of a failed descent call: its status and the library's message. Error()
// is "STATUS_NAME: message". When a Go callback caused the failure, Unwrap returns what the
// callback returned, or a *CallbackPanic when it panicked.
type Error struct {
	Status  Status
	Message string
	cause   error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Message
}

// Unwrap returns the callback's error or *CallbackPanic behind a failure, or nil.
func (e *Error) Unwrap() error { return e.cause }

// IsStatus reports whether err is (or wraps) an *Error with status s.
func IsStatus(err error, s Status) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == s
}

// StatusOf returns the Status of the *Error in err's chain, StatusOK for nil, and
// StatusInternal for an error that is not descent's.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return StatusInternal
}

// bindingError is an error detected by the binding before calling the library (a Go-only
// condition such as mismatched slice lengths or a closed optimizer); same shape as the library's.
func bindingError(s Status, msg string) *Error {
	return &Error{Status: s, Message: msg}
}
