package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestSmoke runs make bench's code path with one pair, one-second iperf3
// runs and two tests, so it cannot rot; it checks that every figure was
// measured and the backend's CPU profile saved, never how fast anything is.
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
	res, err := Run(ctx, Options{Bin: bin, Dir: t.TempDir(), Pairs: 1, Duration: 1, Profile: prof,
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
		}
	}
	// The milestones happen in this order (each is caused by the one
	// before); none may be missing.
	g := res.Samples[OVPN3GO][0]
	for i, p := range Phases[1:] {
		if prev := Phases[i]; g.Phases[p] <= 0 || g.Phases[p] < g.Phases[prev] {
			t.Errorf("milestones %v: %s not after %s", g.Phases, p, prev)
		}
	}
	if g.Start.Connected <= 0 || g.Start.Exit <= 0 || len(g.Start.Calls) == 0 {
		t.Errorf("session start: connected after %v, CLI exit after %v, %d calls: not measured", g.Start.Connected, g.Start.Exit, len(g.Start.Calls))
	}
	if h, i := g.Helper, g.HelperIdle; h.RSS <= 0 || h.Anon <= 0 || h.PSS <= 0 || i.RSS <= 0 || i.Anon <= 0 {
		t.Errorf("helper memory %+v, without a session %+v: not measured", h, i)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof profiles are gzipped
		t.Errorf("backend CPU profile (%d bytes) is not a gzipped pprof profile", len(b))
	}
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| throughput tcp-up-1 | Mbit/s |", "| client CPU udp-up-20M | CPU-s/GB |", "| client context switches tcp-up-1 | per MB |", "| connect | ms |", "| connect: handshake on the wire | ms |", "| NewTunnel → connected | ms |", "| client RSS once connected | MB |", "| client PSS | MB |", "| client RSS after the traffic | MB |", "| client RSS of its program file | MB |", "| helper PSS | MB | ", "Machine: "} {
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
