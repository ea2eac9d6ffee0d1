package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestSmoke runs make bench's code path with one pair, one-second iperf3
// runs and two tests, so it cannot rot; it checks that every figure was
// measured (by the production backend) and the backend's CPU profile saved
// from a profiling build's run of its own, never how fast anything is.
func TestSmoke(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"go", "ip", "openvpn", "iperf3", "dbus-daemon"} {
		testenv.RequireCommand(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := testbed.BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(t.TempDir(), "backend.pprof")
	res, err := Run(ctx, Options{Bin: bin, Dir: t.TempDir(), Pairs: 1, Duration: 1, Profile: prof, Polkitd: true, ConnectPairs: 1,
		Tests: []Test{{Name: "tcp-up-1", Streams: 1}, {Name: "udp-up-20M", Streams: 1, UDPRate: "20M"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{OVPN3GO, OpenVPN} {
		s := res.Samples[client]
		if len(s) != 1 {
			t.Fatalf("%s: %d samples, want 1", client, len(s))
		}
		if m, a := s[0].Mem, s[0].MemAfter; s[0].Connect <= 0 || m.RSS <= 0 || m.Anon <= 0 || m.PSS <= 0 || a.RSS <= 0 || a.Anon <= 0 {
			t.Errorf("%s: connect %v, memory %+v, after the traffic %+v: not measured", client, s[0].Connect, m, a)
		}
		// The handshake's packets: the client's reset first, then both
		// sides' turns, all within the connect.
		if w := s[0].Wire; w.FirstPacket <= 0 || w.LastControl <= w.FirstPacket || w.LastControl > w.End || w.Client <= 0 || w.Server <= 0 {
			t.Errorf("%s: handshake on the wire %+v (connect %v): not measured", client, w, s[0].Connect)
		}
		for _, name := range []string{"tcp-up-1", "udp-up-20M"} {
			if s[0].Mbps[name] <= 0 || s[0].CPUPerG[name] < 0 || s[0].SwitchPerM[name] <= 0 {
				t.Errorf("%s %s: %v Mbit/s, %v CPU-s/GB, %v context switches per MB: not measured", client, name, s[0].Mbps[name], s[0].CPUPerG[name], s[0].SwitchPerM[name])
			}
			// The server carried the traffic: it used some CPU (ticks of
			// 10 ms over a one-second run).
			if s[0].ServerCPU[name] <= 0 || s[0].IperfCPU[name] <= 0 {
				t.Errorf("%s %s: OpenVPN server %v %%, iperf3 server %v %% of a core: not measured", client, name, s[0].ServerCPU[name], s[0].IperfCPU[name])
			}
		}
	}
	// A connect-only pair: each client's connect and packets timed.
	for _, client := range []string{OVPN3GO, OpenVPN} {
		c := res.Connects[client]
		if len(c) != 1 {
			t.Fatalf("%s: %d connect-only samples, want 1", client, len(c))
		}
		if w := c[0].Wire; c[0].Connect <= 0 || w.FirstPacket <= 0 || w.LastControl <= w.FirstPacket {
			t.Errorf("%s connect-only: connect %v, handshake on the wire %+v: not measured", client, c[0].Connect, w)
		}
	}
	// The milestones happen in this order (each is caused by the one
	// before); none may be missing.
	for _, g := range []Sample{res.Samples[OVPN3GO][0], res.Connects[OVPN3GO][0]} {
		for i, p := range Phases[1:] {
			if prev := Phases[i]; g.Phases[p] <= 0 || g.Phases[p] < g.Phases[prev] {
				t.Errorf("milestones %v: %s not after %s", g.Phases, p, prev)
			}
		}
	}
	g := res.Samples[OVPN3GO][0]
	if g.Start.Connected <= 0 || g.Start.Exit <= 0 || len(g.Start.Calls) == 0 {
		t.Errorf("session start: connected after %v, CLI exit after %v, %d calls: not measured", g.Start.Connected, g.Start.Exit, len(g.Start.Calls))
	}
	if h, i := g.Helper, g.HelperIdle; h.RSS <= 0 || h.Anon <= 0 || h.PSS <= 0 || i.RSS <= 0 || i.Anon <= 0 {
		t.Errorf("helper memory %+v, without a session %+v: not measured", h, i)
	}
	// Every figure is the production backend's: the program BuildBinaries
	// built, started without the profiler.
	exe, err := filepath.EvalSymlinks(bin.Backend)
	if err != nil {
		t.Fatal(err)
	}
	if g.Exe != exe || len(g.Args) == 0 || slices.ContainsFunc(g.Args, func(a string) bool { return strings.Contains(a, "cpuprofile") }) {
		t.Errorf("measured backend %s %q: want the production build %s without --cpuprofile-dir", g.Exe, g.Args, exe)
	}
	// The profile, from a run of its own, is a CPU profile pprof reads
	// whose samples include the data path.
	if res.Profile != prof {
		t.Errorf("results name the profile %q, want %q", res.Profile, prof)
	}
	raw, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-raw", prof).CombinedOutput()
	if err != nil || !strings.Contains(string(raw), "PeriodType: cpu nanoseconds") || !strings.Contains(string(raw), "ovpn3go/helper/openvpn/dataplane.") {
		t.Errorf("backend CPU profile: go tool pprof -raw: %v; want a CPU profile with the data plane in its samples:\n%.2000s", err, raw)
	}
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| throughput tcp-up-1 | Mbit/s |", "| client CPU udp-up-20M | CPU-s/GB |", "| client context switches tcp-up-1 | per MB |", "| OpenVPN 2.6 server CPU tcp-up-1 | % of a core |", "| iperf3 server CPU udp-up-20M | % of a core |", "| connect | ms |", "| connect: handshake on the wire | ms |", "| NewTunnel → connected | ms |", "| client RSS once connected | MB |", "| client PSS | MB |", "| client RSS after the traffic | MB |", "| client RSS of its program file | MB |", "| helper PSS | MB | ", "Machine: ", "none of that session's measurements is in this table", "A polkitd runs on the private bus"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("results lack %q:\n%s", want, md.String())
		}
	}
}

// procMem reads the program file's resident pages apart from the shared
// libraries' and the anonymous ones, which together stay within the RSS.
func TestProcMem(t *testing.T) {
	m, err := procMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Anon <= 0 || m.PSS <= 0 || m.Program <= 0 || m.Program+m.Libs+m.Anon > m.RSS+m.RSS/10 {
		t.Errorf("memory %+v: program and libraries not measured, or more than the RSS", m)
	}
}

// childrenMem finds a child process however it was started: a sleep
// started here is one.
func TestChildrenMem(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(100 * time.Millisecond) // its execve
	m, err := childrenMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	own, err := procMem(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS < own.RSS || own.RSS <= 0 {
		t.Errorf("children's RSS %d, the sleep's alone %d", m.RSS, own.RSS)
	}
}

func TestMedianAndRatio(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median(3,1,2) = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median(4,1,3,2) = %v", m)
	}
	r := &Results{Tests: []Test{{Name: "x"}}, Samples: map[string][]Sample{
		OVPN3GO: {{Mbps: map[string]float64{"x": 300}}, {Mbps: map[string]float64{"x": 500}}, {Mbps: map[string]float64{"x": 400}}},
		OpenVPN: {{Mbps: map[string]float64{"x": 200}}, {Mbps: map[string]float64{"x": 100}}, {Mbps: map[string]float64{"x": 900}}},
	}}
	row := r.Rows()[0]
	if row.OVPN3GO != 400 || row.Open != 200 || row.Ratio() != 2 {
		t.Errorf("row %+v ratio %v, want medians 400 and 200, ratio 2", row, row.Ratio())
	}
}

// The front-end connect row sets ovpn3go's NewTunnel → CONN_CONNECTED
// against openvpn's fork → connected: neither its CLI's nor its own
// process start figure.
func TestFrontEndConnectRow(t *testing.T) {
	r := &Results{Samples: map[string][]Sample{
		OVPN3GO: {{Connect: 60 * time.Millisecond, Phases: map[Phase]time.Duration{PhaseConnected: 20 * time.Millisecond}}},
		OpenVPN: {{Connect: 40 * time.Millisecond}},
	}}
	for _, row := range r.Rows() {
		if strings.HasPrefix(row.Name, "connect from a running front-end") {
			if row.OVPN3GO != 20 || row.Open != 40 || row.Ratio() != 0.5 {
				t.Errorf("row %+v ratio %v, want 20 and 40 ms, ratio 0.5", row, row.Ratio())
			}
			return
		}
	}
	t.Fatal("no front-end connect row")
}

// The connect-only pairs' starts count in the connect rows (medians of
// all starts), never in the throughput or memory rows.
func TestConnectOnlyStarts(t *testing.T) {
	conn := func(ms int, mbps float64) Sample {
		d := time.Duration(ms) * time.Millisecond
		return Sample{Connect: d, Phases: map[Phase]time.Duration{PhaseConnected: d / 2}, Mbps: map[string]float64{"x": mbps}, Mem: Mem{RSS: int64(mbps)}}
	}
	r := &Results{Tests: []Test{{Name: "x"}},
		Samples:  map[string][]Sample{OVPN3GO: {conn(90, 500)}, OpenVPN: {conn(80, 400)}},
		Connects: map[string][]Sample{OVPN3GO: {{Connect: 20 * time.Millisecond, Phases: map[Phase]time.Duration{PhaseConnected: 10 * time.Millisecond}}, {Connect: 30 * time.Millisecond, Phases: map[Phase]time.Duration{PhaseConnected: 15 * time.Millisecond}}}, OpenVPN: {{Connect: 40 * time.Millisecond}, {Connect: 50 * time.Millisecond}}},
	}
	want := map[string][2]float64{
		"throughput x": {500, 400},
		"connect":      {30, 50},
		"connect from a running front-end, NewTunnel → CONN_CONNECTED": {15, 50},
		"NewTunnel → connected": {15, 0},
		"… of the pairs' starts alone (after the other client's traffic)": {45, 80},
		"client RSS once connected":                                       {500e-6, 400e-6},
	}
	for _, row := range r.Rows() {
		if w, ok := want[row.Name]; ok {
			if row.OVPN3GO != w[0] || row.Open != w[1] {
				t.Errorf("%s: %v and %v, want %v and %v", row.Name, row.OVPN3GO, row.Open, w[0], w[1])
			}
			delete(want, row.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("rows missing: %v", want)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "2 more starts of each") || !strings.Contains(md.String(), "medians of 3") {
		t.Errorf("results do not say how many starts the connect rows have:\n%.600s", md.String())
	}
}

func TestParseIperf(t *testing.T) {
	tcp := `{"end":{"sum_received":{"bytes":1000000000,"bits_per_second":8e8}}}`
	if b, bps, err := parseIperf(tcp, false); err != nil || b != 1e9 || bps != 8e8 {
		t.Errorf("tcp: %v %v %v", b, bps, err)
	}
	udp := `{"end":{"sum":{"bytes":1000,"bits_per_second":100,"packets":10,"lost_packets":1}}}`
	if b, bps, err := parseIperf(udp, true); err != nil || b != 900 || bps != 90 {
		t.Errorf("udp: %v %v %v, want 900 bytes at 90 bit/s (10%% lost)", b, bps, err)
	}
	if _, _, err := parseIperf(`{"error":"unable to connect"}`, false); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("iperf3 error not reported: %v", err)
	}
}

// contextSwitches counts the switches of every thread: a process that
// slept has switched more than before.
func TestContextSwitches(t *testing.T) {
	w0, err := contextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	w1, err := contextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if w0 <= 0 || w1 <= w0 {
		t.Errorf("context switches %d, then %d after a sleep: want a positive count that grew", w0, w1)
	}
	if _, err := contextSwitches(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// statCPUSeconds adds utime and stime (fields 14 and 15) in clock ticks,
// counting fields after the last ')' of a command name with spaces and
// parentheses.
func TestStatCPUSeconds(t *testing.T) {
	stat := "4242 (open vpn) (x)) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 125 0 0 20 0 1 0 900 10000000 2000 18446744073709551615"
	if sec, err := statCPUSeconds(stat); err != nil || sec != 3.75 {
		t.Errorf("statCPUSeconds = %v, %v; want 3.75 s (250+125 ticks)", sec, err)
	}
	for _, bad := range []string{"4242 no name S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 lots 125 0"} {
		if _, err := statCPUSeconds(bad); err == nil {
			t.Errorf("statCPUSeconds(%q): no error", bad)
		}
	}
	if sec, err := cpuSeconds(os.Getpid()); err != nil || sec < 0 {
		t.Errorf("cpuSeconds(own pid) = %v, %v", sec, err)
	}
}

func TestCoreShare(t *testing.T) {
	for _, c := range []struct {
		cpu0, cpu1 float64
		wall       time.Duration
		want       float64
	}{
		{10, 19.5, 10 * time.Second, 95},
		{2, 2, 5 * time.Second, 0},
		{1, 3, time.Second, 200}, // two threads busy
		{1, 2, 0, 0},
	} {
		if got := coreShare(c.cpu0, c.cpu1, c.wall); got != c.want {
			t.Errorf("coreShare(%v, %v, %v) = %v, want %v", c.cpu0, c.cpu1, c.wall, got, c.want)
		}
	}
}

// The server counts as the limit of a test where its median share of a
// core reaches ServerBound, per client, and the results say so.
func TestServerLimited(t *testing.T) {
	cpu := func(up, down float64) Sample {
		return Sample{ServerCPU: map[string]float64{"up": up, "down": down}}
	}
	r := &Results{Tests: []Test{{Name: "up"}, {Name: "down", Reverse: true}}, Samples: map[string][]Sample{
		OVPN3GO: {cpu(99, 50), cpu(97, 95), cpu(40, 60)}, // medians 97, 60
		OpenVPN: {cpu(80, 91), cpu(85, 92), cpu(95, 20)}, // medians 85, 91
	}}
	lim := r.ServerLimited()
	if !slices.Equal(lim[OVPN3GO], []string{"up"}) || !slices.Equal(lim[OpenVPN], []string{"down"}) {
		t.Errorf("server-limited tests %v, want ovpn3go: up, openvpn: down", lim)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| OpenVPN 2.6 server CPU up | % of a core | 97.0 | 85.0 |", "with ovpn3go in up; with openvpn in down: there the server, not the client, is the limit"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("results lack %q:\n%s", want, md.String())
		}
	}
	r.Samples = map[string][]Sample{OVPN3GO: {cpu(10, 10)}, OpenVPN: {cpu(10, 10)}}
	if lim := r.ServerLimited(); len(lim) != 0 || !strings.Contains(r.limitNote(), "not the limit") {
		t.Errorf("at 10 %% of a core: limited %v, note %q", lim, r.limitNote())
	}
}
