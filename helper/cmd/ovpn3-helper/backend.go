package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
)

// backendName is the backends' program, installed beside the daemon.
const backendName = "ovpn3-backend"

// InstalledBackend is where the package installs the backends' program
// (packaging/deb/debian/ovpn3go.install).
const InstalledBackend = "/usr/libexec/ovpn3go/" + backendName

// backendProgram is how the daemon starts every backend: the program file
// opened when the daemon started, its path (argv[0]) and its arguments.
type backendProgram struct {
	file *os.File
	path string
	args []string
}

// openBackend opens the backends' program: flagPath when given, else the
// first of candidates (backendCandidates) that exists. A daemon without it
// fails at its start, naming where it looked, not at the first session.
func openBackend(flagPath string, candidates, args []string) (backendProgram, error) {
	if flagPath != "" {
		candidates = []string{flagPath}
	}
	var errs []error
	for _, path := range candidates {
		f, err := sessionmgr.OpenProgram(path)
		if err == nil {
			return backendProgram{file: f, path: path, args: args}, nil
		}
		if flagPath == "" && errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: not found", path))
			continue
		}
		return backendProgram{}, err
	}
	return backendProgram{}, fmt.Errorf("backend program %s missing (%w); install it or name it with --backend", backendName, errors.Join(errs...))
}

// backendCandidates are where the daemon looks for the backends' program:
// beside its own executable (a build directory, or the package's
// libexec directory), then where the package installs it.
func backendCandidates() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), backendName))
	}
	if len(out) == 0 || out[0] != InstalledBackend {
		out = append(out, InstalledBackend)
	}
	return out
}
