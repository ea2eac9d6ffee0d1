package busobj_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// runTool runs a client program (gdbus, busctl) against the test bus.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	return execCmd(exec.Command(testenv.RequireCommand(t, name), args...))
}

// execCmd runs cmd with a generous deadline (a hung tool, not a speed
// assertion) and returns its trimmed combined output.
func execCmd(cmd *exec.Cmd) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	close(done)
	return strings.TrimSpace(string(out)), err
}
