// Command demo shows ovpn3go working end to end on one machine, as root:
// it creates two network namespaces, a throwaway PKI, the Debian OpenVPN
// 2.6 server (test-bed variant a) in one namespace and a private
// system-like D-Bus, starts ovpn3-helper in the other namespace, imports
// the profile and starts a session with the ovpn3 CLI, then prints the
// session's status and statistics every second while a ping and a small
// TCP stream run through the tunnel. Ctrl-C (or --duration) disconnects
// and removes everything it created.
//
//	make demo                         # builds bin/ and runs this
//	bin/ovpn3go-demo --bin bin --duration 20s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

const profileName = "demo-a"

func main() {
	binDir := flag.String("bin", "bin", "directory holding ovpn3-helper and ovpn3")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	keep := flag.Bool("keep", false, "keep the scratch directory (logs, configs) after exit")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*binDir, *duration, *keep); err != nil {
		log.Error("demo failed", "err", err)
		os.Exit(1)
	}
}

func run(binDir string, duration time.Duration, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (network namespaces, TUN devices)")
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	bin := testbed.Binaries{Helper: filepath.Join(abs, "ovpn3-helper"), CLI: filepath.Join(abs, "ovpn3")}
	for _, p := range []string{bin.Helper, bin.CLI} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run make build first)", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}

	dir, err := os.MkdirTemp("", "ovpn3go-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Printf("scratch directory kept: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	t0 := time.Now()
	st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: bin, Dir: dir, Variant: testbed.VariantA})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", cerr))
		} else {
			fmt.Println("torn down: namespaces, server, bus and helper are gone")
		}
	}()
	fmt.Printf("namespaces %s / %s, openvpn server (variant a) pid %d, private bus %s, ovpn3-helper pid %d — ready in %v\n",
		st.Pair.ServerNS, st.Pair.ClientNS, st.Server.PID(), st.Bus.Address, st.Helper.PID(), time.Since(t0).Round(time.Millisecond))

	// A fresh context for the steps that must run even after Ctrl-C.
	cli := func(timeout time.Duration, args ...string) (string, error) {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := st.CLI(c, args...)
		if err != nil {
			return out, fmt.Errorf("%w\nhelper log tail:\n%s", err, st.Helper.LogTail(30))
		}
		return out, nil
	}

	profile, err := st.WriteProfile(testbed.VariantA)
	if err != nil {
		return err
	}
	if _, err := cli(30*time.Second, "config-import", "--config", profile, "--name", profileName); err != nil {
		return err
	}
	t1 := time.Now()
	if _, err := cli(90*time.Second, "session-start", "--config", profileName); err != nil {
		return err
	}
	fmt.Printf("session-start returned after %v\n", time.Since(t1).Round(time.Millisecond))
	defer func() {
		if _, derr := cli(30*time.Second, "session-manage", "--config", profileName, "--disconnect"); derr != nil {
			err = errors.Join(err, derr)
		} else {
			fmt.Println("session disconnected")
		}
	}()
	path, err := st.SessionByConfig(ctx, profileName)
	if err != nil {
		return err
	}

	traffic, err := startTraffic(st, dir)
	if err != nil {
		return err
	}
	defer traffic.stop()

	fmt.Printf("session %s; traffic: ping %s and a TCP stream to %s:5201 (Ctrl-C to stop)\n", path, testbed.LANHost4, testbed.LANHost4)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("stopping")
			return nil
		case <-st.Helper.Done():
			return fmt.Errorf("ovpn3-helper exited: %v\n%s", st.Helper.ExitErr(), st.Helper.LogTail(30))
		case <-tick.C:
			fmt.Printf("%4ds  %s  %s  stream %d KiB\n", int(time.Since(start).Seconds()),
				status(ctx, st, path), stats(ctx, st, path), traffic.sent()>>10)
		}
	}
}

func status(ctx context.Context, st *testbed.Stack, path dbus.ObjectPath) string {
	v, err := st.SessionProperty(ctx, path, "status")
	if err != nil {
		return "status: " + err.Error()
	}
	var s struct {
		Major, Minor uint32
		Message      string
	}
	if err := dbus.Store([]any{v.Value()}, &s); err != nil {
		return fmt.Sprintf("status %v", v)
	}
	out := fmt.Sprintf("%s, %s", api.StatusMajor(s.Major), api.StatusMinor(s.Minor))
	if s.Message != "" {
		out += ": " + s.Message
	}
	return out
}

func stats(ctx context.Context, st *testbed.Stack, path dbus.ObjectPath) string {
	m, err := st.Statistics(ctx, path)
	if err != nil {
		return "statistics: " + err.Error()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// traffic is a ping process plus a paced TCP stream through the tunnel.
type traffic struct {
	ping      *testbed.Process
	ln        net.Listener
	conn      net.Conn
	sentBytes atomic.Int64
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the sender and receiver goroutines
}

func startTraffic(st *testbed.Stack, dir string) (*traffic, error) {
	cmd := testbed.Command(context.Background(), st.Pair.ClientNS, "ping", "-n", "-i", "0.5", testbed.LANHost4)
	ping, err := testbed.StartProcess("ping", filepath.Join(dir, "ping.log"), cmd)
	if err != nil {
		return nil, err
	}
	tr := &traffic{ping: ping}
	if err := testbed.InNamespace(st.Pair.ServerNS, func() (err error) {
		tr.ln, err = net.Listen("tcp", net.JoinHostPort(testbed.LANHost4, "5201"))
		return err
	}); err != nil {
		ping.Stop(time.Second)
		return nil, err
	}
	if err := testbed.InNamespace(st.Pair.ClientNS, func() (err error) {
		tr.conn, err = net.DialTimeout("tcp", tr.ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		ping.Stop(time.Second)
		tr.ln.Close()
		return nil, fmt.Errorf("TCP stream through the tunnel: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	tr.wg.Add(2)
	go func() { // receiver: ends at EOF or when stopped
		defer tr.wg.Done()
		c, err := tr.ln.Accept()
		if err != nil {
			return
		}
		defer context.AfterFunc(ctx, func() { c.Close() })()
		io.Copy(io.Discard, c)
		c.Close()
	}()
	go func() { // sender: 64 KiB every 100 ms (~5 Mbit/s) until stopped or broken
		defer tr.wg.Done()
		buf := make([]byte, 64<<10)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				tr.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				n, err := tr.conn.Write(buf)
				tr.sentBytes.Add(int64(n))
				if err != nil {
					return // the printed count stops growing
				}
			}
		}
	}()
	return tr, nil
}

func (tr *traffic) sent() int64 { return tr.sentBytes.Load() }

func (tr *traffic) stop() {
	tr.cancel()
	tr.conn.Close()
	tr.ln.Close()
	tr.wg.Wait()
	tr.ping.Stop(time.Second)
}
