package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Addresses of the test bed. They are the same in every pair: each pair
// lives in its own namespaces, so parallel tests do not collide.
const (
	ServerIP4     = "198.18.0.1" // server end of the veth
	ServerIP6     = "2001:2::1"
	ClientIP4     = "198.18.0.2" // client end of the veth
	ClientIP6     = "2001:2::2"
	LANHost4      = "198.19.1.1" // "LAN host" on the server's lo, reached over the pushed route
	LANHost6      = "2001:2:0:9::1"
	TunnelNet4    = "198.19.0.0"
	TunnelServer4 = "198.19.0.1" // the server's tunnel address
	TunnelNet6    = "2001:2:0:8::/64"
	TunnelServer6 = "2001:2:0:8::1"
	Port          = 1194
)

// Pair is two network namespaces joined by a veth pair.
type Pair struct {
	ServerNS, ClientNS     string // names under /run/netns
	ServerLink, ClientLink string // veth ends, inside their namespaces
}

// NewNetPair creates a uniquely named namespace pair and configures it like
// the test bed: veth addresses, lo up, the LAN host on the server's lo,
// forwarding on in the server namespace, DAD off. Close deletes it.
func NewNetPair(ctx context.Context) (*Pair, error) {
	id := strings.TrimPrefix(testenv.UniqueName("x"), "x") // 8 hex digits
	p := &Pair{
		ServerNS:   "ovtb-" + id + "-srv",
		ClientNS:   "ovtb-" + id + "-cli",
		ServerLink: "vs" + id,
		ClientLink: "vc" + id,
	}
	if err := ipBatch(ctx, "",
		"netns add "+p.ServerNS,
		"netns add "+p.ClientNS,
	); err != nil {
		return nil, fmt.Errorf("create namespaces: %w", err)
	}
	if err := p.setup(ctx); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

func (p *Pair) setup(ctx context.Context) error {
	if err := ipBatch(ctx, "",
		fmt.Sprintf("link add %s netns %s type veth peer name %s netns %s",
			p.ServerLink, p.ServerNS, p.ClientLink, p.ClientNS),
	); err != nil {
		return fmt.Errorf("create veth: %w", err)
	}
	// sysctls before addresses, so no address ever goes through DAD.
	for _, ns := range []string{p.ServerNS, p.ClientNS} {
		sysctls := map[string]string{
			"net/ipv6/conf/all/accept_dad":     "0",
			"net/ipv6/conf/default/accept_dad": "0",
		}
		if ns == p.ServerNS {
			sysctls["net/ipv4/ip_forward"] = "1"
			sysctls["net/ipv6/conf/all/forwarding"] = "1"
		}
		if err := InNamespace(ns, func() error { return writeSysctls(sysctls) }); err != nil {
			return err
		}
	}
	if err := ipBatch(ctx, p.ServerNS,
		"link set lo up",
		"addr add "+ServerIP4+"/24 dev "+p.ServerLink,
		"addr add "+ServerIP6+"/64 dev "+p.ServerLink+" nodad",
		"link set "+p.ServerLink+" up",
		"addr add "+LANHost4+"/32 dev lo",
		"addr add "+LANHost6+"/128 dev lo nodad",
	); err != nil {
		return fmt.Errorf("configure %s: %w", p.ServerNS, err)
	}
	if err := ipBatch(ctx, p.ClientNS,
		"link set lo up",
		"addr add "+ClientIP4+"/24 dev "+p.ClientLink,
		"addr add "+ClientIP6+"/64 dev "+p.ClientLink+" nodad",
		"link set "+p.ClientLink+" up",
	); err != nil {
		return fmt.Errorf("configure %s: %w", p.ClientNS, err)
	}
	return nil
}

func writeSysctls(m map[string]string) error {
	for k, v := range m {
		// /proc/sys/net resolves to the namespace of the calling thread.
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// ipBatch runs iproute2 commands in one `ip -batch -` process, inside
// namespace ns when it is not empty.
func ipBatch(ctx context.Context, ns string, cmds ...string) error {
	args := []string{}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close deletes both namespaces and with them the veth pair and anything
// else configured inside. Processes still running inside keep their
// namespace alive; stop them first (t.Cleanup order does that for the
// harness's own processes, which are registered after the pair).
func (p *Pair) Close() error {
	var errs []error
	for _, ns := range []string{p.ClientNS, p.ServerNS} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// NetPair is NewNetPair for tests: it needs root and iproute2, fails the
// test on error and deletes the pair in t.Cleanup.
func NetPair(t testing.TB) *Pair {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewNetPair(ctx)
	if err != nil {
		t.Fatalf("NetPair: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("NetPair cleanup: %v", err)
		}
	})
	return p
}

// Command returns a command that runs name inside namespace ns through
// `ip netns exec` (which execs, so the command's PID is the program's).
func Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Run runs a command inside namespace ns and returns its combined output;
// the error includes that output.
func Run(ctx context.Context, ns, name string, args ...string) (string, error) {
	out, err := Command(ctx, ns, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %w: %s", ns, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// InNamespace runs fn with the calling goroutine's work moved to an OS
// thread that is switched into network namespace ns, and waits for it.
//
// Caveats, because namespaces belong to OS threads, not goroutines:
//   - fn runs on its own goroutine locked to that thread; goroutines fn
//     starts run on other threads, in the process's original namespace.
//   - Sockets (and netlink handles) created inside fn stay in ns for their
//     whole life, so the usual pattern is: create the listener or dial the
//     connection inside fn, use it from anywhere afterwards.
//   - fn must not call t.FailNow/t.Fatal (wrong goroutine); return an error.
//   - Only the network namespace changes: /sys still shows the original
//     namespace (use `ip netns exec` for programs that read /sys).
//   - If switching back fails, the thread is left locked and is discarded
//     by the runtime when the goroutine ends, so it never serves other code.
func InNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime kills this thread when we return.
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
