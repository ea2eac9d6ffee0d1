// Package bench compares ovpn3go with the OpenVPN 2.6 client against the
// same OpenVPN 2.6 server in network namespaces (make bench): alternating
// runs of the two clients, iperf3 throughput, client CPU seconds per GB,
// connect time and resident memory, reported as medians and ratios.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Client names, in the order each pair runs them.
const (
	OVPN3GO = "ovpn3go"
	OpenVPN = "openvpn"
)

// Test is one iperf3 run through the tunnel.
type Test struct {
	Name    string
	Streams int
	Reverse bool   // server to client (download)
	UDPRate string // offered load (iperf3 -b) for a UDP test; "" is TCP
}

// DefaultTests is the matrix of make bench.
var DefaultTests = []Test{
	{Name: "tcp-up-1", Streams: 1},
	{Name: "tcp-up-4", Streams: 4},
	{Name: "tcp-down-1", Streams: 1, Reverse: true},
	{Name: "tcp-down-4", Streams: 4, Reverse: true},
	{Name: "udp-up-200M", Streams: 1, UDPRate: "200M"},
}

// Options say what Run measures.
type Options struct {
	Bin      testbed.Binaries
	Dir      string        // scratch directory
	Pairs    int           // A B pairs (each client runs this often)
	Duration int           // iperf3 -t seconds
	Tests    []Test        // default DefaultTests
	Profile  string        // where to save the backend's CPU profile ("" none)
	Log      func(string)  // progress lines (nil: quiet)
	Timeout  time.Duration // bound of one connect
	// HelperArgs are extra ovpn3-helper arguments (e.g. --spare-backend,
	// --log-level 6 for the backends' timeline in the helper's log).
	HelperArgs []string
	// Polkitd runs polkitd on the stacks' bus with the helper's actions
	// installed, as on a system: the session manager asks it for
	// NewTunnel and Connect there, and so it does here.
	Polkitd bool
	// ConnectPairs are more alternating pairs after the Pairs that only
	// connect and disconnect (ConnectGap after the previous client), so
	// the connect rows are medians of Pairs+ConnectPairs starts: a
	// connect moves by ±15 % from one start to the next on a shared
	// machine, and three are few.
	ConnectPairs int
}

// ConnectGap is the pause before each start of a connect-only pair: the
// helper's spare backend (started a second after the last one was taken)
// is there again, as for a user, and both clients start after the same
// pause.
const ConnectGap = 1500 * time.Millisecond

// Sample is what one client run measured.
type Sample struct {
	// Exe and Args are the measured client process's program file and
	// arguments: for ovpn3go the production backend, never a profiling
	// build or one started with --cpuprofile-dir.
	Exe  string
	Args []string

	Connect time.Duration
	Wire    Wire // the handshake's packets during the connect
	Mem     Mem  // the client process once connected (Settle after)
	// MemAfter is the client process's memory after the iperf3 tests:
	// with the data path's buffers in use.
	MemAfter Mem
	// Only ovpn3go: the session start's milestones after NewTunnel, and
	// the helper daemon (shared by every session) while the session runs
	// and before it started (no session: the daemon's own share).
	Phases     map[Phase]time.Duration
	Start      StartTiming
	Helper     Mem
	HelperIdle Mem
	// Spare is the helper's spare backend, started ahead for the next
	// session (--spare-backend), read before the session starts; zero
	// without one.
	Spare   Mem
	Mbps    map[string]float64
	CPUPerG map[string]float64 // client CPU seconds per GB received
	// Client context switches (every thread's, voluntary or not) per MB
	// received: how often the client went to sleep and was woken, or was
	// preempted, for its data.
	SwitchPerM map[string]float64
	// The OpenVPN 2.6 server's and the iperf3 server's CPU time over each
	// iperf3 run, in % of one core: at 100 the single-threaded OpenVPN
	// server is the limit of the throughput, not the client.
	ServerCPU, IperfCPU map[string]float64
}

// Results are every sample of both clients.
type Results struct {
	Machine string
	Date    time.Time
	Tests   []Test
	Samples map[string][]Sample
	// Connects are the connect-only pairs' samples (Options.ConnectPairs):
	// they count in the connect rows only.
	Connects map[string][]Sample
	// Profile is where the backend's CPU profile was saved ("" none),
	// taken in a run of its own (profileRun) that is in no sample.
	Profile string
	Polkitd bool // Options.Polkitd
}

// Run brings up the stack (variant a), then runs the clients in turns.
func Run(ctx context.Context, o Options) (*Results, error) {
	if o.Pairs < 1 || o.Duration < 1 {
		return nil, fmt.Errorf("bench: %d pairs of %d s: need at least 1 of each", o.Pairs, o.Duration)
	}
	if o.Tests == nil {
		o.Tests = DefaultTests
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			o.Log(fmt.Sprintf(format, a...))
		}
	}
	if o.Polkitd {
		restore, err := testbed.InstallPolkitActions()
		if err != nil {
			return nil, err
		}
		defer func() { _ = restore() }()
	}
	if o.Profile != "" {
		// Before the pairs: a broken profiling build or profile fails in
		// seconds rather than after the pairs' minutes, and the first
		// measured pair does not run on a cold machine.
		logf("profile run: one %s session with a profiling build of the backend (in no figure)", OVPN3GO)
		if err := profileRun(ctx, o); err != nil {
			return nil, fmt.Errorf("backend CPU profile run: %w", err)
		}
	}
	bs, err := startBench(ctx, o.Dir, o.Bin, o.HelperArgs, o.Polkitd)
	if err != nil {
		return nil, err
	}
	defer bs.close()

	res := &Results{Machine: machine(), Date: time.Now().UTC(), Tests: o.Tests, Samples: map[string][]Sample{}, Profile: o.Profile, Polkitd: o.Polkitd}
	for i := range o.Pairs {
		logf("pair %d/%d: %s", i+1, o.Pairs, OVPN3GO)
		s, _, err := runOVPN3GO(ctx, bs, o)
		if err != nil {
			return nil, fmt.Errorf("pair %d, %s: %w", i+1, OVPN3GO, err)
		}
		res.Samples[OVPN3GO] = append(res.Samples[OVPN3GO], s)
		logf("pair %d/%d: %s connected %s", i+1, o.Pairs, OVPN3GO, connectLine(s))
		logf("pair %d/%d: %s", i+1, o.Pairs, OpenVPN)
		if s, err = runOpenVPN(ctx, bs, o); err != nil {
			return nil, fmt.Errorf("pair %d, %s: %w", i+1, OpenVPN, err)
		}
		res.Samples[OpenVPN] = append(res.Samples[OpenVPN], s)
		logf("pair %d/%d: %s connected %s", i+1, o.Pairs, OpenVPN, connectLine(s))
	}
	res.Connects = map[string][]Sample{}
	for i := range o.ConnectPairs {
		for _, client := range []string{OVPN3GO, OpenVPN} {
			logf("connect %d/%d: %s", i+1, o.ConnectPairs, client)
			s, err := connectOnly(ctx, bs, o, client)
			if err != nil {
				return nil, fmt.Errorf("connect %d, %s: %w", i+1, client, err)
			}
			res.Connects[client] = append(res.Connects[client], s)
			logf("connect %d/%d: %s connected %s", i+1, o.ConnectPairs, client, connectLine(s))
		}
	}
	return res, nil
}

// connectLine is a sample's connect for the progress lines.
func connectLine(s Sample) string {
	if t, ok := s.Phases[PhaseConnected]; ok {
		return fmt.Sprintf("after %.1f ms (NewTunnel → connected %.1f ms)", ms(s.Connect), ms(t))
	}
	return fmt.Sprintf("after %.1f ms", ms(s.Connect))
}

// connectOnly pauses ConnectGap, then times one connect of client and
// disconnects it: no traffic, no memory.
func connectOnly(ctx context.Context, bs *benchStack, o Options, client string) (Sample, error) {
	select {
	case <-ctx.Done():
		return Sample{}, ctx.Err()
	case <-time.After(ConnectGap):
	}
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if client == OpenVPN {
		s, cli, err := connectOpenVPN(cctx, bs, o)
		if cli != nil {
			err = errors.Join(err, cli.Stop(5*time.Second))
		}
		return s, err
	}
	var s Sample
	path, pid, err := connectOVPN3GO(cctx, bs, &s)
	if err != nil {
		return s, err
	}
	return s, StopSession(cctx, bs.st, path, pid)
}

// benchStack is a stack (variant a) with the bench's profile imported
// and an iperf3 server in the server's namespace.
type benchStack struct {
	st    *testbed.Stack
	iperf *testbed.Process
}

// configName is the profile's name in every bench stack.
const configName = "bench-a"

// startBench starts a bench stack in dir whose daemon runs with bin and
// helperArgs, with polkitd on its bus if asked.
func startBench(ctx context.Context, dir string, bin testbed.Binaries, helperArgs []string, polkitd bool) (*benchStack, error) {
	st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: bin, Dir: dir, Variant: testbed.VariantA, HelperArgs: helperArgs, Polkitd: polkitd})
	if err != nil {
		return nil, err
	}
	if polkitd {
		err = polkitAnswers(ctx, st)
	}
	var path string
	if err == nil {
		path, err = st.WriteProfile(testbed.VariantA)
	}
	if err == nil {
		_, err = st.CLI(ctx, "config-import", "--config", path, "--name", configName)
	}
	var srv *testbed.Process
	if err == nil {
		iperf := testbed.Command(context.Background(), st.Pair.ServerNS, "iperf3", "-s", "-B", testbed.TunnelServer4)
		srv, err = testbed.StartProcess("iperf3 server", filepath.Join(dir, "iperf3.log"), iperf)
	}
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &benchStack{st: st, iperf: srv}, nil
}

// polkitAnswers checks that the stack's polkitd knows the helper's
// actions: the session manager's questions then get polkit's answer (the
// CLI runs as root, always authorized), not the bus's "no such service".
func polkitAnswers(ctx context.Context, st *testbed.Stack) error {
	r, err := polkit.New(st.Conn).Check(ctx, st.Conn.Names()[0], polkit.ActionSessionControlOwn, false)
	if err != nil || !r.Authorized {
		return fmt.Errorf("polkitd on the bench's bus: %s for root: %+v, %v", polkit.ActionSessionControlOwn, r, err)
	}
	return nil
}

func (b *benchStack) close() {
	b.iperf.Stop(5 * time.Second)
	b.st.Close()
}

// profileRun runs one more ovpn3go session, with the pairs' iperf3 tests,
// on a bench stack of its own whose daemon starts a profiling build of
// the backend (testbed.BuildProfilingBackend) with --backend-cpuprofile,
// and saves that session's backend's profile to o.Profile. What it
// measures goes into no figure: the profiler costs the backend memory and
// CPU, so every figure comes from the production backend.
func profileRun(ctx context.Context, o Options) error {
	dir, err := filepath.Abs(filepath.Join(o.Dir, "profile"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	bin := o.Bin
	bin.Backend = filepath.Join(dir, "ovpn3-backend-"+testbed.CPUProfileTag)
	if err := testbed.BuildProfilingBackend(ctx, bin.Backend); err != nil {
		return err
	}
	// The backends write there as the backend user: a directory of that
	// user's, in one every user may enter.
	uid, gid, err := testenv.CreateBackendUser()
	if err != nil {
		return err
	}
	pub, err := testbed.PublicDir("ovpnprof")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pub)
	profDir := filepath.Join(pub, "p")
	if err := os.Mkdir(profDir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(profDir, int(uid), int(gid)); err != nil {
		return err
	}
	helperArgs := append(slices.Clone(o.HelperArgs), "--backend", bin.Backend, "--backend-cpuprofile", profDir)
	bs, err := startBench(ctx, dir, bin, helperArgs, o.Polkitd)
	if err != nil {
		return err
	}
	defer bs.close()
	// runOVPN3GO returns once the backend has exited: its profile is
	// complete.
	_, pid, err := runOVPN3GO(ctx, bs, o)
	if err != nil {
		return err
	}
	return copyFile(filepath.Join(profDir, fmt.Sprintf("backend-%d.pprof", pid)), o.Profile)
}

// runOVPN3GO starts a session with the CLI, measures it and disconnects;
// it returns once the backend process has exited.
func runOVPN3GO(ctx context.Context, bs *benchStack, o Options) (Sample, int, error) {
	st := bs.st
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	s := Sample{}
	var err error
	if s.HelperIdle, err = procMem(st.Helper.PID()); err != nil {
		return s, 0, fmt.Errorf("helper: %w", err)
	}
	if s.Spare, err = childrenMem(st.Helper.PID()); err != nil {
		return s, 0, fmt.Errorf("helper's spare backend: %w", err)
	}
	path, pid, err := connectOVPN3GO(cctx, bs, &s)
	if err != nil {
		return s, pid, err
	}
	if err := settle(ctx); err != nil {
		return s, pid, err
	}
	if s.Helper, err = procMem(st.Helper.PID()); err != nil {
		return s, 0, fmt.Errorf("helper: %w", err)
	}
	if err := measure(ctx, st, procs{client: pid, server: st.Server.PID(), iperf: bs.iperf.PID()}, o, &s); err != nil {
		return s, pid, err
	}
	return s, pid, StopSession(cctx, st, path, pid)
}

// StartTiming is one ovpn3 session-start as the bus saw it.
type StartTiming struct {
	At        time.Time     // when the CLI was started
	Exit      time.Duration // process start → the CLI exited (it waits for CONN_CONNECTED, then prints)
	Connected time.Duration // process start → CONN_CONNECTED on the bus
	Phases    map[Phase]time.Duration
	// Calls are the method calls the bus carried from the process start
	// until CONN_CONNECTED: every round trip of the start, those to the
	// bus driver included.
	Calls []testbed.MethodCall
}

// StartSession runs `ovpn3 session-start --config name` on st and times
// it with a monitor on the bus; it returns the new session's path.
func StartSession(ctx context.Context, st *testbed.Stack, name string) (StartTiming, dbus.ObjectPath, error) {
	w, err := testbed.WatchSignals(st.Bus.Address, "type='signal',interface='"+api.InterfaceSessions+"'")
	if err != nil {
		return StartTiming{}, "", err
	}
	defer w.Close()
	clock, err := startPhaseClock(st.Bus.Address)
	if err != nil {
		return StartTiming{}, "", err
	}
	defer clock.close()
	t0 := time.Now()
	if _, err := st.CLI(ctx, "session-start", "--config", name, "--timeout", "30s"); err != nil {
		return StartTiming{}, "", err
	}
	exit := time.Since(t0)
	sig, err := w.Wait(ctx, func(s *dbus.Signal) bool {
		if s.Name != api.InterfaceSessions+".StatusChange" || len(s.Body) != 3 {
			return false
		}
		ma, _ := s.Body[0].(uint32)
		mi, _ := s.Body[1].(uint32)
		return ma == uint32(api.StatusMajorConnection) && mi == uint32(api.StatusMinorConnConnected)
	})
	if err != nil {
		return StartTiming{}, "", fmt.Errorf("waiting for CONN_CONNECTED: %w", err)
	}
	if err := clock.waitConnected(ctx); err != nil {
		return StartTiming{}, "", err
	}
	t := StartTiming{At: t0, Exit: exit}
	if t.Phases, err = clock.since(); err != nil {
		return t, sig.Path, err
	}
	t.Connected = clock.at(PhaseConnected).Sub(t0)
	t.Calls = clock.callsUntilConnected()
	return t, sig.Path, nil
}

// connectOVPN3GO starts a session with the CLI and records its timing in
// s (the connect, its milestones, its packets); the session stays up.
// pid is its backend's.
func connectOVPN3GO(ctx context.Context, bs *benchStack, s *Sample) (path dbus.ObjectPath, pid int, err error) {
	st := bs.st
	capture, err := startWire(st)
	if err != nil {
		return "", 0, err
	}
	defer capture.Close()
	start, path, err := StartSession(ctx, st, configName)
	if err != nil {
		return "", 0, err
	}
	s.Connect, s.Phases, s.Start = start.Exit, start.Phases, start
	s.Wire, err = wireOf(capture.Packets(), start.At, start.At.Add(start.Connected))
	// The capture's packet socket sees every frame in the namespace: left
	// open it would copy the throughput tests' packets too, a cost charged
	// to the client (the kernel clones each one in its send path).
	capture.Close()
	if err != nil {
		return path, 0, err
	}
	v, err := st.SessionProperty(ctx, path, "backend_pid")
	if err != nil {
		return path, 0, err
	}
	pid32, _ := v.Value().(uint32)
	return path, int(pid32), nil
}

// StopSession disconnects the session at path and waits until its backend
// (pid) has exited.
func StopSession(ctx context.Context, st *testbed.Stack, path dbus.ObjectPath, pid int) error {
	if _, err := st.CLI(ctx, "session-manage", "--path", string(path), "--disconnect"); err != nil {
		return err
	}
	// The backend writes its profile as it exits.
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("backend %d still runs after the disconnect: %w", pid, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runOpenVPN times the reference client from process start until it
// writes "Initialization Sequence Completed", measures it and stops it.
func runOpenVPN(ctx context.Context, bs *benchStack, o Options) (Sample, error) {
	s, cli, err := connectOpenVPN(ctx, bs, o)
	if cli == nil {
		return s, err
	}
	if err == nil {
		err = settle(ctx)
	}
	if err == nil {
		err = measure(ctx, bs.st, procs{client: cli.PID(), server: bs.st.Server.PID(), iperf: bs.iperf.PID()}, o, &s)
	}
	return s, errors.Join(err, cli.Stop(5*time.Second))
}

// connectOpenVPN starts the reference client and times its connect (and
// its packets); it returns the running client, or nil if none runs.
func connectOpenVPN(ctx context.Context, bs *benchStack, o Options) (Sample, *testbed.Process, error) {
	st := bs.st
	dir, err := os.MkdirTemp(o.Dir, "refclient-")
	if err != nil {
		return Sample{}, nil, err
	}
	capture, err := startWire(st)
	if err != nil {
		return Sample{}, nil, err
	}
	defer capture.Close()
	cli, err := testbed.StartReferenceClient(ctx, st.Pair, st.Server, dir, o.Timeout)
	if err != nil {
		return Sample{}, nil, err
	}
	// From its fork to when it wrote the line (read from its output pipe
	// as it was written, not found by a poll of its log).
	t0 := cli.Started
	done, ok := cli.MarkedAt()
	if !ok {
		return Sample{}, cli, errors.New("openvpn client: connected line not timed")
	}
	s := Sample{Connect: done.Sub(t0)}
	s.Wire, err = wireOf(capture.Packets(), t0, done)
	capture.Close() // before the traffic: see connectOVPN3GO
	return s, cli, err
}

// Settle is how long after connecting a client's memory is read: once
// what connecting did is over (ovpn3go's backend returns the handshake's
// garbage to the kernel just after CONN_CONNECTED), as a connected
// tunnel's memory stays. Both clients wait the same.
const Settle = time.Second

func settle(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(Settle):
		return nil
	}
}

// procs are the processes one client's run measures.
type procs struct {
	client int // the client (ovpn3go's backend, or openvpn)
	server int // the OpenVPN 2.6 server
	iperf  int // the iperf3 server
}

// measure records the client process's memory, runs every iperf3 test,
// and records its memory again.
func measure(ctx context.Context, st *testbed.Stack, p procs, o Options, s *Sample) error {
	var err error
	if s.Exe, s.Args, err = commandOf(p.client); err != nil {
		return err
	}
	if s.Mem, err = procMem(p.client); err != nil {
		return fmt.Errorf("client memory: %w", err)
	}
	s.Mbps, s.CPUPerG, s.SwitchPerM = map[string]float64{}, map[string]float64{}, map[string]float64{}
	s.ServerCPU, s.IperfCPU = map[string]float64{}, map[string]float64{}
	for _, t := range o.Tests {
		r, err := iperfRun(ctx, st.Pair.ClientNS, p, t, o.Duration)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		s.Mbps[t.Name], s.CPUPerG[t.Name], s.SwitchPerM[t.Name] = r.mbps, r.cpuPerG, r.switchPerM
		s.ServerCPU[t.Name], s.IperfCPU[t.Name] = r.serverCPU, r.iperfCPU
	}
	if s.MemAfter, err = procMem(p.client); err != nil {
		return fmt.Errorf("client memory after the traffic: %w", err)
	}
	return nil
}

// commandOf is a process's program file and its command line (without
// argv[0]).
func commandOf(pid int) (exe string, args []string, err error) {
	if exe, err = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil {
		return "", nil, fmt.Errorf("client program: %w", err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", nil, fmt.Errorf("client command line: %w", err)
	}
	args = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	return exe, args[1:], nil
}

// iperfResult is what one iperf3 run measured.
type iperfResult struct {
	mbps, cpuPerG, switchPerM float64
	serverCPU, iperfCPU       float64 // % of one core over the run
}

// iperfRun runs one iperf3 client and returns the received rate, the
// client process's CPU seconds per GB received and its context switches
// per MB received, and the servers' CPU use over the run.
func iperfRun(ctx context.Context, ns string, p procs, t Test, secs int) (iperfResult, error) {
	var r iperfResult
	args := []string{"-c", testbed.TunnelServer4, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(t.Streams), "-J"}
	if t.Reverse {
		args = append(args, "-R")
	}
	if t.UDPRate != "" {
		args = append(args, "-u", "-b", t.UDPRate, "-l", "1300")
	}
	w0, err := contextSwitches(p.client)
	if err != nil {
		return r, err
	}
	cpu0, t0, err := cpuOf(p)
	if err != nil {
		return r, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	out, err := testbed.Run(rctx, ns, "iperf3", args...)
	if err != nil {
		return r, err
	}
	cpu1, t1, err := cpuOf(p)
	if err != nil {
		return r, err
	}
	w1, err := contextSwitches(p.client)
	if err != nil {
		return r, err
	}
	bytes, bps, err := parseIperf(out, t.UDPRate != "")
	if err != nil {
		return r, err
	}
	if bytes <= 0 {
		return r, errors.New("iperf3 moved no data")
	}
	return iperfResult{mbps: bps / 1e6, cpuPerG: (cpu1[0] - cpu0[0]) / (bytes / 1e9), switchPerM: float64(w1-w0) / (bytes / 1e6),
		serverCPU: coreShare(cpu0[1], cpu1[1], t1.Sub(t0)), iperfCPU: coreShare(cpu0[2], cpu1[2], t1.Sub(t0))}, nil
}

// cpuOf reads the CPU seconds of the client, the OpenVPN server and the
// iperf3 server, in that order, and the time it read them.
func cpuOf(p procs) ([3]float64, time.Time, error) {
	var cpu [3]float64
	for i, pid := range []int{p.client, p.server, p.iperf} {
		var err error
		if cpu[i], err = cpuSeconds(pid); err != nil {
			return cpu, time.Time{}, err
		}
	}
	return cpu, time.Now(), nil
}

// coreShare is the CPU time a process used between two readings of its
// CPU seconds, wall apart, in % of one core (100: one core all the time).
func coreShare(cpu0, cpu1 float64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * (cpu1 - cpu0) / wall.Seconds()
}

// contextSwitches sums voluntary and involuntary context switches over
// the process's threads (/proc/PID/task/*/status).
func contextSwitches(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, fmt.Errorf("client context switches: %w", err)
	}
	var sum int64
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread just exited
		}
		if err != nil {
			return 0, fmt.Errorf("client context switches: %w", err)
		}
		for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			n, err := statusField(string(b), key)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/task/%s/status: %w", pid, task.Name(), err)
			}
			sum += n
		}
	}
	return sum, nil
}

// parseIperf reads the received bytes and rate from iperf3 -J output. For
// UDP, iperf 3.12 has only end.sum: what was sent, with the receiver's loss.
func parseIperf(out string, udp bool) (bytes, bps float64, err error) {
	type sum struct {
		Bytes         float64 `json:"bytes"`
		BitsPerSecond float64 `json:"bits_per_second"`
		LostPackets   float64 `json:"lost_packets"`
		Packets       float64 `json:"packets"`
	}
	var r struct {
		Error string `json:"error"`
		End   struct {
			Sum         sum `json:"sum"`
			SumReceived sum `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if r.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if udp && r.End.SumReceived.Bytes == 0 {
		s := r.End.Sum
		if s.Packets > 0 {
			// Sent bytes less what the receiver reported lost.
			recv := s.Bytes * (1 - s.LostPackets/s.Packets)
			return recv, s.BitsPerSecond * (1 - s.LostPackets/s.Packets), nil
		}
		return s.Bytes, s.BitsPerSecond, nil
	}
	return r.End.SumReceived.Bytes, r.End.SumReceived.BitsPerSecond, nil
}

// cpuSeconds is utime+stime of a process (/proc/PID/stat fields 14, 15).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time: %w", err)
	}
	sec, err := statCPUSeconds(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return sec, nil
}

// statCPUSeconds reads utime+stime from the text of /proc/PID/stat.
func statCPUSeconds(stat string) (float64, error) {
	// The command name (field 2) may hold spaces and parentheses: fields
	// count from the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name in parentheses")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	stt, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + stt) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// Mem is a process's resident memory in bytes: RSS counts every page it
// has mapped, shared ones (its program, libraries) in full; Anon is its
// private part (heap, stacks); PSS shares each page among the processes
// mapping it (ovpn3go's helper and backends map the same program).
// Program and Libs are the RSS of file mappings: the program's own file
// (code, data), and shared libraries.
type Mem struct{ RSS, Anon, PSS, Program, Libs int64 }

// procMem reads VmRSS and RssAnon from /proc/PID/status and Pss from
// /proc/PID/smaps_rollup.
func procMem(pid int) (Mem, error) {
	var m Mem
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	for _, f := range []struct {
		text, key string
		v         *int64
	}{{string(status), "VmRSS:", &m.RSS}, {string(status), "RssAnon:", &m.Anon}, {string(rollup), "Pss:", &m.PSS}} {
		if *f.v, err = kBField(f.text, f.key); err != nil {
			return m, fmt.Errorf("process %d: %w", pid, err)
		}
	}
	m.Program, m.Libs, err = fileRSS(pid)
	return m, err
}

// childrenMem sums the memory of a process's children (any thread's).
func childrenMem(pid int) (Mem, error) {
	lists, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return Mem{}, err
	}
	var sum Mem
	for _, l := range lists {
		b, err := os.ReadFile(l)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				return sum, fmt.Errorf("%s: %q", l, f)
			}
			m, err := procMem(child)
			if err != nil {
				continue // it ended meanwhile
			}
			sum = Mem{sum.RSS + m.RSS, sum.Anon + m.Anon, sum.PSS + m.PSS, sum.Program + m.Program, sum.Libs + m.Libs}
		}
	}
	return sum, nil
}

// fileRSS sums the Rss of a process's mappings of its program file and of
// shared libraries (/proc/PID/smaps).
func fileRSS(pid int) (program, libs int64, err error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, 0, err
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	var path string
	for _, l := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && !strings.HasSuffix(f[0], ":"):
			// A mapping: address perms offset dev inode [path].
			path = strings.Join(f[5:], " ")
		case len(f) >= 2 && f[0] == "Rss:":
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/smaps: %q: %w", pid, l, err)
			}
			switch {
			case path == exe:
				program += kb * 1024
			case strings.Contains(filepath.Base(path), ".so"):
				libs += kb * 1024
			}
		}
	}
	return program, libs, nil
}

// kBField finds "key   N kB" at the start of a line of text, in bytes.
func kBField(text, key string) (int64, error) {
	kb, err := statusField(text, key)
	return kb * 1024, err
}

// statusField finds "key   N" (maybe followed by " kB") at the start of a
// line of text.
func statusField(text, key string) (int64, error) {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %w", key, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return fmt.Errorf("%s is empty", from)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// machine describes the host: CPU model, count and kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs (%s), %s", host, numCPU(), model, kernel)
}
