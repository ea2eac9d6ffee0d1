// Command demo shows ovpn3go working end to end on one machine, as root:
// it creates two network namespaces, a throwaway PKI, the Debian OpenVPN
// 2.6 server (test-bed variant a) in one namespace and a private
// system-like D-Bus, starts ovpn3-helper in the other namespace, imports
// the profile and starts a session with the ovpn3 CLI, then prints the
// session's status and statistics every second while a ping and a small
// TCP stream run through the tunnel. Ctrl-C (or --duration) disconnects
// and removes everything it created, then prints a one-line summary.
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
	binDir := flag.String("bin", "bin", "directory holding ovpn3-helper, ovpn3-backend and ovpn3")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	keep := flag.Bool("keep", false, "keep the scratch directory (logs, configs) after exit")
	flag.Parse()
	restore := takeForeground()
	code := demo(*binDir, *duration, *keep)
	restore()
	os.Exit(code)
}

// errInterrupted: Ctrl-C before the session was up.
var errInterrupted = errors.New("interrupted before the session was connected")

// demo runs the demo and returns the exit status. Its children (bus,
// server, helper, CLI runs, ping) are in process groups of their own, so a
// terminal's Ctrl-C reaches only this process, which then disconnects the
// session and tears everything down in order. The last line is a one-line
// summary, or on failure a few lines saying what failed and where the
// full log is (the scratch directory is kept then).
func demo(binDir string, duration time.Duration, keep bool) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces, TUN devices)")
		return 1
	}
	dir, err := os.MkdirTemp("", "ovpn3go-demo-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	logPath := filepath.Join(dir, "demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	d := &run{dir: dir, log: slog.New(slog.NewTextHandler(logFile, nil))}

	summary, err := d.run(binDir, duration)
	if err != nil {
		d.log.Error("demo failed", "err", err)
	}
	logFile.Close()
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Println("demo: " + err.Error() + "; everything it had started is torn down")
		os.RemoveAll(dir)
		return 130
	case err != nil:
		fmt.Fprintf(os.Stderr, "demo failed: %s\nfull log: %s (helper.log and server/server.log beside it)\n",
			fewLines(err.Error(), 4), logPath)
		return 1
	}
	if keep {
		fmt.Printf("scratch directory kept: %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	fmt.Println(summary)
	return 0
}

// fewLines keeps the first n lines of s (each cut at 200 bytes).
func fewLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	for i, l := range lines {
		if len(l) > 200 {
			lines[i] = l[:200] + "…"
		}
	}
	return strings.Join(lines, "\n  ")
}

type run struct {
	dir string
	log *slog.Logger // demo.log in dir: every step, full errors
}

// step wraps err with what the demo was doing.
func step(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (d *run) run(binDir string, duration time.Duration) (summary string, err error) {
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return "", err
	}
	bin := testbed.BinariesIn(abs)
	for _, p := range []string{bin.Helper, bin.Backend, bin.CLI} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w (run make build first)", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop() // a second Ctrl-C during teardown is caught too, and ignored
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			d.log.Info("interrupted", "err", err)
			return errInterrupted
		}
		return err
	}

	t0 := time.Now()
	st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: bin, Dir: d.dir, Variant: testbed.VariantA, OwnProcessGroups: true})
	if err != nil {
		return "", interrupted(step("start namespaces, server, bus and helper", err))
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, step("tear down", cerr))
		} else {
			fmt.Println("torn down: namespaces, server, bus and helper are gone")
		}
	}()
	fmt.Printf("namespaces %s / %s, openvpn server (variant a) pid %d, private bus %s (dbus-daemon pid %d), ovpn3-helper pid %d — ready in %v\n",
		st.Pair.ServerNS, st.Pair.ClientNS, st.Server.PID(), st.Bus.Address, st.Bus.PID(), st.Helper.PID(), time.Since(t0).Round(time.Millisecond))

	// A fresh context for the steps that must run even after Ctrl-C. The
	// full output goes to demo.log, the helper's side is in helper.log.
	cli := func(timeout time.Duration, args ...string) error {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := st.CLI(c, args...)
		d.log.Info("ovpn3", "args", args, "output", out, "err", err)
		if err != nil {
			d.log.Info("helper log tail", "tail", st.Helper.LogTail(60))
		}
		return err
	}

	profile, err := st.WriteProfile(testbed.VariantA)
	if err != nil {
		return "", step("write the profile", err)
	}
	if err := cli(30*time.Second, "config-import", "--config", profile, "--name", profileName); err != nil {
		return "", step("import the profile", err)
	}
	t1 := time.Now()
	if err := cli(90*time.Second, "session-start", "--config", profileName); err != nil {
		return "", step("connect", err)
	}
	connectTime := time.Since(t1)
	defer func() {
		if derr := cli(30*time.Second, "session-manage", "--config", profileName, "--disconnect"); derr != nil {
			err = errors.Join(err, step("disconnect", derr))
		} else {
			fmt.Println("session disconnected")
		}
	}()
	fmt.Printf("connected in %d ms\n", connectTime.Milliseconds())
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	path, err := st.SessionByConfig(lctx, profileName)
	lcancel()
	if err != nil {
		return "", step("find the session", err)
	}

	traffic, err := startTraffic(st, d.dir)
	if err != nil {
		return "", step("start traffic through the tunnel", err)
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
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := st.Statistics(sctx, path)
			if err != nil {
				return "", step("read the session statistics", err)
			}
			return fmt.Sprintf("demo: connected in %d ms, moved %d bytes (in %d, out %d) in %v; disconnected and torn down",
				connectTime.Milliseconds(), m["BYTES_IN"]+m["BYTES_OUT"], m["BYTES_IN"], m["BYTES_OUT"], time.Since(start).Round(time.Second)), nil
		case <-st.Helper.Done():
			d.log.Info("helper log tail", "tail", st.Helper.LogTail(60))
			return "", fmt.Errorf("ovpn3-helper exited: %v", st.Helper.ExitErr())
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
	testbed.OwnProcessGroup(cmd)
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
