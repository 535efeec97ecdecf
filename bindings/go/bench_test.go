package descent

import (
	"fmt"
	"testing"
)

// 1000 float32 tensors of 10 elements, adamw, state initialised: the per-tensor overhead of each
// update form (compare with the C numbers in docs/api.md: 74 us by name, 37 by index, 17 flat).
func benchOptimizer(b *testing.B) (*Optimizer, []string, []int, [][]float32, [][]float32) {
	o, err := New("adamw")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Close() })
	if err := o.SetFloat("learning_rate", 1e-3); err != nil {
		b.Fatal(err)
	}
	names := make([]string, 1000)
	idx := make([]int, 1000)
	params, grads := make([][]float32, 1000), make([][]float32, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("layers.%d.weight", i)
		if idx[i], err = o.AddParameter(names[i], Float32, 10); err != nil {
			b.Fatal(err)
		}
		params[i], grads[i] = make([]float32, 10), make([]float32, 10)
		for j := range grads[i] {
			grads[i][j] = 0.01 * float32(j)
		}
	}
	if err := o.Init(); err != nil {
		b.Fatal(err)
	}
	return o, names, idx, params, grads
}

func BenchmarkUpdateFlat1000x10(b *testing.B) {
	o, _, _, _, _ := benchOptimizer(b)
	p, _ := o.NewFlat()
	g, _ := o.NewFlat()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.UpdateFlat(p, g); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateIndexed1000x10(b *testing.B) {
	o, _, idx, params, grads := benchOptimizer(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := UpdateIndexed(o, idx, params, grads); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateByName1000x10(b *testing.B) {
	o, names, _, params, grads := benchOptimizer(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Update(o, names, params, grads); err != nil {
			b.Fatal(err)
		}
	}
}
