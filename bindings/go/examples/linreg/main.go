// Command linreg fits y = 3x - 2 (plus a little deterministic noise) with AdamW through the Go
// binding: parameters and gradients live in two Flat buffers, the learning rate comes from a Go
// schedule function, and the state is saved and resumed halfway.
package main

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	descent "github.com/descent-ml/descent/bindings/go"
)

func newOptimizer() (*descent.Optimizer, error) {
	opt, err := descent.New("adamw")
	if err != nil {
		return nil, err
	}
	if err = opt.ConfigureJSON(`{"learning_rate": 0.1, "weight_decay": 0.0}`); err == nil {
		if _, err = opt.AddParameter("w", descent.Float32); err == nil {
			if _, err = opt.AddParameter("b", descent.Float32); err == nil {
				// warm up for 20 steps, then decay as 1/sqrt(step)
				err = opt.SetScheduleFunc(func(step uint64) (float64, error) {
					s := float64(step + 1)
					return 0.1 * math.Min(s/20, math.Sqrt(20/s)), nil
				})
			}
		}
	}
	if err != nil {
		opt.Close()
		return nil, err
	}
	return opt, nil
}

func main() {
	xs := make([]float32, 64)
	ys := make([]float32, 64)
	for i := range xs {
		xs[i] = float32(i)/32 - 1
		ys[i] = 3*xs[i] - 2 + 0.01*float32(i%5-2)
	}
	opt, err := newOptimizer()
	if err != nil {
		log.Fatal(err)
	}
	params, _ := opt.NewFlat()
	grads, _ := opt.NewFlat()
	w, b := params.Float32s(0), params.Float32s(1)
	gw, gb := grads.Float32s(0), grads.Float32s(1)
	state := filepath.Join(os.TempDir(), fmt.Sprintf("linreg-%d.safetensors", os.Getpid()))
	defer os.Remove(state)

	for step := 1; step <= 400; step++ {
		var loss float32
		gw[0], gb[0] = 0, 0
		for i, x := range xs {
			r := w[0]*x + b[0] - ys[i]
			loss += r * r / float32(len(xs))
			gw[0] += 2 * r * x / float32(len(xs))
			gb[0] += 2 * r / float32(len(xs))
		}
		if err := opt.UpdateFlat(params, grads); err != nil {
			log.Fatal(err)
		}
		if step%100 == 0 {
			fmt.Printf("step %3d  loss %.6f  w %.4f  b %.4f\n", step, loss, w[0], b[0])
		}
		if step == 200 { // save, then resume in a fresh optimizer
			if err := opt.Save(state); err != nil {
				log.Fatal(err)
			}
			opt.Close()
			if opt, err = newOptimizer(); err != nil {
				log.Fatal(err)
			}
			if err := opt.Load(state); err != nil {
				log.Fatal(err)
			}
		}
	}
	defer opt.Close()
	if math.Abs(float64(w[0])-3) > 0.01 || math.Abs(float64(b[0])+2) > 0.01 {
		log.Fatalf("did not converge: w %v b %v", w[0], b[0])
	}
	// errors carry the library's status and message
	if err := opt.SetFloat("betas", 0.9); descent.IsStatus(err, descent.StatusWrongType) {
		fmt.Println("as expected:", err)
	}
}
