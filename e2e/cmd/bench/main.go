// Command bench compares ovpn3go with the OpenVPN 2.6 client (make bench,
// as root): alternating runs against the same OpenVPN 2.6 server in network
// namespaces; it prints the medians and the ratios ovpn3go/openvpn, writes
// them to a Markdown results file. Every figure comes from the production
// backend; the CPU profile (-profile) comes from one more ovpn3go session,
// before the pairs, with a profiling build of the backend.
//
//	make bench                          # 3 pairs of 10 s runs, then 8 connect-only pairs
//	go run ./e2e/cmd/bench -pairs 5 -t 20 -note "idle machine"
//	go run ./e2e/cmd/bench -pairs 1 -t 5 -tests udp-up-200M -out /tmp/x.md -profile /tmp/x.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/bench"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

func main() {
	pairs := flag.Int("pairs", 3, "alternating runs of each client")
	secs := flag.Int("t", 10, "seconds per iperf3 run")
	out := flag.String("out", "docs/bench/results.md", "results file (Markdown)")
	prof := flag.String("profile", "docs/bench/backend-cpu.pprof", "where to save the ovpn3go backend's CPU profile, taken in one extra session with a profiling build of the backend before the measured pairs (\"\" none: no extra session)")
	note := flag.String("note", "", "a line for the results file (e.g. that the machine was loaded)")
	tests := flag.String("tests", "", "comma-separated iperf3 tests to run (default all: "+testNames(bench.DefaultTests)+"); none: connect time and memory only")
	helperArgs := flag.String("helper-args", "", "extra ovpn3-helper arguments, space-separated (e.g. \"--spare-backend --log-level 6\")")
	keep := flag.Bool("keep", false, "keep the scratch directory (the helper's and the clients' logs) and print its path")
	connects := flag.Int("connect-pairs", 8, "more alternating pairs after the -pairs that only connect and disconnect: the connect rows are medians of pairs+connect-pairs starts")
	polkitd := flag.Bool("polkitd", true, "run polkitd on the stacks' bus with the helper's actions installed, as on a system (false: the session manager finds no polkit and asks nothing)")
	flag.Parse()
	sel, err := selectTests(*tests)
	if err == nil {
		err = run(*pairs, *connects, *secs, *out, *prof, *note, sel, strings.Fields(*helperArgs), *keep, *polkitd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// selectTests picks the named tests of the default matrix; "" is all.
func selectTests(names string) ([]bench.Test, error) {
	switch names {
	case "":
		return bench.DefaultTests, nil
	case "none":
		return []bench.Test{}, nil
	}
	var sel []bench.Test
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(bench.DefaultTests, func(t bench.Test) bool { return t.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("-tests: no test %q (there are %s)", name, testNames(bench.DefaultTests))
		}
		sel = append(sel, bench.DefaultTests[i])
	}
	return sel, nil
}

func testNames(tests []bench.Test) string {
	var names []string
	for _, t := range tests {
		names = append(names, t.Name)
	}
	return strings.Join(names, ",")
}

func run(pairs, connects, secs int, out, prof, note string, tests []bench.Test, helperArgs []string, keep, polkitd bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "ovpn3go-bench-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintln(os.Stderr, "scratch directory kept:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bin, err := testbed.BuildBinaries(bctx, filepath.Join(dir, "bin"))
	cancel()
	if err != nil {
		return err
	}
	res, err := bench.Run(ctx, bench.Options{Bin: bin, Dir: filepath.Join(dir, "run"), Pairs: pairs, ConnectPairs: connects, Duration: secs, Profile: prof, Tests: tests, HelperArgs: helperArgs, Polkitd: polkitd,
		Log: func(s string) { fmt.Fprintln(os.Stderr, s) }})
	if err != nil {
		return err
	}
	if err := res.WriteMarkdown(os.Stdout, note); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := res.WriteMarkdown(f, note); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if prof == "" {
		fmt.Fprintf(os.Stderr, "results: %s\n", out)
		return nil
	}
	fmt.Fprintf(os.Stderr, "results: %s; backend CPU profile: %s (go tool pprof -top %s)\n", out, prof, prof)
	return nil
}
