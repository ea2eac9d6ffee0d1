package process

import (
	"os"
	"runtime"
)

// Serial runs this process's goroutines on one scheduler P (GOMAXPROCS 1).
// The daemon's work, and a backend's until its data plane runs, is short
// handlers passing D-Bus messages on: with a P per core the runtime wakes
// a second thread for each message that arrives while the first is busy,
// and spins idle threads looking for work, each a context switch and a
// system call that on a paravirtualized machine costs more than the
// handler. On one P the goroutines take turns on the thread that is
// awake, blocking system calls still hand the P on, and the connect's
// other processes (the bus, the server's handshake) get the CPUs
// (docs/bench/connect.md, "One P"). An administrator's GOMAXPROCS in the
// environment wins.
func Serial() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Parallel gives the scheduler back the runtime's default P count (the
// CPUs this process may use, followed as they change) after Serial: a
// backend's data plane moves each direction on a goroutine of its own.
func Parallel() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
	}
}
