package polkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/polkit/polkittest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// clientEnv makes the test binary a bus client that only holds a connection
// (the unprivileged subject of the checks): it prints its unique name and
// waits to be killed.
const clientEnv = "OVPN3GO_POLKIT_TEST_CLIENT_BUS"

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		conn, err := dbus.Connect(addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		fmt.Printf("unique-name %s\n", conn.Names()[0])
		select {}
	}
	os.Exit(m.Run())
}

const (
	polkitdPath = testbed.PolkitdPath
	nobodyUID   = 65534 // the subject: uid and gid nobody/nogroup
)

// testPolicy is the shipped file with session.control-own allowed for any
// subject (see polkittest.AllowAny: without logind only allow_any applies).
func testPolicy(t testing.TB, shipped string) string {
	t.Helper()
	text, err := polkittest.AllowAny(shipped, ActionSessionControlOwn)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// polkitEnv is a private system-like bus with a real polkitd on it.
type polkitEnv struct {
	addr string
	dir  string // world-traversable: polkitd and the nobody client connect to the socket in it
	conn *dbus.Conn
}

func startPolkitEnv(t testing.TB) *polkitEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dbus-daemon")
	testenv.RequireCommand(t, "pkaction")
	testenv.RequireCommand(t, "setpriv")
	if _, err := os.Stat(polkitdPath); err != nil {
		if testenv.InCI() {
			t.Fatalf("%s missing; make deps installs polkitd", polkitdPath)
		}
		t.Skipf("%s missing (apt-get install polkitd pkexec)", polkitdPath)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// t.TempDir is 0700 (and so is its parent), but polkitd drops to user
	// polkitd and the subject runs as nobody: both must reach the socket.
	dir, err := os.MkdirTemp("", testenv.UniqueName("polkit-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// testbed's bus policy lets polkitd own its name and call agents.
	bus, err := testbed.StartBus(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bus.Stop(5 * time.Second); err != nil {
			t.Errorf("stop bus: %v", err)
		}
	})
	addr := bus.Address
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	pk, err := testbed.StartPolkitd(ctx, addr, filepath.Join(dir, "polkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pk.Stop(5 * time.Second); err != nil {
			t.Errorf("stop polkitd: %v", err)
		}
	})
	return &polkitEnv{addr: addr, dir: dir, conn: conn}
}

// startNobodyClient runs a copy of this test binary as uid/gid 65534 with
// no supplementary groups; it holds a bus connection and is the subject of
// the checks. setpriv execs in place, so the process polkitd resolves from
// the bus name really is unprivileged (runuser would leave a root parent,
// and polkit authorizes root subjects always).
func (e *polkitEnv) startNobodyClient(t testing.TB) (busName string, pid int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.dir, "client")
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", nobodyUID), fmt.Sprintf("--regid=%d", nobodyUID),
		"--clear-groups", bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+e.addr)
	p, err := testbed.StartProcess("nobody client", filepath.Join(e.dir, "client.log"), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop client: %v", err)
		}
	})
	if err := p.WaitForLog(t.Context(), "\n", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var name string
	if _, err := fmt.Sscanf(p.Log(), "unique-name %s", &name); err != nil {
		t.Fatalf("client output %q: %v", p.Log(), err)
	}
	var uid uint32
	if err := e.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, name).Store(&uid); err != nil {
		t.Fatal(err)
	}
	if uid != nobodyUID {
		t.Fatalf("client %s runs as uid %d, want %d", name, uid, nobodyUID)
	}
	return name, p.PID()
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// pkactionDefaults runs pkaction --verbose against the private bus and
// returns what polkitd parsed for one action.
func (e *polkitEnv) pkaction(t *testing.T, id string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pkaction", "--verbose", "--action-id", id)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pkaction --action-id %s: %v\n%s", id, err, out)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields
}

// TestPolkitd runs the client against a real polkitd on a private bus.
func TestPolkitd(t *testing.T) {
	e := startPolkitEnv(t)
	b, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	policyText := testPolicy(t, string(b))
	// The shipped actions plus one that always needs an administrator and
	// is never kept, for the cancelled prompt below.
	polkittest.InstallPolicy(t, strings.Replace(policyText, "</policyconfig>", testAdminAction+"</policyconfig>", 1))
	policy, err := parsePolicy(policyText)
	if err != nil {
		t.Fatal(err)
	}
	nobody, nobodyPID := e.startNobodyClient(t)
	root := e.conn.Names()[0]
	a := New(e.conn)
	ctx := t.Context()

	// polkitd loads the action file it finds on start and when the
	// directory changes; wait until it knows our actions.
	waitForAction(t, e, ActionSessionControlOther)

	t.Run("pkaction sees every action as written", func(t *testing.T) {
		for _, want := range policy.Actions {
			got := e.pkaction(t, want.ID)
			for k, v := range map[string]string{
				"description":       want.Description,
				"message":           want.Message,
				"vendor":            policy.Vendor,
				"implicit any":      want.Defaults.Any,
				"implicit inactive": want.Defaults.Inactive,
				"implicit active":   want.Defaults.Active,
			} {
				if got[k] != v {
					t.Errorf("pkaction %s: %s = %q, want %q", want.ID, k, got[k], v)
				}
			}
		}
	})

	t.Run("allowed action for an unprivileged caller", func(t *testing.T) {
		r, err := a.Check(ctx, nobody, ActionSessionControlOwn, false)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Authorized || r.Challenge {
			t.Errorf("Check(nobody, %s) = %+v, want authorized", ActionSessionControlOwn, r)
		}
		if err := a.Require(ctx, nobody, ActionSessionControlOwn, false); err != nil {
			t.Errorf("Require: %v", err)
		}
	})

	t.Run("auth_admin action refused for an unprivileged caller", func(t *testing.T) {
		for _, action := range []string{ActionSessionControlOther} {
			r, err := a.Check(ctx, nobody, action, false)
			if err != nil {
				t.Fatal(err)
			}
			if r.Authorized || !r.Challenge {
				t.Errorf("Check(nobody, %s) = %+v, want a challenge", action, r)
			}
		}
		err := a.Require(ctx, nobody, ActionSessionControlOther, false)
		if !errors.Is(err, ErrInteractionRequired) {
			t.Fatalf("Require without the interactive flag: %v, want ErrInteractionRequired", err)
		}
		if e := ReplyError(err); e.Name != ErrNameInteractiveAuthorizationRequired {
			t.Errorf("ReplyError = %s", e.Name)
		}
	})

	t.Run("interactive check without an agent", func(t *testing.T) {
		// No authentication agent is registered, so nobody can be asked:
		// polkitd answers at once instead of prompting.
		r, err := a.Check(ctx, nobody, ActionSessionControlOther, true)
		if err != nil {
			t.Fatal(err)
		}
		if r.Authorized {
			t.Fatalf("Check(nobody, interactive) = %+v, want refused", r)
		}
		t.Logf("interactive check without agent: %+v", r)
		err = a.Require(ctx, nobody, ActionSessionControlOther, true)
		if !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("Require(interactive): %v, want ErrNotAuthorized", err)
		}
		if e := ReplyError(err); e.Name != ErrNameAccessDenied {
			t.Errorf("ReplyError = %s", e.Name)
		}
	})

	t.Run("root caller is authorized", func(t *testing.T) {
		for _, action := range Actions() {
			r, err := a.Check(ctx, root, action, false)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Authorized {
				t.Errorf("Check(root, %s) = %+v, want authorized", action, r)
			}
		}
	})

	t.Run("unknown action", func(t *testing.T) {
		// polkitd refuses to answer for an action no file declares.
		r, err := a.Check(ctx, nobody, "net.ovpn3go.no-such-action", false)
		if err == nil || !strings.Contains(err.Error(), "not registered") {
			t.Errorf("Check(unknown action) = %+v, %v; want a 'not registered' error", r, err)
		}
	})

	t.Run("vanished caller", func(t *testing.T) {
		r, err := a.Check(ctx, ":1.99999", ActionSessionControlOwn, false)
		if !errors.Is(err, ErrCallerGone) || errors.Is(err, ErrNoAuthority) {
			t.Errorf("Check for a name nobody owns = %+v, %v; want ErrCallerGone", r, err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := a.Check(cctx, nobody, ActionSessionControlOther, true)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Check with a cancelled context: %v, want context.Canceled", err)
		}
	})

	t.Run("concurrent checks", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				action, want := ActionSessionControlOwn, true
				if i%2 == 1 {
					action, want = ActionSessionControlOther, false
				}
				r, err := a.Check(ctx, nobody, action, i%4 == 3)
				if err != nil {
					errs <- err
				} else if r.Authorized != want {
					errs <- fmt.Errorf("%s: %+v", action, r)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	// Last: a successful authentication leaves polkitd holding a temporary
	// authorization for the subject, which would change answers above.
	t.Run("authentication agent", func(t *testing.T) {
		agent := registerAgent(t, e.addr, nobodyPID)
		messages := map[string]string{}
		for _, act := range policy.Actions {
			messages[act.ID] = act.Message
		}

		// Without the interactive flag polkitd must not involve the agent.
		err := a.Require(ctx, nobody, ActionSessionControlOther, false)
		if !errors.Is(err, ErrInteractionRequired) {
			t.Fatalf("Require(non-interactive) with an agent: %v", err)
		}
		select {
		case req := <-agent.begun:
			t.Fatalf("agent asked for a non-interactive check: %+v", req)
		default:
		}

		// With it, the agent is asked with our policy's message; after it
		// authenticates the caller is authorized.
		agent.approve.Store(true)
		r, err := a.Check(ctx, nobody, ActionSessionControlOther, true)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Authorized {
			t.Fatalf("interactive Check after the agent authenticated = %+v", r)
		}
		select {
		case req := <-agent.begun:
			if req.ActionID != ActionSessionControlOther || req.Message != messages[ActionSessionControlOther] {
				t.Errorf("agent was asked %+v", req)
			}
		default:
			t.Fatal("authorized without asking the agent")
		}
		// auth_admin_keep: polkitd (not we) keeps the authorization for a while.
		if err := a.Require(ctx, nobody, ActionSessionControlOther, false); err != nil {
			t.Errorf("Require right after authenticating for an auth_admin_keep action: %v", err)
		}

		// Cancelling the context withdraws the prompt.
		agent.approve.Store(false)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			// control-other is kept for a while now: ask for an
			// action that is never kept.
			_, err := a.Check(cctx, nobody, testAdminActionID, true)
			errc <- err
		}()
		var req agentRequest
		select {
		case req = <-agent.begun:
		case <-time.After(20 * time.Second):
			t.Fatal("the agent was never asked")
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled interactive Check: %v, want context.Canceled", err)
		}
		select {
		case cookie := <-agent.cancelled:
			if cookie != req.Cookie {
				t.Errorf("agent cancelled cookie %q, prompt had %q", cookie, req.Cookie)
			}
		case <-time.After(20 * time.Second):
			t.Error("polkitd never cancelled the prompt after the context was cancelled")
		}
	})
}

// testAdminAction is installed beside the shipped actions (tests only).
const (
	testAdminActionID = "net.ovpn3go.test.auth-admin"
	testAdminAction   = `  <action id="` + testAdminActionID + `">
    <description>test only</description>
    <message>test only</message>
    <defaults>
      <allow_any>auth_admin</allow_any>
      <allow_inactive>auth_admin</allow_inactive>
      <allow_active>auth_admin</allow_active>
    </defaults>
  </action>
`
)

func waitForAction(t testing.TB, e *polkitEnv, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.CommandContext(t.Context(), "pkaction", "--action-id", id)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.addr)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("polkitd never listed %s: %v\n%s", id, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkCheck times one CheckAuthorization of control-own for an
// unprivileged caller against a real polkitd (polkitd: what the session
// manager's NewTunnel asks), and Require's answer within Fresh of it
// (remembered: the Connect that follows):
//
//	go test -run '^$' -bench Check -benchtime 200x ./helper/polkit/
func BenchmarkCheck(b *testing.B) {
	e := startPolkitEnv(b)
	text, err := os.ReadFile(policyPath)
	if err != nil {
		b.Fatal(err)
	}
	polkittest.InstallPolicy(b, testPolicy(b, string(text)))
	nobody, _ := e.startNobodyClient(b)
	waitForAction(b, e, ActionSessionControlOwn)
	a := New(e.conn)
	b.Run("polkitd", func(b *testing.B) {
		for b.Loop() {
			if r, err := a.Check(b.Context(), nobody, ActionSessionControlOwn, false); err != nil || !r.Authorized {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if err := a.Require(b.Context(), nobody, ActionSessionControlOwn, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNoAuthority: a bus without polkitd gives ErrNoAuthority, so the
// helper can fail closed with a clear message.
func TestNoAuthority(t *testing.T) {
	addr := testbed.Bus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a := New(conn)
	_, err = a.Check(t.Context(), conn.Names()[0], ActionSessionControlOwn, false)
	if !errors.Is(err, ErrNoAuthority) {
		t.Fatalf("Check without polkitd: %v, want ErrNoAuthority", err)
	}
	t.Log(err)
	if e := ReplyError(a.Require(t.Context(), conn.Names()[0], ActionSessionControlOwn, false)); e.Name != ErrNameAccessDenied {
		t.Errorf("ReplyError = %s, want AccessDenied (fail closed)", e.Name)
	}
}
