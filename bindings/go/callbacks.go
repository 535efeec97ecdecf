package descent

// The Go side of the callbacks. A file with //export functions may only declare in its cgo
// preamble, so the C trampolines live in shim.c.

/*
#include <stdbool.h>
#include <stdint.h>
#include <descent/descent.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/cgo"
	"runtime/debug"
	"sync/atomic"
	"unsafe"
)

// ScheduleFunc computes the learning rate used by the update that follows step updates
// (update k uses f(k-1), as in MLX). A returned error fails the call that ran it.
type ScheduleFunc func(step uint64) (float64, error)

// FilterFunc decides whether a parameter (name and shape) belongs to a group. A returned error
// fails the call that ran it.
type FilterFunc func(name string, shape []int64) (bool, error)

// CallbackPanic is the cause (errors.As) of the error of a call whose callback panicked: the
// panic value and the stack of the callback's goroutine at the panic. Re-panic with
// panic(p.Value) to propagate it.
type CallbackPanic struct {
	Value any
	Stack []byte
}

func (p *CallbackPanic) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Unwrap returns the panic value when it is an error (panic(err)).
func (p *CallbackPanic) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}

// callState is shared by an optimizer and its borrowed group handles. It must not point back to
// the Optimizer: callback records reach it through cgo handles, which are GC roots.
type callState struct {
	depth atomic.Int32 // > 0 while a Go callback of this optimizer runs
	err   error        // the error or panic of the last failing callback, taken by the call
}

type scheduleRec struct {
	f  ScheduleFunc
	cs *callState
}

type filterRec struct {
	f  FilterFunc
	cs *callState
}

// liveCallbacks counts the callback handles the library holds (tests check that every one is
// released).
var liveCallbacks atomic.Int64

func newCallbackHandle(v any) cgo.Handle {
	liveCallbacks.Add(1)
	return cgo.NewHandle(v)
}

func deleteCallbackHandle(h cgo.Handle) {
	h.Delete()
	liveCallbacks.Add(-1)
}

// writeMessage copies s into the library's message buffer, truncated, NUL-terminated.
func writeMessage(buf *C.char, capacity C.size_t, s string) {
	if buf == nil || capacity == 0 {
		return
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(capacity))
	n := copy(dst[:len(dst)-1], s)
	dst[n] = 0
}

// callbackStatus is the status a failing callback returns: the Status of an *Error in the chain
// (the library maps codes it does not know to DESCENT_ERR_CALLBACK), else DESCENT_ERR_CALLBACK.
func callbackStatus(err error) C.descent_status {
	var e *Error
	if errors.As(err, &e) && e.Status != StatusOK {
		return C.descent_status(e.Status)
	}
	return C.descent_status(StatusCallback)
}

// runCallback runs body with the panic recovered; a failure is recorded in cs for the call that
// ran the callback and written to the library's message buffer.
func runCallback(cs *callState, msg *C.char, capacity C.size_t, body func() error) (status C.descent_status) {
	cs.depth.Add(1)
	defer cs.depth.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			p := &CallbackPanic{Value: r, Stack: debug.Stack()}
			cs.err = p
			writeMessage(msg, capacity, p.Error())
			status = C.descent_status(StatusCallback)
		}
	}()
	if err := body(); err != nil {
		cs.err = err
		text := err.Error()
		if e, ok := err.(*Error); ok {
			text = e.Message // the status travels as the return value
		}
		writeMessage(msg, capacity, text)
		return callbackStatus(err)
	}
	return C.descent_status(StatusOK)
}

//export descentGoSchedule
func descentGoSchedule(step C.uint64_t, handle C.uintptr_t, value *C.double, msg *C.char, capacity C.size_t) C.descent_status {
	rec := cgo.Handle(handle).Value().(*scheduleRec)
	return runCallback(rec.cs, msg, capacity, func() error {
		v, err := rec.f(uint64(step))
		if err != nil {
			return err
		}
		*value = C.double(v)
		return nil
	})
}

//export descentGoFilter
func descentGoFilter(name *C.char, ndim C.size_t, shape *C.int64_t, handle C.uintptr_t, accept *C.bool, msg *C.char, capacity C.size_t) C.descent_status {
	rec := cgo.Handle(handle).Value().(*filterRec)
	goName := C.GoString(name)
	dims := make([]int64, int(ndim))
	if ndim > 0 {
		copy(dims, unsafe.Slice((*int64)(unsafe.Pointer(shape)), int(ndim)))
	}
	return runCallback(rec.cs, msg, capacity, func() error {
		ok, err := rec.f(goName, dims)
		if err != nil {
			return err
		}
		*accept = C.bool(ok)
		return nil
	})
}

//export descentGoFree
func descentGoFree(handle C.uintptr_t) {
	deleteCallbackHandle(cgo.Handle(handle))
}
