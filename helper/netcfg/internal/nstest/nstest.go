// Package nstest gives tests of the netcfg packages a fresh, uniquely named
// network namespace that is removed when the test ends.
package nstest

import (
	"fmt"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Namespace is a test's own network namespace.
type Namespace struct {
	Name   string // as listed by `ip netns`
	Handle netns.NsHandle
	// Netlink is a netlink handle bound to the namespace.
	Netlink *netlink.Handle
}

// New creates a network namespace named after prefix (at most 7 bytes)
// with its loopback up, and removes it in t.Cleanup.
func New(t testing.TB, prefix string) *Namespace {
	t.Helper()
	testenv.RequireRoot(t)
	name := testenv.UniqueName(prefix)
	type result struct {
		h   netns.NsHandle
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name) // switches this thread into it
		if serr := netns.Set(orig); serr != nil {
			res <- result{h, fmt.Errorf("switch back: %w", serr)} // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		res <- result{h, err}
	}()
	r := <-res
	if r.err != nil {
		if r.h.IsOpen() {
			r.h.Close()
			_ = netns.DeleteNamed(name)
		}
		t.Fatalf("create network namespace %s: %v", name, r.err)
	}
	ns := &Namespace{Name: name, Handle: r.h}
	t.Cleanup(func() {
		if ns.Netlink != nil {
			ns.Netlink.Close()
		}
		ns.Handle.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	nlh, err := netlink.NewHandleAt(r.h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns.Netlink = nlh
	lo, err := nlh.LinkByName("lo")
	if err != nil {
		t.Fatalf("%s: loopback: %v", name, err)
	}
	if err := nlh.LinkSetUp(lo); err != nil {
		t.Fatalf("%s: loopback up: %v", name, err)
	}
	return ns
}

// IP runs `ip -n <ns> args...` and fails the test on error; for setting up
// scenery that is tedious through netlink.
func (ns *Namespace) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", ns.Name, args, err, out)
	}
	return string(out)
}
