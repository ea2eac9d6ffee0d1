// Command connbench times ovpn3go's session start phase by phase and counts
// its D-Bus round trips, for one build or several in alternating runs
// (A B A B …), each build on a stack of its own (variant a: a namespace
// pair, the OpenVPN 2.6 server, a private bus, its ovpn3-helper):
//
//	go run ./e2e/cmd/connbench -runs 5                     # the working tree
//	go run ./e2e/cmd/connbench -runs 5 -bin before=/tmp/b -bin after=/tmp/a
//
// A -bin directory holds ovpn3-helper and ovpn3 (go build -o DIR/ovpn3-helper
// ./helper/cmd/ovpn3-helper; go build -o DIR/ovpn3 ./app/cmd/ovpn3). It
// prints medians and the ratio of each build to the first; -v lists the
// calls of each build's last run; -trace adds the times of the landmarks
// between NewTunnel and the backend's CONN_CONNECTING (from a monitor that
// sees every message) and prints each build's last run message by
// message. Each stack's bus runs polkitd, as a system does (-polkitd=false:
// none). The CLI runs as root, whom the session manager does not ask
// polkit about; -user UID runs it as that unprivileged user instead (the
// tray's case), whom polkit authorizes for control-own as the shipped
// policy does a local desktop user. Needs root, like make bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/internal/bench"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

type build struct {
	name string
	bin  testbed.Binaries
	st   *testbed.Stack
	runs []run
}

// run is one session start: its timing and its calls by kind.
type run struct {
	t     bench.StartTiming
	kinds map[string]int
	trace string                   // -trace: the run's messages
	marks map[string]time.Duration // -trace: the landmarks after NewTunnel
}

type bins []string

func (b *bins) String() string     { return strings.Join(*b, ",") }
func (b *bins) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	var dirs bins
	flag.Var(&dirs, "bin", "`NAME=DIR` of a build to time (repeatable; default: build the working tree)")
	runs := flag.Int("runs", 5, "session starts per build")
	verbose := flag.Bool("v", false, "list the calls of each build's last run")
	trace := flag.Bool("trace", false, "trace every start's bus messages: landmarks between NewTunnel and CONN_CONNECTED as rows, and every message of each build's last run")
	persistent := flag.Bool("persistent", false, "import the profile as persistent (the service writes its file at each backend's use, as for a profile kept across restarts)")
	gap := flag.Duration("gap", 1500*time.Millisecond, "pause before each session start, so that the helper's spare backend (started a second after the last one was taken) is there, as for a user")
	polkitd := flag.Bool("polkitd", true, "run polkitd on each stack's bus with the helper's actions installed, as on a system (false: the session manager finds no polkit and asks nothing)")
	user := flag.Uint("user", 0, "run the CLI as this UID (and GID), an unprivileged user whom polkit authorizes for control-own as it does a local desktop user (0: root, whom the session manager does not ask)")
	flag.Parse()
	if err := measure(dirs, *runs, *gap, *verbose, *trace, *persistent, *polkitd, uint32(*user)); err != nil {
		fmt.Fprintln(os.Stderr, "connbench:", err)
		os.Exit(1)
	}
}

func measure(dirs []string, runs int, gap time.Duration, verbose, trace, persistent, polkitd bool, user uint32) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if polkitd {
		// An unprivileged CLI's control-own is allowed as the shipped
		// policy allows it for a local desktop session (the bench's user
		// has no seat).
		var allow []string
		if user != 0 {
			allow = append(allow, polkit.ActionSessionControlOwn)
		}
		restore, err := testbed.InstallPolkitActions(allow...)
		if err != nil {
			return err
		}
		defer func() { _ = restore() }()
	}
	tmp, err := os.MkdirTemp("", "ovpn3go-connbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if user != 0 {
		// The user's CLI imports the profile from the stacks' directories.
		if err := os.Chmod(tmp, 0o711); err != nil {
			return err
		}
	}
	var builds []*build
	if len(dirs) == 0 {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		bin, err := testbed.BuildBinaries(bctx, filepath.Join(tmp, "bin"))
		cancel()
		if err != nil {
			return err
		}
		builds = append(builds, &build{name: "this", bin: bin})
	}
	for _, d := range dirs {
		name, dir, ok := strings.Cut(d, "=")
		if !ok {
			return fmt.Errorf("-bin %q: want NAME=DIR", d)
		}
		builds = append(builds, &build{name: name, bin: testbed.BinariesIn(dir)})
	}
	for i, b := range builds {
		st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: b.bin, Dir: filepath.Join(tmp, fmt.Sprint("stack", i)), Variant: testbed.VariantA, Polkitd: polkitd, CLIUser: user})
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		defer st.Close()
		b.st = st
		path, err := st.WriteProfile(testbed.VariantA)
		if err != nil {
			return err
		}
		if user != 0 {
			if err := errors.Join(os.Chmod(st.Dir, 0o711), os.Chmod(path, 0o644)); err != nil {
				return err
			}
		}
		args := []string{"config-import", "--config", path, "--name", "connbench"}
		if persistent {
			args = append(args, "--persistent")
		}
		if _, err := st.CLI(ctx, args...); err != nil {
			return err
		}
	}
	for i := range runs {
		for _, b := range builds {
			select {
			case <-time.After(gap):
			case <-ctx.Done():
				return ctx.Err()
			}
			r, err := startOnce(ctx, b.st, trace)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", b.name, i+1, err)
			}
			b.runs = append(b.runs, r)
			fmt.Fprintf(os.Stderr, "%s run %d: connected after %v, %d calls\n", b.name, i+1, r.t.Connected.Round(time.Millisecond), len(r.t.Calls))
		}
	}
	report(builds)
	for _, b := range builds {
		if last := b.runs[len(b.runs)-1]; last.trace != "" {
			fmt.Printf("\n%s, the last run's messages (ms after NewTunnel):\n%s", b.name, last.trace)
		}
	}
	if verbose {
		for _, b := range builds {
			last := b.runs[len(b.runs)-1]
			fmt.Printf("\n%s, calls of the last run until CONN_CONNECTED:\n", b.name)
			for _, c := range last.t.Calls {
				fmt.Printf("  %s\n", c)
			}
		}
	}
	return nil
}

// startOnce starts a session, classifies its calls (and with trace
// records every message) and disconnects it.
func startOnce(ctx context.Context, st *testbed.Stack, trace bool) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var tr *tracer
	var capture *testbed.Capture
	if trace {
		var err error
		if tr, err = startTracer(st.Bus.Address); err != nil {
			return run{}, err
		}
		defer tr.stop()
		c, err := testbed.StartCapture(st.Pair.ClientNS, testbed.Port)
		if err != nil {
			return run{}, err
		}
		defer c.Close()
		capture = c
	}
	t, path, err := bench.StartSession(ctx, st, "connbench")
	if err != nil {
		return run{}, err
	}
	v, err := st.SessionProperty(ctx, path, "backend_pid")
	if err != nil {
		return run{}, err
	}
	pid, _ := v.Value().(uint32)
	var helper, backend string
	bus := st.Conn.BusObject()
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.ServiceSessions).Store(&helper); err != nil {
		return run{}, err
	}
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.BackendBusName(pid)).Store(&backend); err != nil {
		return run{}, err
	}
	role := func(name string) string {
		switch {
		case name == helper || strings.HasPrefix(name, "net.openvpn.v3.") && !strings.HasPrefix(name, api.ServiceBackends+"."):
			return "helper"
		case name == backend || strings.HasPrefix(name, api.ServiceBackends+"."):
			return "backend"
		case name == "org.freedesktop.DBus":
			return "bus"
		case strings.HasPrefix(name, ":"):
			return "CLI"
		}
		return name // polkit, …
	}
	kinds := map[string]int{}
	for _, c := range t.Calls {
		kinds[role(c.Sender)+" → "+role(c.Destination)]++
	}
	r := run{t: t, kinds: kinds}
	if tr != nil {
		r.trace, r.marks = analyze(withPackets(tr.stop(), capture.Packets()), role)
	}
	return r, bench.StopSession(ctx, st, path, int(pid))
}

func report(builds []*build) {
	type row struct {
		name, unit string
		f          func(run) float64
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rows := []row{
		{"session-start → CONN_CONNECTED on the bus", "ms", func(r run) float64 { return ms(r.t.Connected) }},
		{"session-start → CLI exit", "ms", func(r run) float64 { return ms(r.t.Exit) }},
	}
	for _, p := range bench.Phases[1:] {
		rows = append(rows, row{"NewTunnel → " + string(p), "ms", func(r run) float64 { return ms(r.t.Phases[p]) }})
	}
	// Each step on its own (the medians of the differences): the CLI
	// before NewTunnel, then from milestone to milestone.
	rows = append(rows, row{"step: session-start → NewTunnel", "ms", func(r run) float64 {
		return ms(r.t.Connected - r.t.Phases[bench.PhaseConnected])
	}})
	for i, p := range bench.Phases[1:] {
		prev := bench.Phases[i]
		rows = append(rows, row{"step: " + string(prev) + " → " + string(p), "ms", func(r run) float64 {
			return ms(r.t.Phases[p] - r.t.Phases[prev])
		}})
	}
	rows = append(rows, row{"step: connected → CLI exit", "ms", func(r run) float64 { return ms(r.t.Exit - r.t.Connected) }})
	if builds[0].runs[0].marks != nil {
		for _, l := range landmarks {
			rows = append(rows, row{"trace: NewTunnel → " + l, "ms", func(r run) float64 { return ms(r.marks[l]) }})
		}
	}
	rows = append(rows, row{"D-Bus calls until connected", "calls", func(r run) float64 { return float64(len(r.t.Calls)) }})
	var kinds []string
	for _, b := range builds {
		for _, r := range b.runs {
			for k := range r.kinds {
				if !slices.Contains(kinds, k) {
					kinds = append(kinds, k)
				}
			}
		}
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		rows = append(rows, row{"  calls " + k, "calls", func(r run) float64 { return float64(r.kinds[k]) }})
	}
	head := "| figure | unit |"
	sep := "|---|---|"
	for _, b := range builds {
		head += " " + b.name + " |"
		sep += "---:|"
	}
	for _, b := range builds[1:] {
		head += " " + b.name + "/" + builds[0].name + " |"
		sep += "---:|"
	}
	fmt.Printf("Medians of %d runs per build, alternating.\n\n%s\n%s\n", len(builds[0].runs), head, sep)
	for _, r := range rows {
		line := "| " + r.name + " | " + r.unit + " |"
		var meds []float64
		for _, b := range builds {
			var v []float64
			for _, x := range b.runs {
				v = append(v, r.f(x))
			}
			meds = append(meds, median(v))
			line += fmt.Sprintf(" %.1f |", meds[len(meds)-1])
		}
		for _, m := range meds[1:] {
			if meds[0] == 0 {
				line += " — |"
				continue
			}
			line += fmt.Sprintf(" %.2f× |", m/meds[0])
		}
		fmt.Println(line)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
