package polkit

import (
	"errors"
	"os/user"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// fakeAuthority answers CheckAuthorization on a private bus with a yes or
// a challenge, and counts the questions.
type fakeAuthority struct {
	mu    sync.Mutex
	yes   bool
	asked int
}

func (f *fakeAuthority) CheckAuthorization(_ subject, _ string, _ map[string]string, _ uint32, _ string) (checkResult, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return checkResult{IsAuthorized: f.yes, IsChallenge: !f.yes, Details: map[string]string{}}, nil
}

func (f *fakeAuthority) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// serveAuthority puts f on the bus at addr as polkitd (its user: the bus
// policy lets no one else own the name).
func serveAuthority(t *testing.T, addr string, f *fakeAuthority) {
	t.Helper()
	u, err := user.Lookup("polkitd")
	if err != nil {
		t.Fatalf("polkitd's user: %v", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	conn := busobjtest.DialAs(t, addr, uint32(uid), uint32(gid))
	if err := conn.Export(f, AuthorityPath, AuthorityInterface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(ServiceName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", ServiceName, reply, err)
	}
}

// clock is a settable time for Authority.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newAsker connects to the bus at addr and returns an Authority on that
// connection, its clock and the connection's name (the caller to ask
// about).
func newAsker(t *testing.T, addr string) (*Authority, *clock, string) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &clock{t: time.Now()}
	a := New(conn)
	a.now = c.now
	return a, c, conn.Names()[0]
}

func TestRequireRemembersAYes(t *testing.T) {
	addr := testbed.Bus(t)
	f := &fakeAuthority{yes: true}
	serveAuthority(t, addr, f)
	a, c, caller := newAsker(t, addr)
	ctx := t.Context()

	for i := range 3 {
		if err := a.Require(ctx, caller, ActionSessionControlOwn, false); err != nil {
			t.Fatalf("Require %d: %v", i, err)
		}
	}
	if n := f.count(); n != 1 {
		t.Fatalf("polkitd was asked %d times for the same caller and action within Fresh, want 1", n)
	}
	if err := a.Require(ctx, caller, ActionSessionControlOther, false); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 2 {
		t.Fatalf("another action: polkitd asked %d times in all, want 2", n)
	}
	c.add(Fresh)
	if err := a.Require(ctx, caller, ActionSessionControlOwn, false); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 3 {
		t.Fatalf("after Fresh: polkitd asked %d times in all, want 3 (the yes expired)", n)
	}
}

func TestRequireForgetsANo(t *testing.T) {
	addr := testbed.Bus(t)
	f := &fakeAuthority{yes: false}
	serveAuthority(t, addr, f)
	a, _, caller := newAsker(t, addr)
	for range 2 {
		if err := a.Require(t.Context(), caller, ActionSessionControlOwn, false); !errors.Is(err, ErrInteractionRequired) {
			t.Fatalf("Require: %v, want ErrInteractionRequired", err)
		}
	}
	if n := f.count(); n != 2 {
		t.Fatalf("polkitd was asked %d times, want 2: a refusal is not remembered", n)
	}
}

// polkitd's absence stands for Fresh too; once it is over, the authority
// that came meanwhile is asked.
func TestRequireRemembersNoAuthority(t *testing.T) {
	addr := testbed.Bus(t)
	a, c, caller := newAsker(t, addr)
	if err := a.Require(t.Context(), caller, ActionSessionControlOwn, false); !errors.Is(err, ErrNoAuthority) {
		t.Fatalf("Require without polkitd: %v, want ErrNoAuthority", err)
	}
	f := &fakeAuthority{yes: true}
	serveAuthority(t, addr, f)
	if err := a.Require(t.Context(), caller, ActionSessionControlOwn, false); !errors.Is(err, ErrNoAuthority) {
		t.Fatalf("Require within Fresh: %v, want the remembered ErrNoAuthority", err)
	}
	if n := f.count(); n != 0 {
		t.Fatalf("polkitd asked %d times within Fresh of its absence, want 0", n)
	}
	c.add(Fresh)
	if err := a.Require(t.Context(), caller, ActionSessionControlOwn, false); err != nil {
		t.Fatalf("Require after Fresh: %v, want polkitd's yes", err)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("polkitd asked %d times after Fresh, want 1", n)
	}
}
