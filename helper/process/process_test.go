package process

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRuntimeStats: --runtime-stats parses, and a process logs its
// goroutine count and memory classes in the form the soak test (e2e
// TestSoak, which also shows the backends get the flag) reads.
func TestRuntimeStats(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	LogRuntimeStats(ctx, slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	if want := fmt.Sprintf(`msg="runtime stats" pid=%d goroutines=`, os.Getpid()); !strings.Contains(logs.String(), want) {
		t.Errorf("runtime stats logged %q, want %q", logs.String(), want)
	}
	// Where the anonymous memory goes, as the runtime sees it.
	if strings.Contains(logs.String(), " threads=0 ") || !strings.Contains(logs.String(), " threads=") {
		t.Errorf("runtime stats %q lack the thread count", logs.String())
	}
	for _, m := range memStats {
		if !strings.Contains(logs.String(), " "+m.key+"=") {
			t.Errorf("runtime stats %q lack %s", logs.String(), m.key)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	d := StatsFlag(fs)
	if err := fs.Parse([]string{"--runtime-stats", "2s"}); err != nil || *d != 2*time.Second {
		t.Errorf("--runtime-stats 2s: %v, %v", *d, err)
	}
}

// The openvpn3 levels 0..6 map onto slog's four levels: 0 and 1 errors
// only, 2 warnings, 3 and 4 information, 5 and 6 debug.
func TestSlogLevel(t *testing.T) {
	want := []slog.Level{slog.LevelError, slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelInfo, slog.LevelDebug, slog.LevelDebug}
	for n, w := range want {
		if got := SlogLevel(n); got != w {
			t.Errorf("SlogLevel(%d) = %v, want %v", n, got, w)
		}
	}
}
