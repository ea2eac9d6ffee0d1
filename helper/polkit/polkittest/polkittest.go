// Package polkittest installs polkit action files for tests. polkitd reads
// actions only from one machine-wide directory, so every test package that
// runs a real polkitd goes through InstallPolicy, which serialises them
// across processes (go test runs packages in parallel) with a file lock.
package polkittest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	// ActionsDir is the only directory polkitd reads action files from.
	ActionsDir = "/usr/share/polkit-1/actions"
	// InstalledPolicy is where the helper's action file goes.
	InstalledPolicy = ActionsDir + "/net.ovpn3go.policy"
	lockPath        = "/run/lock/ovpn3go-polkit-actions.lock"
)

// InstallPolicy writes text to InstalledPolicy for the rest of the test,
// holding a machine-wide lock until t's cleanup has restored what was there
// before (normally nothing).
func InstallPolicy(t testing.TB, text string) {
	t.Helper()
	restore, err := Install(text)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
}

// Install is InstallPolicy for a program (a benchmark's stacks): it takes
// the lock, writes text to InstalledPolicy and returns what restores the
// file that was there before and releases the lock.
func Install(text string) (restore func() error, err error) {
	unlock, err := lock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	old, err := os.ReadFile(InstalledPolicy)
	hadOld := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		unlock()
		return nil, err
	}
	if err := os.WriteFile(InstalledPolicy, []byte(text), 0o644); err != nil {
		unlock()
		return nil, fmt.Errorf("install action file: %w", err)
	}
	return func() error {
		defer unlock()
		var err error
		if hadOld {
			err = os.WriteFile(InstalledPolicy, old, 0o644)
		} else {
			err = os.Remove(InstalledPolicy)
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", InstalledPolicy, err)
		}
		return nil
	}, nil
}

func lock() (func(), error) {
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the fd drops the lock
}

// AllowAny returns the action file text with action's allow_any default
// replaced by "yes". There is no logind on test machines, so polkitd sees
// every subject outside a local session and only allow_any ever applies:
// this stands in for a user at an active console.
func AllowAny(shipped, action string) (string, error) {
	start := strings.Index(shipped, `<action id="`+action+`">`)
	if start < 0 {
		return "", fmt.Errorf("action %s not in the policy file", action)
	}
	end := strings.Index(shipped[start:], "</action>")
	if end < 0 {
		return "", fmt.Errorf("action %s is not closed", action)
	}
	block := shipped[start : start+end]
	i := strings.Index(block, "<allow_any>")
	j := strings.Index(block, "</allow_any>")
	if i < 0 || j < i {
		return "", fmt.Errorf("action %s has no allow_any default", action)
	}
	block = block[:i] + "<allow_any>yes" + block[j:]
	return shipped[:start] + block + shipped[start+end:], nil
}
