package descent

import (
	"math"
	"testing"
)

// One Adam step on half-precision parameters under the default "float32" state precision is the
// float32 step on the widened values, rounded once: the expected bits come from a float32
// optimizer run through the binding, rounded here.
func testHalfAdam[T BF16 | F16](t *testing.T, dtype DType, narrow func(float32) T, widen func(T) float32) {
	p0 := []float32{0.5, -1.25, 3, 0.0078125, -2.5, 1}
	g0 := []float32{0.125, -2, 0, 0.0009765625, 0.75, -0.375}
	cfg := `{"learning_rate": 0.01, "bias_correction": true}`
	o32, oh := newOpt(t, "adam", cfg), newOpt(t, "adam", cfg)
	get(o32.AddParameter("w", Float32, 2, 3)).of(t)
	get(oh.AddParameter("w", dtype, 2, 3)).of(t)
	p32 := append([]float32(nil), p0...)
	ph, gh := make([]T, 6), make([]T, 6)
	for i := range p0 {
		ph[i], gh[i] = narrow(p0[i]), narrow(g0[i])
		if widen(ph[i]) != p0[i] {
			t.Fatal("input not exact", p0[i])
		}
	}
	for s := 0; s < 3; s++ {
		ok(t, Update(o32, []string{"w"}, [][]float32{p32}, [][]float32{g0}))
		ok(t, Update(oh, []string{"w"}, [][]T{ph}, [][]T{gh}))
		moved := false
		for i := range p32 {
			if ph[i] != narrow(p32[i]) {
				t.Fatalf("step %d: element %d: %#x, want %#x", s+1, i, ph[i], narrow(p32[i]))
			}
			moved = moved || widen(ph[i]) != p0[i]
			p32[i] = widen(ph[i]) // the float32 run goes on from the rounding
		}
		if !moved {
			t.Fatal("nothing moved")
		}
		v32 := get(StateGet[float32](o32, "w.v")).of(t)
		vh := get(StateGet[float32](oh, "w.v")).of(t) // float32 state under "float32"
		for i := range v32 {
			if math.Float32bits(v32[i]) != math.Float32bits(vh[i]) {
				t.Fatal("state differs", i, v32[i], vh[i])
			}
		}
	}
}

func TestBF16AdamIsTheRoundedFloat32Step(t *testing.T) {
	testHalfAdam(t, BFloat16, BF16FromFloat32, BF16.Float32)
}

func TestF16AdamIsTheRoundedFloat32Step(t *testing.T) {
	testHalfAdam(t, Float16, F16FromFloat32, F16.Float32)
}

func TestHalfParamPolicyState(t *testing.T) {
	// "param": state in the parameter's dtype. SGD momentum from v = 0: v = g,
	// p = 1 - 0.5*g (exact).
	o := newOpt(t, "sgd", `{"learning_rate": 0.5, "momentum": 0.9, "state_precision": "param"}`)
	get(o.AddParameter("w", BFloat16, 2)).of(t)
	p := []BF16{BF16FromFloat32(1), BF16FromFloat32(1)}
	g := []BF16{BF16FromFloat32(0.25), BF16FromFloat32(-0.25)}
	ok(t, Update(o, []string{"w"}, [][]BF16{p}, [][]BF16{g}))
	if p[0].Float32() != 0.875 || p[1].Float32() != 1.125 {
		t.Fatal(p[0].Float32(), p[1].Float32())
	}
	if dt, _, err := o.StateInfo("w.v"); err != nil || dt != BFloat16 {
		t.Fatal(dt, err)
	}
	v := get(StateGet[BF16](o, "w.v")).of(t)
	if v[0] != g[0] || v[1] != g[1] {
		t.Fatal(v)
	}
	// a float16 gradient for a bfloat16 parameter: refused, nothing changed
	pf := []F16{F16FromFloat32(1), F16FromFloat32(1)}
	wantErr(t, Update(o, []string{"w"}, [][]F16{pf}, [][]F16{pf}), StatusDTypeMismatch, "w")
	if step(t, o) != 1 || pf[0].Float32() != 1 {
		t.Fatal("a refused update changed something")
	}
	if BFloat16.Size() != 2 || Float16.String() != "float16" || BFloat16.String() != "bfloat16" {
		t.Fatal(BFloat16.Size(), Float16, BFloat16)
	}
}

func TestHalfConversions(t *testing.T) {
	cases := []struct {
		got, want uint16
	}{
		{uint16(BF16FromFloat32(1)), 0x3F80},
		{uint16(BF16FromFloat32(math.Float32frombits(0x3F808000))), 0x3F80}, // tie to even
		{uint16(BF16FromFloat32(math.Float32frombits(0x3F818000))), 0x3F82},
		{uint16(BF16FromFloat32(0.999)), 0x3F80}, // MLX's beta2 0.999 becomes 1 in bf16
		{uint16(F16FromFloat32(1e-8)), 0},        // MLX's eps 1e-8 becomes 0 in f16
		{uint16(F16FromFloat32(65520)), 0x7C00},
		{uint16(F16FromFloat32(5.9604645e-8)), 1},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Fatalf("case %d: %#x, want %#x", i, c.got, c.want)
		}
	}
	for b := 0; b <= 0xFFFF; b++ {
		if f := F16(b); !math.IsNaN(float64(f.Float32())) && F16FromFloat32(f.Float32()) != f {
			t.Fatalf("f16 %#x does not round-trip", b)
		}
		if h := BF16(b); !math.IsNaN(float64(h.Float32())) && BF16FromFloat32(h.Float32()) != h {
			t.Fatalf("bf16 %#x does not round-trip", b)
		}
	}
}
