package tray

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
)

func TestStatisticsFormatting(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {52428800, "50.0 MiB"}, {3 << 30, "3.0 GiB"}, {1 << 62, "4096.0 PiB"}} {
		if got := FormatBytes(c.n); got != c.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		bps  float64
		want string
	}{{0, "0 bit/s"}, {100, "800 bit/s"}, {125, "1.0 kbit/s"}, {1.5e6, "12.0 Mbit/s"}, {1.25e9, "10.0 Gbit/s"}} {
		if got := FormatRate(c.bps); got != c.want {
			t.Errorf("FormatRate(%v) = %q, want %q", c.bps, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0 s"}, {45 * time.Second, "45 s"}, {185 * time.Second, "3 min 05 s"}, {2*time.Hour + 7*time.Minute, "2 h 07 min"}, {76 * time.Hour, "3 d 4 h"}} {
		if got := FormatDuration(c.d); got != c.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestHistoryRates(t *testing.T) {
	h := History{Max: 3}
	t0 := time.Unix(1000, 0)
	if in, out := h.Add(t0, map[string]int64{"BYTES_IN": 100, "BYTES_OUT": 50}); in != 0 || out != 0 {
		t.Fatalf("first sample gives rates %v %v", in, out)
	}
	in, out := h.Add(t0.Add(2*time.Second), map[string]int64{"BYTES_IN": 2100, "BYTES_OUT": 1050})
	if in != 1000 || out != 500 {
		t.Fatalf("rates %v %v, want 1000 500", in, out)
	}
	// a restarted backend's counters start at zero: no negative rate
	if in, out := h.Add(t0.Add(3*time.Second), map[string]int64{"BYTES_IN": 10}); in != 0 || out != 0 {
		t.Fatalf("after reset %v %v", in, out)
	}
	h.Add(t0.Add(4*time.Second), map[string]int64{"BYTES_IN": 20})
	h.Add(t0.Add(5*time.Second), map[string]int64{"BYTES_IN": 30})
	if ins, _ := h.Samples(); len(ins) != 3 || ins[2] != 10 {
		t.Fatalf("samples %v, want the last 3", ins)
	}
}

// TestStatsView fills the window content from details and checks what a
// person reads.
func TestStatsView(t *testing.T) {
	test.NewTempApp(t)
	v := NewStatsView()
	test.NewTempWindow(t, v.Content)
	now := time.Now()
	d := Details{Server: "udp:198.18.0.1:1194", ConnectedAt: now.Add(-185 * time.Second),
		Stats: map[string]int64{"BYTES_IN": 1536, "BYTES_OUT": 52428800, "PACKETS_IN": 12, "PACKETS_OUT": 34}}
	v.Update(now.Add(-time.Second), Details{Stats: map[string]int64{"BYTES_IN": 536, "BYTES_OUT": 52428800 - 125000}}, "")
	v.Update(now, d, "AES-256-GCM")
	want := map[string]string{"server": "udp:198.18.0.1:1194", "cipher": "AES-256-GCM", "bytes_in": "1.5 KiB",
		"bytes_out": "50.0 MiB", "packets_in": "12", "packets_out": "34", "rate_in": "8.0 kbit/s", "rate_out": "1.0 Mbit/s"}
	for k, w := range want {
		if got := v.Values[k].Text; got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	if s := v.Values["since"].Text; !strings.HasSuffix(s, "(3 min 05 s)") {
		t.Errorf("since = %q", s)
	}
	if n := len(v.graph.Objects); n != 0 {
		// one sample so far: no line yet
		t.Errorf("graph has %d segments after one rate sample", n)
	}
	v.Update(now.Add(time.Second), d, "AES-256-GCM")
	if n := len(v.graph.Objects); n != 2 {
		t.Errorf("graph has %d segments after two samples, want 2 (in and out)", n)
	}
	v.Update(now, Details{Stats: map[string]int64{}}, "")
	if v.Values["since"].Text != "Not connected" || v.Values["cipher"].Text != "–" {
		t.Errorf("not connected: %q %q", v.Values["since"].Text, v.Values["cipher"].Text)
	}
}
