package sessionmgr

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The ACL matrix runs real bus clients as four users (setpriv) against one
// session: each client is this test binary in aclClient mode, driven by
// commands on stdin, answering "result <op> <verdict>" lines and printing
// every event it receives for the session as "signal <member> <minor>".

const (
	aclClientEnv  = "SESSIONMGR_ACL_CLIENT_BUS"
	aclSessionEnv = "SESSIONMGR_ACL_SESSION"
)

type aclOp struct {
	name string
	run  func(obj dbus.BusObject) error
}

func method(m string, args ...any) func(dbus.BusObject) error {
	return func(o dbus.BusObject) error { return o.Call(api.InterfaceSessions+"."+m, 0, args...).Err }
}

func setProp(name string, v any) func(dbus.BusObject) error {
	return func(o dbus.BusObject) error {
		return o.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, name, dbus.MakeVariant(v)).Err
	}
}

func getProp(name string) func(dbus.BusObject) error {
	return func(o dbus.BusObject) error {
		var v dbus.Variant
		return o.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, name).Store(&v)
	}
}

// aclMatrix: every session method (Disconnect comes separately) and every
// writable property, plus two reads.
var aclMatrix = []aclOp{
	{"Ready", method("Ready")},
	{"Connect", method("Connect")},
	{"Pause", method("Pause", "matrix")},
	{"Resume", method("Resume")},
	{"Restart", method("Restart")},
	{"AccessGrant", method("AccessGrant", uint32(5000))},
	{"AccessRevoke", method("AccessRevoke", uint32(5000))},
	{"LogForward", method("LogForward", true)},
	{"UserInputQueueGetTypeGroup", method("UserInputQueueGetTypeGroup")},
	{"UserInputQueueCheck", method("UserInputQueueCheck", uint32(1), uint32(1))},
	{"UserInputQueueFetch", method("UserInputQueueFetch", uint32(1), uint32(1), uint32(0))},
	{"UserInputProvide", method("UserInputProvide", uint32(1), uint32(1), uint32(0), "x")},
	{"Get.status", getProp("status")},
	{"Get.statistics", getProp("statistics")},
	{"Set.public_access", setProp("public_access", false)},
	{"Set.restrict_log_access", setProp("restrict_log_access", true)},
	{"Set.dco", setProp("dco", false)},
	{"Set.log_verbosity", setProp("log_verbosity", uint32(5))},
}

// verdict classifies a call's outcome: "denied" for the access-control
// refusals (openvpn3's "Access denied" for methods, AccessDenied for
// properties), "allowed" for anything that got past them.
func verdict(err error) string {
	switch {
	case err == nil:
		return "allowed"
	case api.IsErrorName(err, api.ErrNameAccessDenied):
		return "denied"
	case api.IsDomain(err, api.DomainGDBusPP) && strings.HasPrefix(api.ErrorText(err), textAccessDenied):
		return "denied"
	}
	return "allowed"
}

// aclClient is the client process.
func aclClient(addr string, path dbus.ObjectPath) int {
	conn, err := dbus.Connect(addr)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	go func() {
		for s := range sigs {
			if s.Path != path || len(s.Body) != 3 {
				continue
			}
			minor, _ := s.Body[1].(uint32)
			say("signal %s %d", s.Name, minor)
		}
	}()
	obj := conn.Object(api.ServiceSessions, path)
	say("ready %s", conn.Names()[0])
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "matrix":
			for _, op := range aclMatrix {
				say("result %s %s", op.name, verdict(op.run(obj)))
			}
		case "logforward":
			say("result logforward %s", verdict(method("LogForward", true)(obj)))
		case "allow-log":
			say("result allow-log %s", verdict(setProp("restrict_log_access", false)(obj)))
		case "revoke":
			uid, _ := strconv.ParseUint(f[1], 10, 32)
			say("result revoke %s", verdict(method("AccessRevoke", uint32(uid))(obj)))
		case "disconnect":
			say("result disconnect %s", verdict(method("Disconnect")(obj)))
		}
		say("done %s", f[0])
	}
	return 0
}

// aclProc is one running client.
type aclProc struct {
	name  string
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func (p *aclProc) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// waitLine waits for a line with this prefix after index from and returns
// its index.
func (p *aclProc) waitLine(t *testing.T, prefix string, from int) int {
	t.Helper()
	deadline := time.After(30 * time.Second) // a lost line, not a speed check
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.HasPrefix(p.lines[i], prefix) {
				p.mu.Unlock()
				return i
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("%s: no %q line; output:\n%s", p.name, prefix, strings.Join(p.snapshot(), "\n"))
		}
	}
}

func (p *aclProc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// run sends a command and returns the result lines it produced.
func (p *aclProc) run(t *testing.T, cmd string) map[string]string {
	t.Helper()
	from := len(p.snapshot())
	p.send(t, cmd)
	end := p.waitLine(t, "done "+strings.Fields(cmd)[0], from)
	out := map[string]string{}
	for _, l := range p.snapshot()[from:end] {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "result" {
			out[f[1]] = f[2]
		}
	}
	return out
}

func startACLClient(t *testing.T, bin, addr string, uid int, name string, path dbus.ObjectPath) *aclProc {
	t.Helper()
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), aclClientEnv+"="+addr, aclSessionEnv+"="+string(path))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &aclProc{name: name, stdin: stdin, more: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	p.waitLine(t, "ready ", 0)
	return p
}

// TestACLMatrix: owner, granted user, stranger and root against every
// session method and writable property (spec §5.3), and the forwarded
// events reach only the users allowed to follow the session's log.
func TestACLMatrix(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "setpriv")
	r := newRigWith(t, "logged", Options{}, true)
	// Existing users: dbus-daemon resolves the groups of every client.
	const owner, granted, stranger = 1, 2, 65534
	path, err := r.m.NewTunnel(owner, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.AccessGrant(r.m.session(path), granted); err != nil {
		t.Fatal(err)
	}
	// The clients run a copy of the test binary other users can execute.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", testenv.UniqueName("acl-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	clients := map[string]*aclProc{}
	for name, uid := range map[string]int{"owner": owner, "granted": granted, "stranger": stranger, "root": 0} {
		clients[name] = startACLClient(t, bin, r.addr, uid, name, path)
	}

	ownerOnly := map[string]bool{"AccessGrant": true, "AccessRevoke": true, "LogForward": true,
		"Set.public_access": true, "Set.restrict_log_access": true}
	expect := func(who, op string) string {
		switch who {
		case "owner":
			return "allowed"
		case "granted":
			if ownerOnly[op] {
				return "denied"
			}
			return "allowed"
		case "root":
			// Root reads properties, nothing else (no polkit here).
			if strings.HasPrefix(op, "Get.") {
				return "allowed"
			}
		}
		return "denied"
	}
	for _, who := range []string{"stranger", "root", "granted", "owner"} {
		got := clients[who].run(t, "matrix")
		for _, op := range aclMatrix {
			if got[op.name] != expect(who, op.name) {
				t.Errorf("%s %s: %s, want %s", who, op.name, got[op.name], expect(who, op.name))
			}
		}
	}

	// Only the owner follows the log now: a status change reaches it and
	// nobody else.
	s := r.m.session(path)
	mark := map[string]int{}
	for n, c := range clients {
		mark[n] = len(c.snapshot())
	}
	if err := r.m.forward(s, "Restart", nil); err != nil {
		t.Fatal(err)
	}
	fwd := fmt.Sprintf("signal %s.StatusChange %d", api.InterfaceBackends, api.StatusMinorConnConnected)
	clients["owner"].waitLine(t, fwd, mark["owner"])
	// With restrict_log_access off the granted user may follow it too.
	if got := clients["owner"].run(t, "allow-log"); got["allow-log"] != "allowed" {
		t.Fatalf("owner clears restrict_log_access: %v", got)
	}
	for who, want := range map[string]string{"granted": "allowed", "stranger": "denied", "root": "denied"} {
		if got := clients[who].run(t, "logforward"); got["logforward"] != want {
			t.Errorf("%s LogForward with restrict_log_access=false: %s, want %s", who, got["logforward"], want)
		}
	}
	if err := r.m.forward(s, "Restart", nil); err != nil {
		t.Fatal(err)
	}
	clients["granted"].waitLine(t, fwd, mark["granted"])
	clients["owner"].waitLine(t, fwd, clients["owner"].waitLine(t, fwd, mark["owner"])+1)
	// Revoking the granted user stops its forward at once.
	if got := clients["owner"].run(t, "revoke "+strconv.Itoa(granted)); got["revoke"] != "allowed" {
		t.Fatalf("owner revokes: %v", got)
	}
	markGranted := len(clients["granted"].snapshot())
	if err := r.m.forward(s, "Restart", nil); err != nil {
		t.Fatal(err)
	}
	last := clients["owner"].waitLine(t, fwd, clients["owner"].waitLine(t, fwd, mark["owner"])+1)
	clients["owner"].waitLine(t, fwd, last+1)
	// The owner got the third event; give unicast signals to others the
	// same time to (wrongly) arrive before looking.
	time.Sleep(200 * time.Millisecond)
	for _, l := range clients["granted"].snapshot()[markGranted:] {
		if strings.HasPrefix(l, "signal "+api.InterfaceBackends) {
			t.Errorf("revoked user still receives the session's events: %s", l)
		}
	}
	for _, who := range []string{"stranger", "root"} {
		for _, l := range clients[who].snapshot()[mark[who]:] {
			if strings.HasPrefix(l, "signal "+api.InterfaceBackends) {
				t.Errorf("%s received the session's events: %s", who, l)
			}
		}
	}

	for _, who := range []string{"stranger", "root", "granted"} {
		if got := clients[who].run(t, "disconnect"); got["disconnect"] != "denied" {
			t.Errorf("%s Disconnect: %s, want denied", who, got["disconnect"])
		}
	}
	if got := clients["owner"].run(t, "disconnect"); got["disconnect"] != "allowed" {
		t.Errorf("owner Disconnect: %s", got["disconnect"])
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
}
