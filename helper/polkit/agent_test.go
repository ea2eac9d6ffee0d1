package polkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// fakeAgent is a polkit authentication agent that never asks anyone: it
// records each BeginAuthentication and either "authenticates" at once
// (AuthenticationAgentResponse2, which polkitd accepts only from root — the
// role of polkit-agent-helper-1) or waits until polkitd cancels it. It
// proves that Check asks for user interaction exactly when told to, and
// that cancelling the context cancels the prompt.
type fakeAgent struct {
	conn      *dbus.Conn
	approve   atomic.Bool
	begun     chan agentRequest
	cancelled chan string

	mu      sync.Mutex
	waiting map[string]chan struct{} // cookie -> closed by CancelAuthentication
}

type agentRequest struct {
	ActionID, Message, Cookie string
}

// identity is polkit's (sa{sv}) identity structure.
type identity struct {
	Kind    string
	Details map[string]dbus.Variant
}

const agentPath = dbus.ObjectPath("/net/ovpn3go/test/PolkitAgent")

func (f *fakeAgent) BeginAuthentication(actionID, message, iconName string, details map[string]string,
	cookie string, identities []identity) *dbus.Error {
	done := make(chan struct{})
	f.mu.Lock()
	f.waiting[cookie] = done
	f.mu.Unlock()
	f.begun <- agentRequest{ActionID: actionID, Message: message, Cookie: cookie}
	if f.approve.Load() {
		if len(identities) == 0 {
			return dbus.MakeFailedError(fmt.Errorf("no identities offered"))
		}
		err := f.conn.Object(ServiceName, AuthorityPath).Call(AuthorityInterface+".AuthenticationAgentResponse2", 0,
			uint32(os.Getuid()), cookie, identities[0]).Err
		if err != nil {
			return dbus.MakeFailedError(err)
		}
		return nil
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second): // bounded even if polkitd never cancels
	}
	return &dbus.Error{Name: "org.freedesktop.PolicyKit1.Error.Cancelled", Body: []any{"cancelled"}}
}

func (f *fakeAgent) CancelAuthentication(cookie string) *dbus.Error {
	f.mu.Lock()
	if ch, ok := f.waiting[cookie]; ok {
		close(ch)
		delete(f.waiting, cookie)
	}
	f.mu.Unlock()
	f.cancelled <- cookie
	return nil
}

// registerAgent exports a fakeAgent on its own connection and registers it
// for the process pid (no logind, so no session to register for).
func registerAgent(t *testing.T, addr string, pid int) *fakeAgent {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeAgent{conn: conn, begun: make(chan agentRequest, 16), cancelled: make(chan string, 16),
		waiting: map[string]chan struct{}{}}
	if err := conn.Export(f, agentPath, "org.freedesktop.PolicyKit1.AuthenticationAgent"); err != nil {
		t.Fatal(err)
	}
	start, err := processStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	subj := subject{Kind: "unix-process", Details: map[string]dbus.Variant{
		"pid":        dbus.MakeVariant(uint32(pid)),
		"start-time": dbus.MakeVariant(start),
	}}
	err = conn.Object(ServiceName, AuthorityPath).CallWithContext(t.Context(),
		AuthorityInterface+".RegisterAuthenticationAgent", 0, subj, "C", string(agentPath)).Err
	if err != nil {
		t.Fatalf("RegisterAuthenticationAgent: %v", err)
	}
	return f
}

// processStartTime is field 22 of /proc/PID/stat (clock ticks since boot),
// which polkit uses with the pid to identify a process.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) may hold spaces; it ends at the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
