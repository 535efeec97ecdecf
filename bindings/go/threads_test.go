package descent

import (
	"strings"
	"testing"
)

func TestProcessNumThreads(t *testing.T) {
	if NumThreads() < 1 {
		t.Fatalf("NumThreads() = %d, want >= 1", NumThreads())
	}
	t.Cleanup(func() { _ = SetNumThreads(0) })
	if err := SetNumThreads(3); err != nil {
		t.Fatal(err)
	}
	if got := NumThreads(); got != 3 {
		t.Fatalf("NumThreads() = %d after SetNumThreads(3)", got)
	}
	err := SetNumThreads(-1)
	if !IsStatus(err, StatusInvalidArgument) {
		t.Fatalf("SetNumThreads(-1) = %v, want StatusInvalidArgument", err)
	}
	err = SetNumThreads(1 << 40)
	if !IsStatus(err, StatusOutOfRange) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("SetNumThreads(1<<40) = %v, want StatusOutOfRange with the library's message", err)
	}
	if got := NumThreads(); got != 3 {
		t.Fatalf("a refused count changed the setting to %d", got)
	}
	if err := SetNumThreads(0); err != nil || NumThreads() < 1 {
		t.Fatalf("SetNumThreads(0) = %v, NumThreads() = %d", err, NumThreads())
	}
}

func TestOptimizerNumThreads(t *testing.T) {
	o, err := New("adam")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if n, err := o.NumThreads(); err != nil || n != 0 {
		t.Fatalf("default NumThreads() = %d, %v; want 0 (follows the process-wide count)", n, err)
	}
	if err := o.SetNumThreads(2); err != nil {
		t.Fatal(err)
	}
	if n, err := o.NumThreads(); err != nil || n != 2 {
		t.Fatalf("NumThreads() = %d, %v after SetNumThreads(2)", n, err)
	}
	if err := o.SetNumThreads(-2); !IsStatus(err, StatusInvalidArgument) {
		t.Fatalf("SetNumThreads(-2) = %v, want StatusInvalidArgument", err)
	}
	err = o.SetNumThreads(1 << 40)
	if !IsStatus(err, StatusOutOfRange) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("SetNumThreads(1<<40) = %v, want StatusOutOfRange with the library's message", err)
	}
	if n, _ := o.NumThreads(); n != 2 {
		t.Fatalf("a refused count changed the setting to %d", n)
	}
}
