// Package process is what the helper's two long-lived programs, the daemon
// (ovpn3-helper) and the per-session backend (ovpn3-backend), set up the
// same way: the openvpn3 log level flag, the runtime statistics log of
// --runtime-stats, the steady-state memory setting (Settle), and the
// scheduler's one P while they pass D-Bus messages on (Serial).
package process

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// LogLevelFlag is --log-level: the openvpn3 log level 0..6.
func LogLevelFlag(fs *flag.FlagSet) *int {
	return fs.Int("log-level", 3, "log verbosity 0..6 (openvpn3 levels)")
}

// SlogLevel maps the openvpn3 log levels (0..6) to slog levels.
func SlogLevel(n int) slog.Level {
	switch {
	case n >= 5:
		return slog.LevelDebug
	case n >= 3:
		return slog.LevelInfo
	case n == 2:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// StatsFlag is --runtime-stats: set by the administrator who starts the
// daemon (make soak), which passes it on to every backend.
func StatsFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("runtime-stats", 0, "log this process's goroutine count and Go heap every DURATION (the daemon passes it to its backends); off by default")
}

// threadCount is this process's number of threads (its Go runtime keeps
// every thread it ever started, each with its stacks); 0 if unknown.
func threadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// LogRuntimeStats logs the numbers a leak shows in and only the process
// itself knows (RSS and descriptors are in /proc) every interval until ctx
// ends.
func LogRuntimeStats(ctx context.Context, logger *slog.Logger, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		attrs := append([]any{"pid", os.Getpid(), "goroutines", runtime.NumGoroutine(), "threads", threadCount(), "heap_inuse", m.HeapInuse}, readMemStats(&m)...)
		logger.Info("runtime stats", attrs...)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
