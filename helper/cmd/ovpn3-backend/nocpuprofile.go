//go:build !cpuprofile

package main

import "errors"

// profilerBuilt: the production build does not link runtime/pprof, whose
// package init alone costs every backend ~0.3 MB of resident memory
// (docs/bench/memory.md); users never profile a backend, make bench
// builds a profiling one (cpuprofile.go) for its profile run.
const profilerBuilt = false

// errNoProfiler is what --cpuprofile-dir gets from a production build.
var errNoProfiler = errors.New("--cpuprofile-dir: this ovpn3-backend was built without the CPU profiler; use a profiling build (go build -tags " + profileTag + " ./helper/cmd/ovpn3-backend, as make bench does)")

func startCPUProfile(string) (func(), error) { return nil, errNoProfiler }
