package descent

/*
#include <descent/descent.h>
#include "shim.h"
*/
import "C"

import "fmt"

// ---- Threads (C ABI 1.1) ----

// SetNumThreads sets the process-wide number of threads the elementwise optimizers split a step
// over; 0 restores the default (DESCENT_NUM_THREADS, else the CPUs this process may run on).
// Every count gives the same bits. A negative n is StatusInvalidArgument (checked here); a count
// above the library's maximum is StatusOutOfRange. A refused count changes nothing.
func SetNumThreads(n int) error {
	if n < 0 {
		return bindingError(StatusInvalidArgument, fmt.Sprintf("num_threads: must be >= 0 (got %d)", n))
	}
	var buf [ErrorCapacity]C.char
	if st := C.descent_set_num_threads(C.size_t(n), &buf[0], C.size_t(len(buf))); st != 0 {
		return errorFromBuffer(st, buf[:])
	}
	return nil
}

// NumThreads returns the process-wide thread count in effect (at least 1).
func NumThreads() int {
	var out C.size_t
	if st := C.descent_get_num_threads(&out, nil, 0); st != 0 {
		panic("descent_get_num_threads failed with a valid pointer: " + Status(st).String())
	}
	return int(out)
}

// SetNumThreads sets this optimizer's thread count; 0 (the default) follows the process-wide
// count. Not a hyperparameter: not saved in checkpoints. On a multi optimizer it sets every
// group; on a group only that group. Negative: StatusInvalidArgument; above the library's
// maximum: StatusOutOfRange. A refused count changes nothing.
func (o *Optimizer) SetNumThreads(n int) error {
	if n < 0 {
		return bindingError(StatusInvalidArgument, fmt.Sprintf("num_threads: must be >= 0 (got %d)", n))
	}
	return o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_optimizer_set_num_threads(p, C.size_t(n))
	})
}

// NumThreads returns this optimizer's thread setting (0: follows the process-wide count).
func (o *Optimizer) NumThreads() (int, error) {
	var out C.size_t
	err := o.call(func(p *C.descent_optimizer) C.descent_status {
		return C.descent_optimizer_get_num_threads(p, &out)
	})
	return int(out), err
}
