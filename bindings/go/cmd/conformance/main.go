// Command conformance runs the cross-language scenario of tests/conformance/README.md through
// the Go binding and writes its files into the directory given as the only argument.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	descent "github.com/descent-ml/descent/bindings/go"
)

const nw, nb = 48, 6

// schedule is the host-language schedule callback: lr(step) = 0.01 / (step + 1).
func schedule(step uint64) (float64, error) { return 0.01 / (float64(step) + 1), nil }

func make_(name string) (*descent.Optimizer, error) {
	var opt *descent.Optimizer
	var err error
	switch name {
	case "muon+adamw":
		opt, err = descent.NewMuonAdamW(`{"learning_rate": 0.02}`, `{"learning_rate": 0.01}`)
	default:
		if opt, err = descent.New(name); err == nil {
			config := `{"learning_rate": 0.02, "momentum": 0.95}`
			if name == "adamw" {
				config = `{"learning_rate": 0.01, "weight_decay": 0.01}`
			}
			if err = opt.ConfigureJSON(config); err != nil {
				opt.Close()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if _, err = opt.AddParameter("layer.weight", descent.Float32, 8, 6); err == nil {
		if _, err = opt.AddParameter("layer.bias", descent.Float32, nb); err == nil {
			err = opt.SetScheduleFunc(schedule)
		}
	}
	if err != nil {
		opt.Close()
		return nil, err
	}
	return opt, nil
}

// steps runs count updates with g = p - t, through the flat-buffer form.
func steps(opt *descent.Optimizer, params, grads *descent.Flat, tw, tb []float32, count int) error {
	w, b := params.Float32s(0), params.Float32s(1)
	gw, gb := grads.Float32s(0), grads.Float32s(1)
	for k := 0; k < count; k++ {
		for i := range w {
			gw[i] = w[i] - tw[i]
		}
		for i := range b {
			gb[i] = b[i] - tb[i]
		}
		if err := opt.UpdateFlat(params, grads); err != nil {
			return err
		}
	}
	return nil
}

func run(dir, name string) error {
	first, err := make_(name)
	if err != nil {
		return err
	}
	defer first.Close()
	params, err := first.NewFlat()
	if err != nil {
		return err
	}
	grads, err := first.NewFlat()
	if err != nil {
		return err
	}
	w, b := params.Float32s(0), params.Float32s(1)
	tw, tb := make([]float32, nw), make([]float32, nb)
	for i := range w {
		w[i] = 0.125*float32(i%17) - 1
		tw[i] = 0.25 * float32(i%7)
	}
	for i := range b {
		b[i] = 0.25 * float32(i)
		tb[i] = -0.5
	}
	state := filepath.Join(dir, name+".state.safetensors")
	if err := steps(first, params, grads, tw, tb, 25); err != nil {
		return err
	}
	if err := first.Save(state); err != nil {
		return err
	}
	second, err := make_(name)
	if err != nil {
		return err
	}
	defer second.Close()
	if err := second.Load(state); err != nil {
		return err
	}
	if err := steps(second, params, grads, tw, tb, 25); err != nil {
		return err
	}
	out := make([]byte, 0, 4*(nw+nb))
	for _, v := range append(append([]float32(nil), w...), b...) {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return os.WriteFile(filepath.Join(dir, name+".params.bin"), out, 0o644)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: conformance <output-dir>")
		os.Exit(2)
	}
	for _, name := range []string{"adamw", "muon", "muon+adamw"} {
		if err := run(os.Args[1], name); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %s: %v\n", name, err)
			os.Exit(1)
		}
	}
}
