package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// The soak's growth bounds: after the warm-up, the median of the last
// third of the samples may exceed the median of the first third by at
// most Abs + Rel×(first median). Medians of thirds ignore the spikes of a
// renegotiation, a reconnect or a busy machine; a leak of one goroutine,
// descriptor or buffer per renegotiation (every 10 s) or per reconnect
// grows steadily and exceeds them within minutes.
var soakBounds = map[string]struct{ abs, rel float64 }{
	"helper goroutines":   {10, 0.10},
	"backends goroutines": {10, 0.10},
	"helper fds":          {8, 0},
	"backends fds":        {8, 0},
	"helper RSS KiB":      {16 << 10, 0.25},
	"backends RSS KiB":    {16 << 10, 0.25},
}

const (
	soakSessions     = 2
	soakSampleEvery  = 5 * time.Second
	soakRestartEvery = 60 * time.Second
)

// soakDuration is OVPN3GO_SOAK_DURATION (make soak DURATION=…) or 3 minutes.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("OVPN3GO_SOAK_DURATION")
	if s == "" {
		return 3 * time.Minute
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute {
		t.Fatalf("OVPN3GO_SOAK_DURATION=%q: want a duration of at least 1m", s)
	}
	return d
}

// TestSoak (issue 15 point 7): sessions with continuous traffic, the
// server renegotiating every 10 s (reneg-sec 10) and restarting every
// minute, for soakDuration; RSS, goroutines (the processes' own
// --runtime-stats log lines) and open descriptors of the helper and the
// backends are sampled every 5 s and may not grow beyond soakBounds. The
// sessions keep their backends, are connected at the end and pass
// traffic after the last restart.
func TestSoak(t *testing.T) {
	t.Parallel()
	d := soakDuration(t)
	bin := binaries(t)
	srvOpts := func(o *testbed.ServerOptions) {
		o.Extra = []string{"duplicate-cn", "reneg-sec 10", "keepalive 2 10"}
	}
	st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
		srvOpts(&o.Server)
		o.HelperArgs = append(o.HelperArgs, "--runtime-stats", "1s")
	})
	w := watch(t, st)
	var paths []dbus.ObjectPath
	var backends []int
	for i := range soakSessions {
		name := fmt.Sprintf("e2e-soak-%d", i)
		importProfile(t, st, testbed.VariantA, name)
		p := connect(t, st, w, name)
		waitConnected(t, st, p, "connect")
		paths = append(paths, p)
		backends = append(backends, int(backendPID(t, st, p)))
	}
	var helperPID uint32
	if err := st.Conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, api.ServiceSessions).Store(&helperPID); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		soakTraffic(ctx, st.Pair, &ok, &failed)
	}()
	defer wg.Wait()
	defer cancel()

	type sample struct {
		at time.Duration
		v  map[string]float64
	}
	var samples []sample
	start := time.Now()
	nextRestart := soakRestartEvery
	restarts := 0
	srvOptions := testbed.ServerOptions{PKI: st.PKI}
	srvOpts(&srvOptions)
	for time.Since(start) < d {
		time.Sleep(soakSampleEvery)
		at := time.Since(start)
		v, err := soakSample(st.Helper.LogPath, int(helperPID), backends)
		if err != nil {
			t.Fatalf("sample at %v: %v", at.Round(time.Second), err)
		}
		samples = append(samples, sample{at, v})
		t.Logf("%4ds  helper: %3.0f goroutines %3.0f fds %6.0f KiB  backends: %3.0f goroutines %3.0f fds %6.0f KiB", int(at.Seconds()),
			v["helper goroutines"], v["helper fds"], v["helper RSS KiB"], v["backends goroutines"], v["backends fds"], v["backends RSS KiB"])
		if at >= nextRestart && at+soakRestartEvery/2 < d {
			if err := st.Server.Stop(5 * time.Second); err != nil {
				t.Logf("server stop: %v", err)
			}
			st.Server = testbed.ServerWith(t, st.Pair, testbed.VariantA, srvOptions)
			restarts++
			nextRestart += soakRestartEvery
		}
	}
	okBefore := ok.Load()
	for _, p := range paths {
		waitConnected(t, st, p, "the soak")
	}
	if err := testbed.Ping(t.Context(), st.Pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("ping after the soak: %v", err)
	}
	for i, p := range paths {
		if b := int(backendPID(t, st, p)); b != backends[i] {
			t.Errorf("session %s: backend %d replaced by %d", p, backends[i], b)
		}
	}
	cancel()
	wg.Wait()
	t.Logf("soak %v: %d sessions, %d server restarts, %d transfers through the tunnels (%d failed, around the restarts), %d samples",
		d, soakSessions, restarts, ok.Load(), failed.Load(), len(samples))
	if okBefore == 0 {
		t.Errorf("no traffic passed during the soak")
	}

	// Growth: median of the first and the last third after the warm-up.
	warm := d / 6
	var steady []sample
	for _, s := range samples {
		if s.at >= warm {
			steady = append(steady, s)
		}
	}
	if len(steady) < 6 {
		t.Fatalf("%d samples after the warm-up: too few to judge", len(steady))
	}
	third := len(steady) / 3
	for _, name := range slices.Sorted(mapKeys(soakBounds)) {
		b := soakBounds[name]
		var first, last []float64
		for _, s := range steady[:third] {
			first = append(first, s.v[name])
		}
		for _, s := range steady[len(steady)-third:] {
			last = append(last, s.v[name])
		}
		f, l := median(first), median(last)
		bound := b.abs + b.rel*f
		t.Logf("%-20s first third %10.0f  last third %10.0f  growth %+8.0f  (bound %.0f)", name, f, l, l-f, bound)
		if l-f > bound {
			t.Errorf("%s grew from %.0f to %.0f over the soak (bound %.0f)", name, f, l, bound)
		}
	}
	disconnectAll(t.Context(), t, st, w, paths...)
}

// disconnectAll disconnects the sessions, waits until each is destroyed
// and then until nothing of them is left in the client namespace.
func disconnectAll(ctx context.Context, t *testing.T, st *testbed.Stack, w *testbed.Watcher, paths ...dbus.ObjectPath) {
	t.Helper()
	for _, p := range paths {
		if _, err := st.CLI(ctx, "session-manage", "--path", string(p), "--disconnect"); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(p, api.SessionEventDestroyed))
	}
	waitClean(t, st.Pair, 10*time.Second)
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// soakTraffic sends 256 KiB through the tunnel to the server's LAN host
// over and over until ctx ends; a transfer that fails (the server is
// restarting) is counted and retried.
func soakTraffic(ctx context.Context, pair *testbed.Pair, ok, failed *atomic.Int64) {
	var ln net.Listener
	if err := testbed.InNamespace(pair.ServerNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(testbed.LANHost4, "5202"))
		return err
	}); err != nil {
		failed.Add(1)
		return
	}
	defer ln.Close()
	go func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	for ctx.Err() == nil {
		var c net.Conn
		err := testbed.InNamespace(pair.ClientNS, func() (err error) {
			c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			return err
		})
		if err == nil {
			c.SetDeadline(time.Now().Add(15 * time.Second))
			_, err = io.CopyN(c, zeroReader{}, 256<<10)
			c.Close()
		}
		if err != nil {
			failed.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		ok.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// statsLine is a --runtime-stats line, the helper's own or a backend's
// (quoted inside the helper's "backend" line).
var statsLine = regexp.MustCompile(`runtime stats\\?" pid=(\d+) goroutines=(\d+)`)

// soakSample reads the RSS and descriptors of the helper and the
// backends from /proc and their latest goroutine counts from the log.
func soakSample(logPath string, helper int, backends []int) (map[string]float64, error) {
	v := map[string]float64{}
	log, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	goroutines := map[int]float64{}
	for _, m := range statsLine.FindAllSubmatch(log, -1) {
		pid, _ := strconv.Atoi(string(m[1]))
		n, _ := strconv.Atoi(string(m[2]))
		goroutines[pid] = float64(n)
	}
	for _, p := range append([]int{helper}, backends...) {
		who := "backends "
		if p == helper {
			who = "helper "
		}
		g, ok := goroutines[p]
		if !ok {
			return nil, fmt.Errorf("no runtime stats of pid %d in the helper log", p)
		}
		v[who+"goroutines"] += g
		rss, err := procRSS(p)
		if err != nil {
			return nil, err
		}
		v[who+"RSS KiB"] += rss
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			return nil, fmt.Errorf("descriptors of pid %d: %w", p, err)
		}
		v[who+"fds"] += float64(len(fds))
	}
	return v, nil
}

func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}
