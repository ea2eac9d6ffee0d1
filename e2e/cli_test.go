package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// clientEnv reads the management interface's >CLIENT:ENV lines of one
// client up to ENV,END into a map.
func clientEnv(t *testing.T, m *mgmt) map[string]string {
	t.Helper()
	env := map[string]string{}
	for {
		l := m.waitLine(t, ">CLIENT:ENV,", 10*time.Second)
		kv := strings.TrimPrefix(l, ">CLIENT:ENV,")
		if kv == "END" {
			return env
		}
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
}

// TestSessionStartPipedDynamicChallenge pipes the username, the password
// and a dynamic-challenge answer into one `ovpn3 session-start` (stdin
// written in one go, then closed) against the real server, which asks the
// challenge (CRV1) after the password: the answers of the second round
// must not be lost in the first round's reader. The profile is given as a
// file (openvpn3's --config FILE fallback) and the timeout in seconds.
func TestSessionStartPipedDynamicChallenge(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	sock := filepath.Join(t.TempDir(), "mgmt.sock")
	st := testbed.NewStack(t, bin, testbed.VariantF, func(o *testbed.StackOptions) {
		// The management client (this test) decides the logins; the
		// variant's verify script, which knows no challenges, says yes.
		o.Server.Extra = []string{fmt.Sprintf("management %s unix", sock), "management-client-auth",
			`auth-user-pass-verify /bin/true via-env`}
	})
	m := dialMgmt(t, sock)
	profile, err := st.WriteProfile(testbed.VariantF)
	if err != nil {
		t.Fatal(err)
	}

	const state, answer, prompt = "state-42", "424242", "Enter the code from the app"
	serverErr := make(chan error, 1)
	go func() { // the server's side of the login; ends with the test's management connection
		serverErr <- func() error {
			cid, kid := clientIDs(t, m.waitLine(t, ">CLIENT:CONNECT,", 90*time.Second))
			env := clientEnv(t, m)
			if env["username"] != testbed.TestUser || env["password"] != testbed.TestPass {
				return fmt.Errorf("first login: username %q password %q", env["username"], env["password"])
			}
			user := base64.StdEncoding.EncodeToString([]byte(testbed.TestUser))
			m.send(t, fmt.Sprintf(`client-deny %s %s "challenge" "CRV1:R,E:%s:%s:%s"`, cid, kid, state, user, prompt))
			cid, kid = clientIDs(t, m.waitLine(t, ">CLIENT:CONNECT,", 60*time.Second))
			env = clientEnv(t, m)
			if want := "CRV1::" + state + "::" + answer; env["username"] != testbed.TestUser || env["password"] != want {
				m.send(t, fmt.Sprintf(`client-deny %s %s "wrong answer"`, cid, kid))
				return fmt.Errorf("second login: username %q password %q, want %q", env["username"], env["password"], want)
			}
			m.send(t, fmt.Sprintf("client-auth-nt %s %s", cid, kid))
			return nil
		}()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, st.Bin.CLI, "session-start", "--config", profile, "--timeout", "120")
	cmd.Env = st.Env()
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(testbed.TestUser + "\n" + testbed.TestPass + "\n" + answer + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("session-start: %v", err)
	}
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	for _, want := range []string{"Using configuration profile from file: " + profile, "Connection, Client connected", "Connected to "} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// Three prompts, in order, the third with the server's challenge text.
	if p := stderr.String(); strings.Count(p, ": ") < 3 || !strings.Contains(p, prompt+": ") ||
		strings.Index(p, "Auth User name: ") > strings.Index(p, prompt+": ") {
		t.Errorf("prompts:\n%s", p)
	}
	if out, err := st.CLI(ctx, "session-manage", "-c", profile, "-D"); err != nil || !strings.Contains(out, "Session closed") {
		t.Errorf("session-manage -c %s -D: %v\n%s", profile, err, out)
	}
	// The single-use profile is gone with the session that fetched it.
	if out, err := st.CLI(ctx, "configs-list", "--count"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("configs-list --count after the session: %q %v", out, err)
	}
}

// TestLogSentencesOfAConnection follows a real connection's log through
// LogForward with app/client (as `ovpn3 log` and the tray do): every
// forwarded line is a sentence — no "key=value" fragments — and the
// milestones read as people expect, at INFO. The profile's verb 6 makes
// the backend forward its debug events too: sentences as well.
func TestLogSentencesOfAConnection(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	name := "e2e-log-sentences"
	// verb 6: the backend forwards every event, debug ones too.
	importProfile(t, st, testbed.VariantA, name, "verb 6")
	conn, err := dbus.Connect(st.Bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := client.New(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// `ovpn3 log -c NAME` before the session exists waits for it, as
	// openvpn3's does, and then prints the same sentences.
	logCmd := exec.CommandContext(ctx, st.Bin.CLI, "log", "-c", name)
	logCmd.Env = st.Env()
	logCmd.WaitDelay = 5 * time.Second
	logOut, err := logCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logStderr bytes.Buffer
	logCmd.Stderr = &logStderr
	if err := logCmd.Start(); err != nil {
		t.Fatal(err)
	}
	logLines := make(chan string, 256)
	go func() { // ends when the log command exits and its stdout closes
		defer close(logLines)
		sc := bufio.NewScanner(logOut)
		for sc.Scan() {
			logLines <- sc.Text()
		}
	}()
	if l := <-logLines; l != "Waiting for session to start ..." {
		t.Fatalf("ovpn3 log printed %q first", l)
	}

	profiles, err := cl.LookupProfile(ctx, name)
	if err != nil || len(profiles) != 1 {
		t.Fatalf("LookupProfile: %v %v", profiles, err)
	}
	s, err := cl.NewTunnel(ctx, profiles[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }() // on failure paths; Close of a closed session is nil
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	events, err := s.Follow(fctx)
	if err != nil {
		t.Fatal(err)
	}
	// Both followers (this test, ovpn3 log) are attached before Connect.
	for {
		var fw []dbus.ObjectPath
		if err := s.Get(ctx, "log_forwards", &fw); err == nil && len(fw) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ovpn3 log never followed the session; stderr: %s", logStderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := s.Start(ctx, client.StartOptions{Timeout: 90 * time.Second}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	dev, err := s.DeviceName(ctx)
	if err != nil || dev == "" {
		t.Fatalf("device name %q, %v", dev, err)
	}
	want := []string{
		"Connecting to " + testbed.ServerIP4 + ":" + fmt.Sprint(testbed.Port) + " over UDP",
		"TLS 1.3 handshake with the server done (TLS_AES_256_GCM_SHA384)",
		"Connected: tunnel " + dev + ", AES-256-GCM",
	}
	var lines []string
	found := 0
	for found < len(want) {
		select {
		case e := <-events:
			l, ok := e.(client.LogLine)
			if !ok {
				continue
			}
			lines = append(lines, fmt.Sprintf("%s %s: %s", l.Group, l.Category, l.Message))
			if strings.Contains(l.Message, "=") {
				t.Errorf("log line with a key=value fragment: %q", l.Message)
			}
			if strings.HasPrefix(l.Message, want[found]) {
				if l.Category != api.LogCategoryInfo || l.Group != api.LogGroupClient {
					t.Errorf("%q came as %s/%s, want Client/INFO", l.Message, l.Group, l.Category)
				}
				found++
			}
		case <-ctx.Done():
			t.Fatalf("saw %d of the expected lines; want next %q; log:\n%s", found, want[found], strings.Join(lines, "\n"))
		}
	}
	t.Logf("log:\n%s", strings.Join(lines, "\n"))

	// The session ends: ovpn3 log says so and exits 0, having printed the
	// sentences with openvpn3's "<group> <category>: " prefix.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var printed []string
	for l := range logLines {
		printed = append(printed, l)
	}
	if err := logCmd.Wait(); err != nil {
		t.Errorf("ovpn3 log: %v; stderr: %s", err, logStderr.String())
	}
	all := strings.Join(printed, "\n")
	for _, w := range append([]string{"Session closed"}, want...) {
		if !strings.Contains(all, w) {
			t.Errorf("ovpn3 log output lacks %q:\n%s", w, all)
		}
	}
	if !strings.Contains(all, "Client INFO: "+want[0]) {
		t.Errorf("ovpn3 log output lacks the prefix 'Client INFO: ':\n%s", all)
	}
}
