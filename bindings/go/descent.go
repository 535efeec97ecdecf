// Package descent binds libdescent (neural-network optimizers with MLX semantics) through its
// C ABI 1.1 (SetNumThreads and NumThreads need libdescent 1.1).
//
// Parameters and gradients are ordinary Go slices. The fastest and simplest way to update is a
// Flat buffer pair (one allocation laid out as the library's flat layout, with typed views of
// each parameter) passed to Optimizer.UpdateFlat; per-tensor updates (Update, UpdateIndexed)
// take [][]float32 or [][]float64 and pin them for the duration of the call. No Go pointer is
// ever kept by the library.
//
// Errors are *Error values carrying the library's Status and message. Callbacks (schedules,
// filters) are Go functions that may return an error or panic: the call that ran them fails with
// an *Error whose Unwrap is the callback's error or a *CallbackPanic.
//
// An Optimizer is safe for use by several goroutines (an internal mutex serialises calls), but
// it is meant to be used by one at a time: calls made on an optimizer while one of its own
// callbacks runs (from the callback itself or from another goroutine) are refused with
// StatusInvalidState instead of deadlocking.
package descent

/*
#cgo pkg-config: descent
#include <stdlib.h>
#include <descent/descent.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// DType is a descent_dtype (an open set, like Status).
type DType uint32

const (
	Float32  DType = 1
	Float64  DType = 2
	BFloat16 DType = 3 // bfloat16: Go type BF16 (the bits)
	Float16  DType = 4 // IEEE binary16: Go type F16 (the bits)
	Uint64   DType = 5 // the "step" state slot only
)

// String is the library's dtype name ("float32", ...).
func (d DType) String() string { return C.GoString(C.descent_dtype_name(C.descent_dtype(d))) }

// Size is the element size in bytes (0 for a dtype this binding does not know).
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float64, Uint64:
		return 8
	case BFloat16, Float16:
		return 2
	}
	return 0
}

// ValueType is a descent_value_type: the type of a hyperparameter's current value.
type ValueType uint32

const (
	ValueNone        ValueType = 0 // an optional hyperparameter that is unset
	ValueDouble      ValueType = 1
	ValueInt         ValueType = 2
	ValueBool        ValueType = 3
	ValueDoubleArray ValueType = 4
	ValueString      ValueType = 5
)

// ErrorCapacity is DESCENT_ERROR_CAPACITY: a caller buffer of this size holds any message.
const ErrorCapacity = C.DESCENT_ERROR_CAPACITY

// FlatAlignment is DESCENT_FLAT_ALIGNMENT: the alignment of every offset in the flat layout.
const FlatAlignment = C.DESCENT_FLAT_ALIGNMENT

// Version is the library's "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.descent_version_string()) }

// VersionNumber is the library's MAJOR*10000 + MINOR*100 + PATCH.
func VersionNumber() int { return int(C.descent_version_number()) }

// Kinds lists the optimizer kinds New accepts, in the library's order ("multi" last).
func Kinds() []string {
	n := int(C.descent_kind_count())
	kinds := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if name := C.descent_kind_name(C.size_t(i)); name != nil {
			kinds = append(kinds, C.GoString(name))
		}
	}
	return kinds
}

// ParameterInfo describes a declared parameter, as the library holds it.
type ParameterInfo struct {
	Name  string
	DType DType
	Shape []int64 // empty for a scalar
}

// Numel is the number of elements (1 for a scalar).
func (p ParameterInfo) Numel() int {
	n := 1
	for _, d := range p.Shape {
		n *= int(d)
	}
	return n
}

// parameterInfo reads parameter i of p (under the caller's lock).
func parameterInfo(p *C.descent_optimizer, i int, out *ParameterInfo) C.descent_status {
	var name *C.char
	var dtype C.descent_dtype
	var ndim C.size_t
	var shape [C.DESCENT_MAX_NDIM]C.int64_t
	if st := C.descent_optimizer_parameter_info(p, C.size_t(i), &name, &dtype, &ndim, &shape[0], C.size_t(len(shape))); st != 0 {
		return st
	}
	out.Name = C.GoString(name)
	out.DType = DType(dtype)
	out.Shape = make([]int64, int(ndim))
	for d := range out.Shape {
		out.Shape[d] = int64(shape[d])
	}
	return 0
}

// handle is what an optimizer and its borrowed group handles share: the owned C pointer, the
// lock serialising calls, and the callback state.
type handle struct {
	mu     sync.Mutex
	ptr    *C.descent_optimizer
	closed bool
	cs     *callState
}

// Optimizer is a descent optimizer, or a borrowed handle on one group of a multi optimizer
// (Group). Release it with Close; a finalizer releases a forgotten one.
type Optimizer struct {
	h      *handle
	ptr    *C.descent_optimizer // this handle: h.ptr, or a group's borrowed pointer
	parent *Optimizer           // for a group: keeps the owner alive
}

// cString converts s for C; the caller frees it. A NUL byte inside s is an error (C would see a
// shorter string).
func cString(s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, bindingError(StatusInvalidArgument, fmt.Sprintf("string %q contains a NUL byte", s))
	}
	return C.CString(s), nil
}

func cStringOrNil(s string) (*C.char, error) {
	if s == "" {
		return nil, nil
	}
	return cString(s)
}

func freeC(p *C.char) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

func errorFromBuffer(st C.descent_status, buf []C.char) error {
	return &Error{Status: Status(st), Message: C.GoString(&buf[0])}
}

func wrap(ptr *C.descent_optimizer) *Optimizer {
	o := &Optimizer{h: &handle{ptr: ptr, cs: &callState{}}, ptr: ptr}
	runtime.SetFinalizer(o, (*Optimizer).finalize)
	return o
}

// New creates an optimizer of kind (see Kinds) with MLX's defaults; set at least
// "learning_rate" before the first update.
func New(kind string) (*Optimizer, error) {
	ck, err := cString(kind)
	if err != nil {
		return nil, err
	}
	defer freeC(ck)
	var ptr *C.descent_optimizer
	var buf [ErrorCapacity]C.char
	if st := C.descent_optimizer_create(ck, &ptr, &buf[0], C.size_t(len(buf))); st != 0 {
		return nil, errorFromBuffer(st, buf[:])
	}
	return wrap(ptr), nil
}

// NewMuonAdamW creates the usual split as a multi optimizer: group 0 Muon for parameters with
// ndim >= 2 whose names match none of adamwNames (globs; none given: the library's default
// "*embed*,*lm_head*,*head*,*norm*"), group 1 AdamW for the rest. Either config may be "" (the
// defaults; a learning_rate is still required).
func NewMuonAdamW(muonConfigJSON, adamwConfigJSON string, adamwNames ...string) (*Optimizer, error) {
	cm, err := cStringOrNil(muonConfigJSON)
	if err != nil {
		return nil, err
	}
	defer freeC(cm)
	ca, err := cStringOrNil(adamwConfigJSON)
	if err != nil {
		return nil, err
	}
	defer freeC(ca)
	var cn *C.char
	if adamwNames != nil {
		if cn, err = cString(strings.Join(adamwNames, ",")); err != nil {
			return nil, err
		}
		defer freeC(cn)
	}
	var ptr *C.descent_optimizer
	var buf [ErrorCapacity]C.char
	if st := C.descent_multi_create_muon_adamw(cm, ca, cn, &ptr, &buf[0], C.size_t(len(buf))); st != 0 {
		return nil, errorFromBuffer(st, buf[:])
	}
	return wrap(ptr), nil
}

func (o *Optimizer) finalize() {
	// Unreachable: nobody else can hold the lock.
	if !o.h.closed {
		o.h.closed = true
		C.descent_optimizer_free(o.h.ptr)
		o.h.ptr = nil
	}
}

// Close frees the optimizer (and releases its callbacks). Closing twice is a no-op; any other
// call after Close fails with StatusInvalidState. On a group handle Close does nothing: the
// group lives as long as its multi optimizer.
func (o *Optimizer) Close() error {
	if o.parent != nil {
		return nil
	}
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.h.mu.Unlock()
	if o.h.closed {
		return nil
	}
	o.h.closed = true
	C.descent_optimizer_free(o.h.ptr)
	o.h.ptr = nil
	runtime.SetFinalizer(o, nil)
	return nil
}

func errReentrant() error {
	return bindingError(StatusInvalidState,
		"descent (Go): the optimizer is running one of its callbacks; calls on it from inside the callback (or from another goroutine meanwhile) are refused")
}

// lock takes the optimizer's lock, refusing (instead of deadlocking) while one of its callbacks
// runs, and refusing a closed optimizer.
func (o *Optimizer) lock() error {
	if err := o.acquire(); err != nil {
		return err
	}
	if o.h.closed {
		o.h.mu.Unlock()
		return bindingError(StatusInvalidState, "descent (Go): the optimizer is closed")
	}
	return nil
}

func (o *Optimizer) acquire() error {
	h := o.h
	if !h.mu.TryLock() {
		if h.cs.depth.Load() > 0 {
			return errReentrant()
		}
		h.mu.Lock()
	}
	return nil
}

// call runs f on the handle under the lock and turns a failure into an *Error with the handle's
// message (descent_optimizer_last_error, read at once) and any callback cause.
func (o *Optimizer) call(f func(p *C.descent_optimizer) C.descent_status) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.h.mu.Unlock()
	return o.callLocked(f)
}

func (o *Optimizer) callLocked(f func(p *C.descent_optimizer) C.descent_status) error {
	o.h.cs.err = nil
	st := f(o.ptr)
	cause := o.h.cs.err
	o.h.cs.err = nil
	runtime.KeepAlive(o)
	if st == 0 {
		return nil
	}
	return &Error{Status: Status(st), Message: C.GoString(C.descent_optimizer_last_error(o.ptr)), cause: cause}
}

// withKey converts key for C and runs f under the lock.
func (o *Optimizer) withKey(key string, f func(p *C.descent_optimizer, k *C.char) C.descent_status) error {
	ck, err := cString(key)
	if err != nil {
		return err
	}
	defer freeC(ck)
	return o.call(func(p *C.descent_optimizer) C.descent_status { return f(p, ck) })
}

// Kind is the kind name given at creation.
func (o *Optimizer) Kind() (string, error) {
	var s string
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		s = C.GoString(C.descent_optimizer_kind(p))
		return 0
	})
	return s, err
}

// ---- Hyperparameters ----

// SetFloat sets a double hyperparameter (an integral value is accepted for an int one).
func (o *Optimizer) SetFloat(key string, v float64) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_set_double(p, k, C.double(v))
	})
}

// SetInt sets an int hyperparameter (accepted for a double one too).
func (o *Optimizer) SetInt(key string, v int64) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_set_int(p, k, C.int64_t(v))
	})
}

// SetBool sets a bool hyperparameter.
func (o *Optimizer) SetBool(key string, v bool) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_set_bool(p, k, C.bool(v))
	})
}

// SetFloats sets an array hyperparameter (e.g. "betas").
func (o *Optimizer) SetFloats(key string, v []float64) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		var ptr *C.double
		if len(v) > 0 {
			ptr = (*C.double)(unsafe.Pointer(&v[0]))
		}
		return C.descent_optimizer_set_doubles(p, k, ptr, C.size_t(len(v)))
	})
}

// SetString sets a string hyperparameter (one of the key's choices).
func (o *Optimizer) SetString(key, value string) error {
	cv, err := cString(value)
	if err != nil {
		return err
	}
	defer freeC(cv)
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_set_string(p, k, cv)
	})
}

// Unset unsets an optional hyperparameter (MLX's None).
func (o *Optimizer) Unset(key string) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_unset(p, k)
	})
}

// GetFloat reads a double hyperparameter.
func (o *Optimizer) GetFloat(key string) (float64, error) {
	var out C.double
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_get_double(p, k, &out)
	})
	return float64(out), err
}

// GetInt reads an int hyperparameter.
func (o *Optimizer) GetInt(key string) (int64, error) {
	var out C.int64_t
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_get_int(p, k, &out)
	})
	return int64(out), err
}

// GetBool reads a bool hyperparameter.
func (o *Optimizer) GetBool(key string) (bool, error) {
	var out C.bool
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_get_bool(p, k, &out)
	})
	return bool(out), err
}

// GetFloats reads an array hyperparameter.
func (o *Optimizer) GetFloats(key string) ([]float64, error) {
	var out []float64
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		var n C.size_t
		if st := C.descent_optimizer_get_doubles(p, k, nil, 0, &n); st != 0 {
			return st
		}
		out = make([]float64, int(n))
		if n == 0 {
			return 0
		}
		return C.descent_optimizer_get_doubles(p, k, (*C.double)(unsafe.Pointer(&out[0])), n, &n)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetString reads a string hyperparameter.
func (o *Optimizer) GetString(key string) (string, error) {
	var out string
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		var n C.size_t
		if st := C.descent_optimizer_get_string(p, k, nil, 0, &n); st != 0 {
			return st
		}
		buf := make([]byte, int(n)+1)
		if st := C.descent_optimizer_get_string(p, k, (*C.char)(unsafe.Pointer(&buf[0])), n+1, &n); st != 0 {
			return st
		}
		out = string(buf[:int(n)])
		return 0
	})
	return out, err
}

// Hyperparameters lists the names of the hyperparameters of this kind ("learning_rate" first).
func (o *Optimizer) Hyperparameters() ([]string, error) {
	var names []string
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		var n C.size_t
		if st := C.descent_optimizer_hyperparameter_count(p, &n); st != 0 {
			return st
		}
		names = make([]string, 0, int(n))
		for i := C.size_t(0); i < n; i++ {
			var s *C.char
			if st := C.descent_optimizer_hyperparameter_name(p, i, &s); st != 0 {
				return st
			}
			names = append(names, C.GoString(s))
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// HyperparameterType is the type of key's current value (ValueNone when an optional one is
// unset).
func (o *Optimizer) HyperparameterType(key string) (ValueType, error) {
	var t C.descent_value_type
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_hyperparameter_type(p, k, &t)
	})
	return ValueType(t), err
}

// ConfigureJSON applies a JSON object of hyperparameters, all or nothing.
func (o *Optimizer) ConfigureJSON(json string) error {
	return o.withKey(json, func(p *C.descent_optimizer, j *C.char) C.descent_status {
		return C.descent_optimizer_configure_json(p, j)
	})
}

// ---- Parameters ----

// AddParameter declares a tensor (name: an MLX tree_flatten path) and returns its index.
func (o *Optimizer) AddParameter(name string, dtype DType, shape ...int64) (int, error) {
	index := -1
	err := o.withKey(name, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		var sp *C.int64_t
		if len(shape) > 0 {
			sp = (*C.int64_t)(unsafe.Pointer(&shape[0]))
		}
		if st := C.descent_optimizer_add_parameter(p, k, C.descent_dtype(dtype), C.size_t(len(shape)), sp); st != 0 {
			return st
		}
		var n C.size_t
		if st := C.descent_optimizer_parameter_count(p, &n); st != 0 {
			return st
		}
		index = int(n) - 1
		return 0
	})
	return index, err
}

// Parameter describes declared parameter i (declaration order): its name, dtype and shape.
func (o *Optimizer) Parameter(i int) (ParameterInfo, error) {
	if i < 0 {
		return ParameterInfo{}, bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): parameter index %d is negative", i))
	}
	var info ParameterInfo
	err := o.call(func(p *C.descent_optimizer) C.descent_status { return parameterInfo(p, i, &info) })
	if err != nil {
		return ParameterInfo{}, err
	}
	return info, nil
}

// ParameterCount is the number of declared parameters.
func (o *Optimizer) ParameterCount() (int, error) {
	var n C.size_t
	err := o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_optimizer_parameter_count(p, &n) })
	return int(n), err
}

// ParameterIndex is the index of a declared parameter.
func (o *Optimizer) ParameterIndex(name string) (int, error) {
	var n C.size_t
	err := o.withKey(name, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_parameter_index(p, k, &n)
	})
	if err != nil {
		return -1, err
	}
	return int(n), nil
}

// Init allocates the state of every declared parameter (optional: the first update does it).
func (o *Optimizer) Init() error {
	return o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_optimizer_init(p) })
}

// ---- Schedules ----

// SetSchedule attaches a schedule given as a string ("cosine:1000:0", ...) or as JSON.
func (o *Optimizer) SetSchedule(spec string) error {
	return o.withKey(spec, func(p *C.descent_optimizer, s *C.char) C.descent_status {
		return C.descent_optimizer_set_schedule(p, s)
	})
}

// SetScheduleFunc attaches a Go schedule. It is evaluated once now (at the current step) and
// once before every update; an error it returns or a panic fails that call (see Error.Unwrap).
// The library keeps the function until it is replaced, cleared or the optimizer is closed.
func (o *Optimizer) SetScheduleFunc(f ScheduleFunc) error {
	if f == nil {
		return bindingError(StatusNullArgument, "descent (Go): nil schedule function")
	}
	h := newCallbackHandle(&scheduleRec{f: f, cs: o.h.cs})
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_go_set_schedule(p, C.uintptr_t(h))
	})
	if err != nil {
		deleteCallbackHandle(h) // a failed call leaves user_data with the caller
	}
	return err
}

// ClearSchedule removes the schedule; the learning rate keeps its last value.
func (o *Optimizer) ClearSchedule() error {
	return o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_optimizer_clear_schedule(p) })
}

// ScheduleValue evaluates a schedule (string or JSON form) at step, without an optimizer;
// string forms that take their initial value from an optimizer use initLR.
func ScheduleValue(spec string, initLR float64, step uint64) (float64, error) {
	cs, err := cString(spec)
	if err != nil {
		return 0, err
	}
	defer freeC(cs)
	var out C.double
	var buf [ErrorCapacity]C.char
	if st := C.descent_schedule_value(cs, C.double(initLR), C.uint64_t(step), &out, &buf[0], C.size_t(len(buf))); st != 0 {
		return 0, errorFromBuffer(st, buf[:])
	}
	return float64(out), nil
}

// ---- Saving and resuming ----

// Save writes the whole state as safetensors (MLX's key names) to path, atomically.
func (o *Optimizer) Save(path string) error {
	return o.withKey(path, func(p *C.descent_optimizer, s *C.char) C.descent_status {
		return C.descent_optimizer_save(p, s)
	})
}

// Load reads a state written by Save (or MLX); the parameters must be declared first. A load
// that fails changes nothing.
func (o *Optimizer) Load(path string) error {
	return o.withKey(path, func(p *C.descent_optimizer, s *C.char) C.descent_status {
		return C.descent_optimizer_load(p, s)
	})
}

// SaveBytes is Save into memory.
func (o *Optimizer) SaveBytes() ([]byte, error) {
	var out []byte
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		var n C.size_t
		if st := C.descent_optimizer_save_to_buffer(p, nil, 0, &n); st != 0 {
			return st
		}
		out = make([]byte, int(n))
		if n == 0 {
			return 0
		}
		return C.descent_optimizer_save_to_buffer(p, unsafe.Pointer(&out[0]), n, &n)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LoadBytes is Load from memory.
func (o *Optimizer) LoadBytes(b []byte) error {
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		var ptr unsafe.Pointer
		if len(b) > 0 {
			ptr = unsafe.Pointer(&b[0])
		}
		return C.descent_optimizer_load_from_buffer(p, ptr, C.size_t(len(b)))
	})
}

// ---- Multi optimizer ----

// AddGroup adds a group (a new optimizer of kind configured by configJSON, may be "") to a
// multi optimizer and returns its index.
func (o *Optimizer) AddGroup(kind, configJSON string) (int, error) {
	cc, err := cStringOrNil(configJSON)
	if err != nil {
		return -1, err
	}
	defer freeC(cc)
	var idx C.size_t
	err = o.withKey(kind, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_multi_add_group(p, k, cc, &idx)
	})
	if err != nil {
		return -1, err
	}
	return int(idx), nil
}

// GroupCount is the number of groups of a multi optimizer.
func (o *Optimizer) GroupCount() (int, error) {
	var n C.size_t
	err := o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_multi_group_count(p, &n) })
	return int(n), err
}

// Group returns a borrowed handle on group i for configuring it (hyperparameters, schedule) and
// reading its state. It is valid as long as the multi optimizer (it keeps it reachable); Close
// on it does nothing.
func (o *Optimizer) Group(i int) (*Optimizer, error) {
	if i < 0 {
		return nil, bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): group index %d", i))
	}
	var g *C.descent_optimizer
	err := o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_multi_group(p, C.size_t(i), &g) })
	if err != nil {
		return nil, err
	}
	owner := o
	if o.parent != nil {
		owner = o.parent
	}
	return &Optimizer{h: o.h, ptr: g, parent: owner}, nil
}

func groupIndex(i int) (C.size_t, error) {
	if i < 0 {
		return 0, bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): group index %d", i))
	}
	return C.size_t(i), nil
}

// FilterName adds an include clause to group i: a name glob ('*', '?').
func (o *Optimizer) FilterName(i int, glob string) error {
	gi, err := groupIndex(i)
	if err != nil {
		return err
	}
	return o.withKey(glob, func(p *C.descent_optimizer, g *C.char) C.descent_status {
		return C.descent_multi_filter_name(p, gi, g)
	})
}

// FilterNdim adds an include clause to group i: minNdim <= ndim <= maxNdim (maxNdim < 0:
// unbounded).
func (o *Optimizer) FilterNdim(i int, minNdim, maxNdim int64) error {
	gi, err := groupIndex(i)
	if err != nil {
		return err
	}
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_multi_filter_ndim(p, gi, C.int64_t(minNdim), C.int64_t(maxNdim))
	})
}

// FilterFunc adds a Go include clause to group i. An error it returns or a panic fails the
// call that ran it (ParameterGroup, Init, the first update).
func (o *Optimizer) FilterFunc(i int, f FilterFunc) error {
	gi, err := groupIndex(i)
	if err != nil {
		return err
	}
	if f == nil {
		return bindingError(StatusNullArgument, "descent (Go): nil filter function")
	}
	h := newCallbackHandle(&filterRec{f: f, cs: o.h.cs})
	err = o.call(func(p *C.descent_optimizer) C.descent_status { return C.descent_go_filter(p, gi, C.uintptr_t(h)) })
	if err != nil {
		deleteCallbackHandle(h)
	}
	return err
}

// ExcludeName adds an exclude glob to group i.
func (o *Optimizer) ExcludeName(i int, glob string) error {
	gi, err := groupIndex(i)
	if err != nil {
		return err
	}
	return o.withKey(glob, func(p *C.descent_optimizer, g *C.char) C.descent_status {
		return C.descent_multi_exclude_name(p, gi, g)
	})
}

// ParameterGroup is the group a declared parameter belongs to (runs the filters now).
func (o *Optimizer) ParameterGroup(name string) (int, error) {
	var n C.size_t
	err := o.withKey(name, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_multi_parameter_group(p, k, &n)
	})
	if err != nil {
		return -1, err
	}
	return int(n), nil
}
