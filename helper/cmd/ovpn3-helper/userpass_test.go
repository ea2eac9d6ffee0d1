package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// A profile with auth-user-pass: session-start asks for the credentials
// (read from standard input when it is not a terminal), the backend's
// user-input queue hands them to the engine, and the tunnel comes up.
func TestUserPassProfile(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := testbed.BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := testbed.NewStack(t, bin, testbed.VariantF)
	profile, err := st.WriteProfile(testbed.VariantF)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := st.CLI(ctx, "config-import", "--config", profile, "--name", "userpass"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := func(user, pass string) (string, error) {
		cmd := exec.CommandContext(ctx, bin.CLI, "session-start", "--config", "userpass", "--timeout", "60s")
		cmd.Env = st.Env()
		cmd.Stdin = strings.NewReader(user + "\n" + pass + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := start(testbed.TestUser, testbed.TestPass)
	if err != nil {
		t.Fatalf("session-start with the right credentials: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Auth User name: ") || !strings.Contains(out, "Connected to ") {
		t.Errorf("session-start output:\n%s", out)
	}
	if strings.Contains(out, testbed.TestPass) {
		t.Errorf("the password was echoed:\n%s", out)
	}
	if out, err := st.CLI(ctx, "session-manage", "--config", "userpass", "--disconnect"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = start(testbed.TestUser, "wrong")
	if err == nil || !strings.Contains(out, "authentication failed") {
		t.Errorf("session-start with a wrong password: %v\n%s", err, out)
	}
	if out, err := st.CLI(ctx, "sessions-list"); err != nil || !strings.Contains(out, "No sessions available") {
		t.Errorf("a failed start left a session behind: %v\n%s", err, out)
	}
}
