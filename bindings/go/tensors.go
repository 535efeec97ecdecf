package descent

/*
#include <descent/descent.h>
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Float is the element type of per-tensor parameters and gradients.
type Float interface{ float32 | float64 | BF16 | F16 }

// Element is the element type of state slots (uint64 for "step").
type Element interface {
	float32 | float64 | BF16 | F16 | uint64
}

// BF16 is a bfloat16 value held as its bits (DType BFloat16). The library does the arithmetic;
// how it keeps the state of a half-precision parameter is the "state_precision"
// hyperparameter ("float32", "master" or "param").
type BF16 uint16

// F16 is an IEEE binary16 value held as its bits (DType Float16).
type F16 uint16

// Float32 widens h exactly.
func (h BF16) Float32() float32 { return math.Float32frombits(uint32(h) << 16) }

// BF16FromFloat32 rounds f to nearest even (every NaN becomes the quiet NaN 0x7FC0).
func BF16FromFloat32(f float32) BF16 {
	u := math.Float32bits(f)
	if u&0x7FFFFFFF > 0x7F800000 {
		return 0x7FC0
	}
	return BF16((u + 0x7FFF + ((u >> 16) & 1)) >> 16)
}

// Float32 widens h exactly.
func (h F16) Float32() float32 {
	sign := uint32(h&0x8000) << 16
	exp := (uint32(h) >> 10) & 0x1F
	mant := uint32(h) & 0x3FF
	var mag uint32
	switch exp {
	case 0:
		mag = math.Float32bits(float32(mant) * 0x1p-24) // exact
	case 0x1F:
		mag = 0x7F800000 | mant<<13
		if mant != 0 {
			mag |= 0x400000
		}
	default:
		mag = (exp+112)<<23 | mant<<13
	}
	return math.Float32frombits(sign | mag)
}

// F16FromFloat32 rounds f to nearest even (subnormals, and overflow to infinity, included).
func F16FromFloat32(f float32) F16 {
	u := math.Float32bits(f)
	sign := (u >> 16) & 0x8000
	a := u & 0x7FFFFFFF
	var r uint32
	switch {
	case a > 0x7F800000:
		r = 0x7E00 | (a>>13)&0x3FF
	case a >= 0x477FF000:
		r = 0x7C00
	case a < 0x38800000: // below 2^-14: the float32 addition rounds at 2^-24
		r = math.Float32bits(math.Float32frombits(a)+0.5) - math.Float32bits(0.5)
	default:
		r = (a - 112<<23 + 0xFFF + (a>>13)&1) >> 13
	}
	return F16(sign | r)
}

func dtypeOf[T Element]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case BF16:
		return BFloat16
	case F16:
		return Float16
	default:
		return Uint64
	}
}

func dataPtr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// ---- Flat buffers ----

// Flat is a buffer in an optimizer's flat layout (descent_optimizer_flat_offset/_size): every
// declared parameter at a 64-byte-aligned offset, in declaration order. It is ordinary Go memory
// (8-byte aligned words) holding no pointers, so it goes to C legally without pinning. Use one
// Flat for the parameters and one for the gradients; Float32s/Float64s are views of each
// parameter (writes go into the buffer).
type Flat struct {
	words   []uint64
	size    int
	params  []ParameterInfo // as the library reported them when the Flat was made
	numels  []int
	offsets []int
}

// NewFlat allocates a zeroed buffer in the optimizer's current flat layout (declare every
// parameter first: a Flat made earlier no longer matches once more are declared).
func (o *Optimizer) NewFlat() (*Flat, error) {
	f := &Flat{}
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		var size C.size_t
		if st := C.descent_optimizer_flat_size(p, &size); st != 0 {
			return st
		}
		f.size = int(size)
		var n C.size_t
		if st := C.descent_optimizer_parameter_count(p, &n); st != 0 {
			return st
		}
		f.params = make([]ParameterInfo, int(n))
		f.numels = make([]int, int(n))
		f.offsets = make([]int, int(n))
		for i := range f.params {
			if st := parameterInfo(p, i, &f.params[i]); st != 0 {
				return st
			}
			f.numels[i] = f.params[i].Numel()
			var off C.size_t
			if st := C.descent_optimizer_flat_offset(p, C.size_t(i), &off); st != 0 {
				return st
			}
			f.offsets[i] = int(off)
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	f.words = make([]uint64, (f.size+7)/8)
	return f, nil
}

// Len is the number of parameters in the layout.
func (f *Flat) Len() int { return len(f.params) }

// Size is the layout's size in bytes (descent_optimizer_flat_size).
func (f *Flat) Size() int { return f.size }

// Name, DType, Shape and Offset describe parameter i.
func (f *Flat) Name(i int) string   { return f.params[i].Name }
func (f *Flat) DType(i int) DType   { return f.params[i].DType }
func (f *Flat) Offset(i int) int    { return f.offsets[i] }
func (f *Flat) Shape(i int) []int64 { return append([]int64(nil), f.params[i].Shape...) }

// Bytes is the whole buffer (padding included).
func (f *Flat) Bytes() []byte {
	if f.size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f.words[0])), f.size)
}

func (f *Flat) view(i int, want DType) unsafe.Pointer {
	if f.params[i].DType != want {
		panic(fmt.Sprintf("descent: parameter %d (%s) is %v, not %v", i, f.params[i].Name, f.params[i].DType, want))
	}
	return unsafe.Pointer(&f.words[f.offsets[i]/8])
}

// Float32s is a view of parameter i, which must be float32 (else it panics, like an index out of
// range). Its capacity equals its length, so append never writes into a neighbour.
func (f *Flat) Float32s(i int) []float32 {
	n := f.numels[i]
	if n == 0 {
		return []float32{}
	}
	return unsafe.Slice((*float32)(f.view(i, Float32)), n)
}

// Float64s is a view of parameter i, which must be float64 (else it panics).
func (f *Flat) Float64s(i int) []float64 {
	n := f.numels[i]
	if n == 0 {
		return []float64{}
	}
	return unsafe.Slice((*float64)(f.view(i, Float64)), n)
}

// BF16s is a view of parameter i, which must be bfloat16 (else it panics).
func (f *Flat) BF16s(i int) []BF16 {
	n := f.numels[i]
	if n == 0 {
		return []BF16{}
	}
	return unsafe.Slice((*BF16)(f.view(i, BFloat16)), n)
}

// F16s is a view of parameter i, which must be float16 (else it panics).
func (f *Flat) F16s(i int) []F16 {
	n := f.numels[i]
	if n == 0 {
		return []F16{}
	}
	return unsafe.Slice((*F16)(f.view(i, Float16)), n)
}

// UpdateFlat runs one step on every declared parameter: params and grads are two Flats of the
// optimizer's current layout (distinct buffers).
func (o *Optimizer) UpdateFlat(params, grads *Flat) error {
	if params == nil || grads == nil {
		return bindingError(StatusNullArgument, "descent (Go): nil Flat")
	}
	if params.size != grads.size {
		return bindingError(StatusShapeMismatch, fmt.Sprintf(
			"descent (Go): the params Flat has %d bytes, the grads Flat %d", params.size, grads.size))
	}
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_optimizer_update_flat(p, dataPtr(params.words), dataPtr(grads.words), C.size_t(params.size))
	})
}

// ClipGradNorm clips the gradients held in f as MLX's clip_grad_norm (see the package function)
// and returns their norm before clipping.
func (f *Flat) ClipGradNorm(maxNorm float64) (float64, error) {
	n := len(f.params)
	dtypes := make([]C.descent_dtype, n)
	numels := make([]C.int64_t, n)
	ptrs := make([]unsafe.Pointer, n)
	var pin runtime.Pinner
	defer pin.Unpin()
	if len(f.words) > 0 {
		pin.Pin(&f.words[0]) // pins the whole buffer: the pointers below point into it
	}
	for i, p := range f.params {
		dtypes[i] = C.descent_dtype(p.DType)
		numels[i] = C.int64_t(f.numels[i])
		if f.numels[i] > 0 {
			ptrs[i] = unsafe.Add(unsafe.Pointer(&f.words[0]), f.offsets[i])
		}
	}
	return clip(n, dtypes, numels, ptrs, maxNorm)
}

// ---- Per-tensor updates ----

type tensorArgs struct {
	dtypes []C.descent_dtype
	numels []C.int64_t
	params []unsafe.Pointer // pinned Go pointers
	grads  []unsafe.Pointer
}

func (a *tensorArgs) ptrs() (*C.descent_dtype, *C.int64_t, *unsafe.Pointer, *unsafe.Pointer) {
	if len(a.dtypes) == 0 {
		return nil, nil, nil, nil
	}
	return &a.dtypes[0], &a.numels[0], &a.params[0], &a.grads[0]
}

// pinTensors checks the lengths and pins every buffer (so that the pointer arrays, Go memory,
// may hold them while C reads them).
func pinTensors[T Float](params, grads [][]T, pin *runtime.Pinner) (*tensorArgs, error) {
	n := len(params)
	if len(grads) != n {
		return nil, bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): %d parameters but %d gradients", n, len(grads)))
	}
	a := &tensorArgs{make([]C.descent_dtype, n), make([]C.int64_t, n), make([]unsafe.Pointer, n), make([]unsafe.Pointer, n)}
	dt := dtypeOf[T]()
	for i := range params {
		if len(grads[i]) != len(params[i]) {
			return nil, bindingError(StatusShapeMismatch, fmt.Sprintf(
				"descent (Go): tensor %d: %d parameter elements but %d gradient elements", i, len(params[i]), len(grads[i])))
		}
		a.dtypes[i] = C.descent_dtype(dt)
		a.numels[i] = C.int64_t(len(params[i]))
		if len(params[i]) > 0 {
			pin.Pin(&params[i][0])
			pin.Pin(&grads[i][0])
			a.params[i] = unsafe.Pointer(&params[i][0])
			a.grads[i] = unsafe.Pointer(&grads[i][0])
		}
	}
	return a, nil
}

// Update runs one step on the named parameters (params[i] is updated in place from grads[i]);
// parameters not named are left alone. Each slice's length must be its parameter's element
// count and T its dtype (checked by the library). For mixed dtypes use UpdateFlat.
func Update[T Float](o *Optimizer, names []string, params, grads [][]T) error {
	if len(names) != len(params) {
		return bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): %d names but %d parameters", len(names), len(params)))
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	a, err := pinTensors(params, grads, &pin)
	if err != nil {
		return err
	}
	cnames := make([]*C.char, len(names)) // Go memory holding C pointers: legal
	defer func() {
		for _, c := range cnames {
			freeC(c)
		}
	}()
	for i, s := range names {
		if cnames[i], err = cString(s); err != nil {
			return err
		}
	}
	var np **C.char
	if len(cnames) > 0 {
		np = &cnames[0]
	}
	d, nu, pp, gp := a.ptrs()
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_optimizer_update(p, C.size_t(len(names)), np, d, nu, pp, gp)
	})
}

// UpdateIndexed is Update with parameter indices (AddParameter's results) instead of names.
func UpdateIndexed[T Float](o *Optimizer, indices []int, params, grads [][]T) error {
	if len(indices) != len(params) {
		return bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): %d indices but %d parameters", len(indices), len(params)))
	}
	idx := make([]C.size_t, len(indices))
	for i, v := range indices {
		if v < 0 {
			return bindingError(StatusInvalidArgument, fmt.Sprintf("descent (Go): negative parameter index %d", v))
		}
		idx[i] = C.size_t(v)
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	a, err := pinTensors(params, grads, &pin)
	if err != nil {
		return err
	}
	var ip *C.size_t
	if len(idx) > 0 {
		ip = &idx[0]
	}
	d, nu, pp, gp := a.ptrs()
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_optimizer_update_indexed(p, C.size_t(len(idx)), ip, d, nu, pp, gp)
	})
}

// ClipGradNorm is MLX's clip_grad_norm over grads, in place: every gradient is scaled by
// min(maxNorm/(total+1e-6), 1) where total (returned) is the norm of all elements before
// clipping. maxNorm < 0 is StatusOutOfRange and changes nothing.
func ClipGradNorm[T Float](grads [][]T, maxNorm float64) (float64, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	a, err := pinTensors(grads, grads, &pin)
	if err != nil {
		return 0, err
	}
	return clip(len(grads), a.dtypes, a.numels, a.grads, maxNorm)
}

func clip(n int, dtypes []C.descent_dtype, numels []C.int64_t, ptrs []unsafe.Pointer, maxNorm float64) (float64, error) {
	var dp *C.descent_dtype
	var np *C.int64_t
	var pp *unsafe.Pointer
	if n > 0 {
		dp, np, pp = &dtypes[0], &numels[0], &ptrs[0]
	}
	var total C.double
	var buf [ErrorCapacity]C.char
	if st := C.descent_clip_grad_norm(C.size_t(n), dp, np, pp, C.double(maxNorm), &total, &buf[0], C.size_t(len(buf))); st != 0 {
		return 0, errorFromBuffer(st, buf[:])
	}
	return float64(total), nil
}

// ---- State ----

// StateKeys lists the state slots ("step", "learning_rate", "<param>.<slot>", and
// "states.<i>.<key>" for a multi optimizer).
func (o *Optimizer) StateKeys() ([]string, error) {
	var keys []string
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		var n C.size_t
		if st := C.descent_optimizer_state_count(p, &n); st != 0 {
			return st
		}
		keys = make([]string, 0, int(n))
		for i := C.size_t(0); i < n; i++ {
			var k *C.char
			if st := C.descent_optimizer_state_key(p, i, &k); st != 0 {
				return st
			}
			keys = append(keys, C.GoString(k))
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

func stateInfo(p *C.descent_optimizer, k *C.char) (DType, []int64, C.descent_status) {
	var dt C.descent_dtype
	var ndim C.size_t
	var shape [C.DESCENT_MAX_NDIM]C.int64_t
	if st := C.descent_optimizer_state_info(p, k, &dt, &ndim, &shape[0], C.size_t(len(shape))); st != 0 {
		return 0, nil, st
	}
	dims := make([]int64, int(ndim))
	for i := range dims {
		dims[i] = int64(shape[i])
	}
	return DType(dt), dims, 0
}

// StateInfo is the dtype and shape of a state slot.
func (o *Optimizer) StateInfo(key string) (DType, []int64, error) {
	var dt DType
	var dims []int64
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) (st C.descent_status) {
		dt, dims, st = stateInfo(p, k)
		return st
	})
	return dt, dims, err
}

// StateGet copies a state slot out; T must be the slot's dtype (uint64 for "step").
func StateGet[T Element](o *Optimizer, key string) ([]T, error) {
	var out []T
	err := o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		_, dims, st := stateInfo(p, k)
		if st != 0 {
			return st
		}
		n := 1
		for _, d := range dims {
			n *= int(d)
		}
		out = make([]T, n)
		return C.descent_optimizer_state_get(p, k, C.descent_dtype(dtypeOf[T]()), dataPtr(out), C.int64_t(n))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StateSet copies data into a state slot (dtype and element count must match it); setting a
// per-parameter slot initialises the state first.
func StateSet[T Element](o *Optimizer, key string, data []T) error {
	return o.withKey(key, func(p *C.descent_optimizer, k *C.char) C.descent_status {
		return C.descent_optimizer_state_set(p, k, C.descent_dtype(dtypeOf[T]()), dataPtr(data), C.int64_t(len(data)))
	})
}
