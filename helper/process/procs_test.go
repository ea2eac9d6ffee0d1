package process

import (
	"runtime"
	"testing"
)

// TestSerialThenParallel: Serial leaves one P, Parallel the runtime's
// default again; an administrator's GOMAXPROCS is left alone by both.
func TestSerialThenParallel(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // t.Setenv restores the variable
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	Serial()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("after Serial GOMAXPROCS is %d, want 1", n)
	}
	Parallel()
	if n := runtime.GOMAXPROCS(0); n != def {
		t.Fatalf("after Parallel GOMAXPROCS is %d, want the default %d", n, def)
	}

	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3) // as the runtime read it at start
	Serial()
	if n := runtime.GOMAXPROCS(0); n != 3 {
		t.Errorf("Serial changed the administrator's GOMAXPROCS 3 to %d", n)
	}
	runtime.GOMAXPROCS(2)
	Parallel()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("Parallel changed GOMAXPROCS under an administrator's setting: %d", n)
	}
}
