package descent

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

type result[T any] struct {
	v   T
	err error
}

// get(f()).of(t) is f's value, failing the test when f returned an error.
func get[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) of(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks err is an *Error with status s whose message contains every fragment.
func wantErr(t *testing.T, err error, s Status, fragments ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error %v, got %v (%T)", s, err, err)
	}
	if e.Status != s || !IsStatus(err, s) || StatusOf(err) != s {
		t.Fatalf("want status %v, got %v (%q)", s, e.Status, e.Message)
	}
	if e.Message == "" || e.Error() != s.String()+": "+e.Message {
		t.Fatalf("Error() %q is not %s: %q", e.Error(), s, e.Message)
	}
	for _, f := range fragments {
		if !strings.Contains(e.Error(), f) {
			t.Fatalf("message %q lacks %q", e.Error(), f)
		}
	}
	return e
}

func newOpt(t *testing.T, kind, config string) *Optimizer {
	t.Helper()
	o := get(New(kind)).of(t)
	t.Cleanup(func() { o.Close() })
	if config != "" {
		ok(t, o.ConfigureJSON(config))
	}
	return o
}

func step(t *testing.T, o *Optimizer) uint64 {
	t.Helper()
	s := get(StateGet[uint64](o, "step")).of(t)
	if len(s) != 1 {
		t.Fatalf("step has %d elements", len(s))
	}
	return s[0]
}

func TestVersionAndKinds(t *testing.T) {
	if Version() != "1.2.1" || VersionNumber() != 10201 {
		t.Fatalf("version %s %d", Version(), VersionNumber())
	}
	kinds := Kinds()
	if len(kinds) != 11 || kinds[0] != "sgd" || kinds[10] != "multi" {
		t.Fatalf("kinds %v", kinds)
	}
	for _, k := range kinds {
		o := get(New(k)).of(t)
		if got := get(o.Kind()).of(t); got != k {
			t.Fatalf("kind %q reports %q", k, got)
		}
		ok(t, o.Close())
	}
	if StatusUnknownKey.String() != "DESCENT_ERR_UNKNOWN_KEY" || Float64.String() != "float64" {
		t.Fatal(StatusUnknownKey.String(), Float64.String())
	}
}

// Parameter reports the declarations as the library holds them.
func TestParameterInfo(t *testing.T) {
	o := newOpt(t, "sgd", `{"learning_rate": 0.5}`)
	if i := get(o.AddParameter("layers.0.weight", Float32, 8, 6)).of(t); i != 0 {
		t.Fatalf("index %d", i)
	}
	if i := get(o.AddParameter("scale", Float64)).of(t); i != 1 {
		t.Fatalf("index %d", i)
	}
	w := get(o.Parameter(0)).of(t)
	if w.Name != "layers.0.weight" || w.DType != Float32 || len(w.Shape) != 2 || w.Shape[0] != 8 || w.Shape[1] != 6 || w.Numel() != 48 {
		t.Fatalf("parameter 0: %+v", w)
	}
	s := get(o.Parameter(1)).of(t)
	if s.Name != "scale" || s.DType != Float64 || len(s.Shape) != 0 || s.Numel() != 1 {
		t.Fatalf("parameter 1: %+v", s)
	}
	// a refused declaration leaves no trace; past the end and negative are errors
	_, err := o.AddParameter("scale", Float32, 2)
	wantErr(t, err, StatusDuplicate)
	_, err = o.Parameter(2)
	wantErr(t, err, StatusInvalidArgument)
	_, err = o.Parameter(-1)
	wantErr(t, err, StatusInvalidArgument)
	if n := get(o.ParameterCount()).of(t); n != 2 {
		t.Fatalf("count %d", n)
	}
	// a Flat describes the same declarations
	f := get(o.NewFlat()).of(t)
	if f.Len() != 2 || f.Name(0) != w.Name || f.DType(1) != Float64 || len(f.Shape(0)) != 2 || len(f.Float32s(0)) != 48 {
		t.Fatal("flat layout description")
	}
	// a multi optimizer's declarations too
	m := get(NewMuonAdamW(`{"learning_rate": 0.02}`, `{"learning_rate": 0.01}`)).of(t)
	t.Cleanup(func() { m.Close() })
	get(m.AddParameter("layer.weight", Float32, 4, 3)).of(t)
	get(m.AddParameter("layer.bias", Float32, 3)).of(t)
	if b := get(m.Parameter(1)).of(t); b.Name != "layer.bias" || len(b.Shape) != 1 || b.Shape[0] != 3 {
		t.Fatalf("multi parameter 1: %+v", b)
	}
}

// SGD without momentum: p - lr*g, exact for these values; in all three update forms.
func TestSGDClosedFormAllForms(t *testing.T) {
	p0, g := []float32{1, 2, 3}, []float32{0.5, -1, 2}
	want := []float32{0.75, 2.5, 2}
	for _, form := range []string{"flat", "name", "index"} {
		o := newOpt(t, "sgd", `{"learning_rate": 0.5}`)
		get(o.AddParameter("w", Float32, 3)).of(t)
		p := append([]float32(nil), p0...)
		switch form {
		case "flat":
			fp, fg := get(o.NewFlat()).of(t), get(o.NewFlat()).of(t)
			copy(fp.Float32s(0), p0)
			copy(fg.Float32s(0), g)
			ok(t, o.UpdateFlat(fp, fg))
			p = fp.Float32s(0)
		case "name":
			ok(t, Update(o, []string{"w"}, [][]float32{p}, [][]float32{g}))
		case "index":
			ok(t, UpdateIndexed(o, []int{0}, [][]float32{p}, [][]float32{g}))
		}
		for i := range want {
			if p[i] != want[i] {
				t.Fatalf("%s: p = %v, want %v", form, p, want)
			}
		}
		if step(t, o) != 1 {
			t.Fatalf("%s: step %d", form, step(t, o))
		}
	}
}

// SGD with momentum 0.5 (MLX: v = mu*v + g; p -= lr*v), two steps, float64: exact.
func TestSGDMomentumClosedForm(t *testing.T) {
	o := newOpt(t, "sgd", `{"learning_rate": 0.5, "momentum": 0.5}`)
	get(o.AddParameter("w", Float64, 2)).of(t)
	p, g := []float64{1, -1}, []float64{0.25, 1}
	for k := 0; k < 2; k++ {
		ok(t, Update(o, []string{"w"}, [][]float64{p}, [][]float64{g}))
	}
	// p1 = p0 - 0.5*g; v2 = 1.5*g; p2 = p1 - 0.75*g = p0 - 1.25*g
	want := []float64{1 - 1.25*0.25, -1 - 1.25}
	if p[0] != want[0] || p[1] != want[1] {
		t.Fatalf("p = %v, want %v", p, want)
	}
	v := get(StateGet[float64](o, "w.v")).of(t)
	if v[0] != 1.5*0.25 || v[1] != 1.5 {
		t.Fatalf("w.v = %v", v)
	}
}

// Adam's first step (MLX, no bias correction): m = 0.1 g, v = 0.001 g^2,
// p -= lr * m / (sqrt(v) + eps).
func TestAdamFirstStepClosedForm(t *testing.T) {
	o := newOpt(t, "adam", `{"learning_rate": 0.125}`)
	get(o.AddParameter("w", Float64, 3)).of(t)
	p, g := []float64{1, 2, 3}, []float64{0.5, -2, 4}
	ok(t, Update(o, []string{"w"}, [][]float64{p}, [][]float64{g}))
	for i := range p {
		m, v := 0.1*g[i], 0.001*g[i]*g[i]
		want := float64(i+1) - 0.125*m/(math.Sqrt(v)+1e-8)
		if math.Abs(p[i]-want) > 1e-12 {
			t.Fatalf("p[%d] = %.17g, want %.17g", i, p[i], want)
		}
	}
}

func TestHyperparameters(t *testing.T) {
	o := newOpt(t, "adamw", "")
	ok(t, o.SetFloat("learning_rate", 0.25))
	ok(t, o.SetFloats("betas", []float64{0.5, 0.75}))
	ok(t, o.SetInt("weight_decay", 0))
	if lr := get(o.GetFloat("learning_rate")).of(t); lr != 0.25 {
		t.Fatal(lr)
	}
	if b := get(o.GetFloats("betas")).of(t); len(b) != 2 || b[0] != 0.5 || b[1] != 0.75 {
		t.Fatal(b)
	}
	names := get(o.Hyperparameters()).of(t)
	if names[0] != "learning_rate" || len(names) < 4 {
		t.Fatal(names)
	}
	if ty := get(o.HyperparameterType("betas")).of(t); ty != ValueDoubleArray {
		t.Fatal(ty)
	}

	m := newOpt(t, "muon", "")
	ok(t, m.SetString("coefficients", "polar_express"))
	if s := get(m.GetString("coefficients")).of(t); s != "polar_express" {
		t.Fatal(s)
	}
	ok(t, m.SetBool("nesterov", false))
	if b := get(m.GetBool("nesterov")).of(t); b {
		t.Fatal(b)
	}
	if n := get(m.GetInt("ns_steps")).of(t); n != 5 {
		t.Fatal(n)
	}
	wantErr(t, m.SetString("coefficients", "nope"), StatusOutOfRange, "coefficients")
	if s := get(m.GetString("coefficients")).of(t); s != "polar_express" {
		t.Fatal("a failed SetString changed the value:", s)
	}

	a := newOpt(t, "adafactor", "")
	ok(t, a.SetFloat("beta_1", 0.5))
	ok(t, a.Unset("beta_1"))
	if ty := get(a.HyperparameterType("beta_1")).of(t); ty != ValueNone {
		t.Fatal(ty)
	}
}

// Bad input: an *Error with status and message, and nothing changed.
func TestErrorsChangeNothing(t *testing.T) {
	_, err := New("adamz")
	wantErr(t, err, StatusUnknownKind, "adamz")
	_, err = NewMuonAdamW(`{"learning_rate": `, "")
	wantErr(t, err, StatusParse)

	o := newOpt(t, "adamw", `{"learning_rate": 0.01}`)
	wantErr(t, o.SetFloat("no_such_key", 1), StatusUnknownKey, "no_such_key")
	wantErr(t, o.SetFloat("learning_rate", math.NaN()), StatusOutOfRange, "learning_rate")
	wantErr(t, o.SetBool("learning_rate", true), StatusWrongType)
	wantErr(t, o.ConfigureJSON(`{"learning_rate": 0.5, "nope": 1}`), StatusUnknownKey, "nope")
	if lr := get(o.GetFloat("learning_rate")).of(t); float32(lr) != float32(0.01) {
		t.Fatal("a failed call changed learning_rate:", lr)
	}
	wantErr(t, o.SetFloat("learning\x00rate", 1), StatusInvalidArgument, "NUL")
	_, err = o.AddParameter("w", Uint64, 2)
	wantErr(t, err, StatusInvalidArgument, "dtype")
	get(o.AddParameter("w", Float32, 2, 2)).of(t)
	_, err = o.AddParameter("w", Float32, 2)
	wantErr(t, err, StatusDuplicate, "w")
	if n := get(o.ParameterCount()).of(t); n != 1 {
		t.Fatal(n)
	}
	_, err = o.ParameterIndex("nope")
	wantErr(t, err, StatusUnknownKey, "nope")

	p, g := []float32{1, 2, 3, 4}, []float32{1, 1, 1, 1}
	before := append([]float32(nil), p...)
	// wrong element count (checked by the library through numels), wrong dtype, length mismatch,
	// unknown name, bad index
	wantErr(t, Update(o, []string{"w"}, [][]float32{p[:3]}, [][]float32{g[:3]}), StatusShapeMismatch, "w")
	wantErr(t, Update(o, []string{"w"}, [][]float64{{1, 2, 3, 4}}, [][]float64{{1, 1, 1, 1}}), StatusDTypeMismatch, "float64")
	wantErr(t, Update(o, []string{"w"}, [][]float32{p}, [][]float32{g[:2]}), StatusShapeMismatch)
	wantErr(t, Update(o, []string{"v"}, [][]float32{p}, [][]float32{g}), StatusUnknownKey, "v")
	wantErr(t, UpdateIndexed(o, []int{7}, [][]float32{p}, [][]float32{g}), StatusUnknownKey, "7")
	wantErr(t, UpdateIndexed(o, []int{-1}, [][]float32{p}, [][]float32{g}), StatusInvalidArgument)
	wantErr(t, Update(o, []string{"w"}, [][]float32{p}, [][]float32{p}), StatusInvalidArgument)
	fp := get(o.NewFlat()).of(t)
	wantErr(t, o.UpdateFlat(fp, fp), StatusInvalidArgument)
	if !equal32(p, before) {
		t.Fatal("a failed update changed the parameters:", p)
	}
	if s := step(t, o); s != 0 {
		t.Fatal("a failed update advanced the step to", s)
	}

	_, err = StateGet[float32](o, "step")
	wantErr(t, err, StatusDTypeMismatch, "step")
	_, err = StateGet[float32](o, "nope")
	wantErr(t, err, StatusUnknownKey)
	wantErr(t, StateSet(o, "step", []uint64{1, 2}), StatusShapeMismatch)

	wantErr(t, o.LoadBytes([]byte("not a state file at all")), StatusCorrupt)
	wantErr(t, o.Load(filepath.Join(t.TempDir(), "missing")), StatusIO)
	wantErr(t, o.SetSchedule("cosine:oops"), StatusParse)
	if s := step(t, o); s != 0 {
		t.Fatal("a failed load changed the step:", s)
	}

	_, err = ScheduleValue("wibble:1", 0.1, 0)
	wantErr(t, err, StatusParse)
	_, err = o.AddGroup("sgd", "")
	wantErr(t, err, StatusInvalidArgument)
}

func TestClose(t *testing.T) {
	o := get(New("sgd")).of(t)
	ok(t, o.Close())
	ok(t, o.Close())
	wantErr(t, o.SetFloat("learning_rate", 1), StatusInvalidState, "closed")
	_, err := o.NewFlat()
	wantErr(t, err, StatusInvalidState, "closed")
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// The flat, by-name and by-index forms give the same bits (parameters and state).
func TestFlatEqualsPerTensor(t *testing.T) {
	for _, kind := range []string{"adamw", "muon", "adafactor"} {
		cfg := `{"learning_rate": 0.01}`
		var opts [3]*Optimizer
		for i := range opts {
			opts[i] = newOpt(t, kind, cfg)
			get(opts[i].AddParameter("a.weight", Float32, 4, 3)).of(t)
			get(opts[i].AddParameter("a.bias", Float32, 3)).of(t)
		}
		fp, fg := get(opts[0].NewFlat()).of(t), get(opts[0].NewFlat()).of(t)
		if fp.Offset(1)%FlatAlignment != 0 || fp.Size()%FlatAlignment != 0 || fp.Len() != 2 || fp.Name(1) != "a.bias" {
			t.Fatalf("layout: offset %d size %d", fp.Offset(1), fp.Size())
		}
		w1, b1 := make([]float32, 12), make([]float32, 3)
		for i := range w1 {
			w1[i] = float32(i)*0.25 - 1
		}
		for i := range b1 {
			b1[i] = float32(i) * 0.5
		}
		copy(fp.Float32s(0), w1)
		copy(fp.Float32s(1), b1)
		w2, b2 := append([]float32(nil), w1...), append([]float32(nil), b1...)
		w3, b3 := append([]float32(nil), w1...), append([]float32(nil), b1...)
		gw, gb := make([]float32, 12), make([]float32, 3)
		for k := 0; k < 10; k++ {
			grad := func(w, b []float32) {
				for i := range w {
					gw[i] = w[i]*w[i] - 0.5
				}
				for i := range b {
					gb[i] = b[i] + 1
				}
			}
			grad(fp.Float32s(0), fp.Float32s(1))
			copy(fg.Float32s(0), gw)
			copy(fg.Float32s(1), gb)
			ok(t, opts[0].UpdateFlat(fp, fg))
			grad(w2, b2)
			ok(t, Update(opts[1], []string{"a.weight", "a.bias"}, [][]float32{w2, b2}, [][]float32{gw, gb}))
			grad(w3, b3)
			ok(t, UpdateIndexed(opts[2], []int{1, 0}, [][]float32{b3, w3}, [][]float32{gb, gw}))
		}
		if !equal32(fp.Float32s(0), w2) || !equal32(fp.Float32s(1), b2) || !equal32(w2, w3) || !equal32(b2, b3) {
			t.Fatalf("%s: forms differ:\nflat %v\nname %v\nidx  %v", kind, fp.Float32s(0), w2, w3)
		}
		if equal32(w1, w2) {
			t.Fatalf("%s: nothing moved", kind)
		}
		s0, s1 := get(opts[0].SaveBytes()).of(t), get(opts[1].SaveBytes()).of(t)
		if !bytes.Equal(s0, s1) {
			t.Fatalf("%s: states differ", kind)
		}
	}
}

// float32 and float64 parameters share one flat layout.
func TestFlatMixedDTypes(t *testing.T) {
	o := newOpt(t, "sgd", `{"learning_rate": 0.5}`)
	get(o.AddParameter("a", Float32, 3)).of(t)
	get(o.AddParameter("b", Float64, 2, 1)).of(t)
	get(o.AddParameter("s", Float64)).of(t)
	fp, fg := get(o.NewFlat()).of(t), get(o.NewFlat()).of(t)
	if fp.DType(1) != Float64 || len(fp.Shape(1)) != 2 || len(fp.Float64s(2)) != 1 {
		t.Fatal("layout description")
	}
	copy(fp.Float32s(0), []float32{1, 2, 3})
	copy(fp.Float64s(1), []float64{4, 5})
	fp.Float64s(2)[0] = 6
	copy(fg.Float32s(0), []float32{2, 2, 2})
	copy(fg.Float64s(1), []float64{1, -1})
	fg.Float64s(2)[0] = 4
	ok(t, o.UpdateFlat(fp, fg))
	if a, b, s := fp.Float32s(0), fp.Float64s(1), fp.Float64s(2); a[0] != 0 || a[2] != 2 || b[0] != 3.5 || b[1] != 5.5 || s[0] != 4 {
		t.Fatal(a, b, s)
	}
	if c := cap(fp.Float32s(0)); c != 3 {
		t.Fatal("view capacity", c)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Float64s on a float32 parameter did not panic")
			}
		}()
		fp.Float64s(0)
	}()
	// a Flat of an older layout no longer fits
	o2 := newOpt(t, "sgd", `{"learning_rate": 0.5}`)
	get(o2.AddParameter("a", Float32, 3)).of(t)
	old := get(o2.NewFlat()).of(t)
	get(o2.AddParameter("b", Float32, 40)).of(t)
	before := append([]float32(nil), old.Float32s(0)...)
	wantErr(t, o2.UpdateFlat(old, get(o2.NewFlat()).of(t)), StatusShapeMismatch)
	wantErr(t, o2.UpdateFlat(old, old), StatusShapeMismatch)
	if !equal32(before, old.Float32s(0)) {
		t.Fatal("changed")
	}
}

func TestStateAndSaveLoad(t *testing.T) {
	mk := func() *Optimizer {
		o := newOpt(t, "adamw", `{"learning_rate": 0.01, "weight_decay": 0.1}`)
		get(o.AddParameter("w", Float32, 2, 2)).of(t)
		return o
	}
	a := mk()
	p, g := []float32{1, 2, 3, 4}, []float32{0.5, -0.5, 1, -1}
	for k := 0; k < 3; k++ {
		ok(t, Update(a, []string{"w"}, [][]float32{p}, [][]float32{g}))
	}
	keys := get(a.StateKeys()).of(t)
	if strings.Join(keys, ",") != "step,learning_rate,w.m,w.v" {
		t.Fatal(keys)
	}
	dt, shape, err := a.StateInfo("w.m")
	if err != nil || dt != Float32 || len(shape) != 2 || shape[0] != 2 {
		t.Fatal(dt, shape, err)
	}
	path := filepath.Join(t.TempDir(), "s.safetensors")
	ok(t, a.Save(path))
	buf := get(a.SaveBytes()).of(t)
	file := get(os.ReadFile(path)).of(t)
	if !bytes.Equal(buf, file) {
		t.Fatal("Save and SaveBytes differ")
	}
	b, c := mk(), mk()
	ok(t, b.Load(path))
	ok(t, c.LoadBytes(buf))
	pb, pc := append([]float32(nil), p...), append([]float32(nil), p...)
	ok(t, Update(a, []string{"w"}, [][]float32{p}, [][]float32{g}))
	ok(t, Update(b, []string{"w"}, [][]float32{pb}, [][]float32{g}))
	ok(t, Update(c, []string{"w"}, [][]float32{pc}, [][]float32{g}))
	if !equal32(p, pb) || !equal32(p, pc) || step(t, b) != 4 {
		t.Fatal(p, pb, pc)
	}
	// StateSet then StateGet round trip
	m := []float32{9, 8, 7, 6}
	ok(t, StateSet(b, "w.m", m))
	if got := get(StateGet[float32](b, "w.m")).of(t); !equal32(got, m) {
		t.Fatal(got)
	}
	// a load into a mismatching declaration fails and changes nothing
	d := newOpt(t, "adamw", `{"learning_rate": 0.01}`)
	get(d.AddParameter("w", Float32, 3)).of(t)
	wantErr(t, d.Load(path), StatusShapeMismatch, "w")
	if s := step(t, d); s != 0 {
		t.Fatal(s)
	}
}

func TestSchedules(t *testing.T) {
	v := get(ScheduleValue("exponential_decay:0.5:0.5", 0, 2)).of(t)
	if v != 0.125 {
		t.Fatal(v)
	}
	o := newOpt(t, "sgd", `{"learning_rate": 1}`)
	get(o.AddParameter("w", Float64, 1)).of(t)
	ok(t, o.SetSchedule("exponential_decay:0.5:0.5"))
	p, g := []float64{0}, []float64{1}
	for k := 0; k < 3; k++ {
		ok(t, Update(o, []string{"w"}, [][]float64{p}, [][]float64{g}))
	}
	if p[0] != -(0.5 + 0.25 + 0.125) {
		t.Fatal(p)
	}
	// the JSON form, through ScheduleValue and on the optimizer (3 steps: init*rate^3)
	js := `{"schedule": "exponential_decay", "init": 0.5, "decay_rate": 0.5}`
	if v := get(ScheduleValue(js, 0, 3)).of(t); v != 0.0625 {
		t.Fatal(v)
	}
	ok(t, o.SetSchedule(js))
	if lr := get(o.GetFloat("learning_rate")); lr.err != nil || lr.v != 0.0625 {
		t.Fatal("JSON schedule not attached at step 3:", lr)
	}
	ok(t, o.ClearSchedule())
	// a Go schedule: update k uses f(k-1)
	var seen []uint64
	ok(t, o.SetScheduleFunc(func(s uint64) (float64, error) {
		seen = append(seen, s)
		return 1 / float64(int(1)<<s), nil
	}))
	p[0] = 0
	ok(t, Update(o, []string{"w"}, [][]float64{p}, [][]float64{g}))
	ok(t, Update(o, []string{"w"}, [][]float64{p}, [][]float64{g}))
	if fmt.Sprint(seen) != "[3 3 4]" || p[0] != -(1.0/8+1.0/16) {
		t.Fatal(seen, p)
	}
}

var errBoom = errors.New("boom: the host schedule failed")

// A Go schedule's error or panic fails the call with its message, keeps the original (Unwrap),
// and changes nothing.
func TestScheduleCallbackFailures(t *testing.T) {
	base := liveCallbacks.Load()
	o := newOpt(t, "sgd", `{"learning_rate": 1}`)
	get(o.AddParameter("w", Float32, 2)).of(t)
	mode := ""
	ok(t, o.SetScheduleFunc(func(s uint64) (float64, error) {
		switch mode {
		case "error":
			return 0, fmt.Errorf("at step %d: %w", s, errBoom)
		case "status":
			return 0, bindingError(StatusOutOfRange, "custom range failure")
		case "panic":
			panic("kaboom")
		case "nan":
			return math.NaN(), nil
		}
		return 0.5, nil
	}))
	if liveCallbacks.Load() != base+1 {
		t.Fatal("callback handle not held")
	}
	p, g := []float32{1, 2}, []float32{1, 1}
	ok(t, Update(o, []string{"w"}, [][]float32{p}, [][]float32{g}))

	mode = "error"
	err := Update(o, []string{"w"}, [][]float32{p}, [][]float32{g})
	wantErr(t, err, StatusCallback, "boom: the host schedule failed", "at step 1")
	if !errors.Is(err, errBoom) {
		t.Fatal("the callback's error is not in the chain")
	}
	mode = "status"
	err = Update(o, []string{"w"}, [][]float32{p}, [][]float32{g})
	wantErr(t, err, StatusOutOfRange, "custom range failure")
	mode = "panic"
	err = Update(o, []string{"w"}, [][]float32{p}, [][]float32{g})
	wantErr(t, err, StatusCallback, "panic: kaboom")
	var cp *CallbackPanic
	if !errors.As(err, &cp) || cp.Value != "kaboom" || !bytes.Contains(cp.Stack, []byte("descent_test")) {
		t.Fatalf("no CallbackPanic: %#v", err)
	}
	mode = "nan"
	err = Update(o, []string{"w"}, [][]float32{p}, [][]float32{g})
	wantErr(t, err, StatusOutOfRange, "learning_rate")
	if errors.Unwrap(err) != nil {
		t.Fatal("a stale cause is attached:", errors.Unwrap(err))
	}
	if p[0] != 0.5 || p[1] != 1.5 || step(t, o) != 1 {
		t.Fatal("a failed update changed something:", p, step(t, o))
	}
	mode = ""
	ok(t, Update(o, []string{"w"}, [][]float32{p}, [][]float32{g}))
	if p[0] != 0 || step(t, o) != 2 {
		t.Fatal(p)
	}

	// failing on attach: the call fails and the handle is released by the binding
	o2 := newOpt(t, "sgd", `{"learning_rate": 1}`)
	err = o2.SetScheduleFunc(func(uint64) (float64, error) { return 0, errBoom })
	wantErr(t, err, StatusCallback, "boom")
	err = o2.SetScheduleFunc(func(uint64) (float64, error) { panic(errBoom) })
	if !errors.Is(err, errBoom) {
		t.Fatal("panic(err) not unwrappable:", err)
	}
	if liveCallbacks.Load() != base+1 {
		t.Fatal("a failed attach leaked its handle")
	}
	// replacing and closing release the handles
	ok(t, o.SetScheduleFunc(func(uint64) (float64, error) { return 1, nil }))
	if liveCallbacks.Load() != base+1 {
		t.Fatal("replacing did not release the old handle")
	}
	ok(t, o.Close())
	if liveCallbacks.Load() != base {
		t.Fatal("Close did not release the handle")
	}
}

// Calls on the optimizer from inside its own callback are refused, not deadlocked.
func TestReentrantCallRefused(t *testing.T) {
	o := newOpt(t, "sgd", `{"learning_rate": 1}`)
	var inner error
	ok(t, o.SetScheduleFunc(func(uint64) (float64, error) {
		_, inner = o.GetFloat("learning_rate")
		return 1, nil
	}))
	wantErr(t, inner, StatusInvalidState, "callback")
}

func TestMulti(t *testing.T) {
	base := liveCallbacks.Load()
	m := get(New("multi")).of(t)
	g0 := get(m.AddGroup("sgd", `{"learning_rate": 0.5}`)).of(t)
	g1 := get(m.AddGroup("sgd", `{"learning_rate": 0.25}`)).of(t)
	g2 := get(m.AddGroup("adamw", `{"learning_rate": 0.1}`)).of(t)
	if g0 != 0 || g1 != 1 || g2 != 2 || get(m.GroupCount()).of(t) != 3 {
		t.Fatal(g0, g1, g2)
	}
	ok(t, m.FilterName(0, "enc.*"))
	ok(t, m.ExcludeName(0, "*.bias"))
	ok(t, m.FilterNdim(1, 2, -1))
	var calls []string
	ok(t, m.FilterFunc(1, func(name string, shape []int64) (bool, error) {
		calls = append(calls, fmt.Sprintf("%s %v", name, shape))
		if name == "bad" {
			return false, errBoom
		}
		if name == "worse" {
			panic("filter panic")
		}
		return name == "head", nil
	}))
	for _, d := range []struct {
		name  string
		shape []int64
	}{{"enc.weight", []int64{2, 2}}, {"enc.bias", []int64{2}}, {"dec.weight", []int64{2, 2}}, {"head", []int64{3}}, {"other", []int64{1}}} {
		get(m.AddParameter(d.name, Float32, d.shape...)).of(t)
	}
	for name, want := range map[string]int{"enc.weight": 0, "enc.bias": 2, "dec.weight": 1, "head": 1, "other": 2} {
		if got := get(m.ParameterGroup(name)).of(t); got != want {
			t.Fatalf("%s in group %d, want %d", name, got, want)
		}
	}
	if len(calls) == 0 || !strings.Contains(strings.Join(calls, ";"), "head [3]") {
		t.Fatal("filter not called with name and shape:", calls)
	}
	grp := get(m.Group(1)).of(t)
	ok(t, grp.SetFloat("learning_rate", 0.125))
	ok(t, grp.Close()) // no-op on a borrowed handle
	if lr := get(grp.GetFloat("learning_rate")).of(t); lr != 0.125 {
		t.Fatal(lr)
	}
	_, err := grp.AddParameter("x", Float32, 1)
	wantErr(t, err, StatusInvalidState)
	_, err = m.Group(9)
	wantErr(t, err, StatusInvalidArgument)
	wantErr(t, m.FilterName(-1, "x"), StatusInvalidArgument)

	fp, fg := get(m.NewFlat()).of(t), get(m.NewFlat()).of(t)
	for i := 0; i < fp.Len(); i++ {
		for j := range fg.Float32s(i) {
			fg.Float32s(i)[j] = 1
		}
	}
	ok(t, m.UpdateFlat(fp, fg))
	if fp.Float32s(0)[0] != -0.5 || fp.Float32s(2)[0] != -0.125 || fp.Float32s(3)[0] != -0.125 {
		t.Fatal(fp.Float32s(0), fp.Float32s(2), fp.Float32s(3))
	}
	keys := get(m.StateKeys()).of(t)
	if !strings.Contains(strings.Join(keys, ","), "states.2.enc.bias.m") {
		t.Fatal(keys)
	}
	ok(t, m.Close())
	wantErr(t, grp.SetFloat("learning_rate", 1), StatusInvalidState, "closed")
	if liveCallbacks.Load() != base {
		t.Fatal("filter handle not released")
	}

	// a failing filter fails the call that ran it, with its message and cause
	for _, bad := range []string{"bad", "worse"} {
		m2 := get(New("multi")).of(t)
		get(m2.AddGroup("sgd", `{"learning_rate": 1}`)).of(t)
		get(m2.AddGroup("sgd", `{"learning_rate": 1}`)).of(t)
		ok(t, m2.FilterFunc(0, func(name string, _ []int64) (bool, error) {
			if name == "bad" {
				return false, errBoom
			}
			if name == "worse" {
				panic("filter panic")
			}
			return true, nil
		}))
		get(m2.AddParameter(bad, Float32, 1)).of(t)
		_, err = m2.ParameterGroup(bad)
		if bad == "bad" {
			wantErr(t, err, StatusCallback, "boom")
			if !errors.Is(err, errBoom) {
				t.Fatal(err)
			}
		} else {
			wantErr(t, err, StatusCallback, "filter panic")
		}
		p, g := []float32{1}, []float32{1}
		wantErr(t, Update(m2, []string{bad}, [][]float32{p}, [][]float32{g}), StatusCallback)
		if p[0] != 1 {
			t.Fatal("changed")
		}
		ok(t, m2.Close())
	}
}

func TestMuonAdamW(t *testing.T) {
	m := get(NewMuonAdamW(`{"learning_rate": 0.02}`, `{"learning_rate": 0.01}`)).of(t)
	defer m.Close()
	get(m.AddParameter("layer.weight", Float32, 8, 6)).of(t)
	get(m.AddParameter("layer.bias", Float32, 6)).of(t)
	get(m.AddParameter("embed.weight", Float32, 4, 4)).of(t)
	for name, want := range map[string]int{"layer.weight": 0, "layer.bias": 1, "embed.weight": 1} {
		if got := get(m.ParameterGroup(name)).of(t); got != want {
			t.Fatal(name, got)
		}
	}
	m2 := get(NewMuonAdamW("", "", "layer.*")).of(t)
	defer m2.Close()
	get(m2.AddParameter("layer.weight", Float32, 8, 6)).of(t)
	if got := get(m2.ParameterGroup("layer.weight")).of(t); got != 1 {
		t.Fatal(got)
	}
	k := get(m.Kind()).of(t)
	if k != "multi" {
		t.Fatal(k)
	}
}

func TestClipGradNorm(t *testing.T) {
	g := [][]float64{{3}, {0, 4}}
	total := get(ClipGradNorm(g, 1)).of(t)
	s := 1 / (5 + 1e-6)
	if total != 5 || math.Abs(g[0][0]-3*s) > 1e-15 || math.Abs(g[1][1]-4*s) > 1e-15 {
		t.Fatal(total, g)
	}
	g32 := [][]float32{{3}, {4}}
	_, err := ClipGradNorm(g32, -1)
	wantErr(t, err, StatusOutOfRange)
	if g32[0][0] != 3 || g32[1][0] != 4 {
		t.Fatal("changed", g32)
	}
	if total := get(ClipGradNorm(g32, 10)).of(t); total != 5 || g32[0][0] != 3 {
		t.Fatal(total, g32)
	}

	o := newOpt(t, "sgd", `{"learning_rate": 1}`)
	get(o.AddParameter("a", Float32, 1)).of(t)
	get(o.AddParameter("b", Float64, 1)).of(t)
	f := get(o.NewFlat()).of(t)
	f.Float32s(0)[0], f.Float64s(1)[0] = 6, 8
	if total := get(f.ClipGradNorm(5)).of(t); total != 10 || math.Abs(f.Float64s(1)[0]-8*5/(10+1e-6)) > 1e-12 {
		t.Fatal(total, f.Float64s(1))
	}
}

// 16 goroutines failing at once each get their own message (caller buffers for handle-less
// calls, the handle's message otherwise).
func TestConcurrentFailuresOwnMessages(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			o, err := New("sgd")
			if err != nil {
				errs <- err
				return
			}
			defer o.Close()
			for i := 0; i < 200; i++ {
				kind := fmt.Sprintf("bad%d_%d", g, i)
				if _, err := New(kind); !IsStatus(err, StatusUnknownKind) || !strings.Contains(err.Error(), "'"+kind+"'") {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
				runtime.Gosched()
				key := fmt.Sprintf("key%d_%d", g, i)
				if err := o.SetFloat(key, 1); !IsStatus(err, StatusUnknownKey) || !strings.Contains(err.Error(), key+":") {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
				spec := fmt.Sprintf("nope%d_%d:1", g, i)
				if _, err := ScheduleValue(spec, 0, 0); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("nope%d_%d", g, i)) {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Concurrent misuse of one optimizer is serialised (the race detector checks there is no race):
// every update happens exactly once.
func TestConcurrentUseSerialised(t *testing.T) {
	o := newOpt(t, "sgd", `{"learning_rate": 1}`)
	get(o.AddParameter("w", Float64, 1)).of(t)
	fp, fg := get(o.NewFlat()).of(t), get(o.NewFlat()).of(t)
	fg.Float64s(0)[0] = 1
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := o.UpdateFlat(fp, fg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if fp.Float64s(0)[0] != -200 || step(t, o) != 200 {
		t.Fatal(fp.Float64s(0), step(t, o))
	}
}

// A forgotten optimizer is freed by its finalizer, which releases its callbacks.
func TestFinalizerReleasesCallbacks(t *testing.T) {
	base := liveCallbacks.Load()
	func() {
		for i := 0; i < 4; i++ {
			o, err := New("sgd")
			if err != nil {
				t.Fatal(err)
			}
			if err := o.SetFloat("learning_rate", 1); err != nil {
				t.Fatal(err)
			}
			if err := o.SetScheduleFunc(func(uint64) (float64, error) { return 1, nil }); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if liveCallbacks.Load() != base+4 {
		t.Fatal("handles not held")
	}
	for i := 0; i < 100 && liveCallbacks.Load() != base; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if n := liveCallbacks.Load() - base; n != 0 {
		t.Fatalf("%d callback handles still held after 100 collections", n)
	}
}
