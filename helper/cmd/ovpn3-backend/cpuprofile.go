//go:build cpuprofile

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// profilerBuilt: this is the profiling build (-tags cpuprofile, which
// make bench builds for its profile run); production builds leave
// runtime/pprof out (see nocpuprofile.go).
const profilerBuilt = true

// startCPUProfile starts profiling this process into
// dir/backend-<PID>.pprof; the returned function stops and closes it.
func startCPUProfile(dir string) (func(), error) {
	path := filepath.Join(dir, fmt.Sprintf("backend-%d.pprof", os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
