package bench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

func numCPU() int { return runtime.NumCPU() }

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Row is one figure: the median of each client and their ratio
// ovpn3go/openvpn.
type Row struct {
	Name, Unit    string
	OVPN3GO, Open float64
	Own           bool // a figure of ovpn3go's alone (no openvpn counterpart)
}

// Ratio is ovpn3go's median over openvpn's (0 when openvpn's is 0).
func (r Row) Ratio() float64 {
	if r.Own || r.Open == 0 {
		return 0
	}
	return r.OVPN3GO / r.Open
}

// Rows are the medians of every figure.
func (r *Results) Rows() []Row {
	medOf := func(samples []Sample, f func(Sample) float64) float64 {
		var v []float64
		for _, s := range samples {
			v = append(v, f(s))
		}
		return median(v)
	}
	med := func(client string, f func(Sample) float64) float64 { return medOf(r.Samples[client], f) }
	row := func(name, unit string, f func(Sample) float64) Row {
		return Row{Name: name, Unit: unit, OVPN3GO: med(OVPN3GO, f), Open: med(OpenVPN, f)}
	}
	// The connect rows count the connect-only pairs' starts too.
	starts := func(client string) []Sample { return append(slices.Clone(r.Samples[client]), r.Connects[client]...) }
	medC := func(client string, f func(Sample) float64) float64 { return medOf(starts(client), f) }
	rowC := func(name, unit string, f func(Sample) float64) Row {
		return Row{Name: name, Unit: unit, OVPN3GO: medC(OVPN3GO, f), Open: medC(OpenVPN, f)}
	}
	var rows []Row
	for _, t := range r.Tests {
		rows = append(rows, row("throughput "+t.Name, "Mbit/s", func(s Sample) float64 { return s.Mbps[t.Name] }))
	}
	for _, t := range r.Tests {
		rows = append(rows, row("client CPU "+t.Name, "CPU-s/GB", func(s Sample) float64 { return s.CPUPerG[t.Name] }))
	}
	for _, t := range r.Tests {
		rows = append(rows, row("client context switches "+t.Name, "per MB", func(s Sample) float64 { return s.SwitchPerM[t.Name] }))
	}
	for _, t := range r.Tests {
		rows = append(rows, row("OpenVPN 2.6 server CPU "+t.Name, "% of a core", func(s Sample) float64 { return s.ServerCPU[t.Name] }))
	}
	for _, t := range r.Tests {
		rows = append(rows, row("iperf3 server CPU "+t.Name, "% of a core", func(s Sample) float64 { return s.IperfCPU[t.Name] }))
	}
	mb := func(n int64) float64 { return float64(n) / 1e6 }
	own := func(name, unit string, f func(Sample) float64) Row {
		return Row{Name: name, Unit: unit, OVPN3GO: med(OVPN3GO, f), Own: true}
	}
	ownC := func(name, unit string, f func(Sample) float64) Row {
		return Row{Name: name, Unit: unit, OVPN3GO: medC(OVPN3GO, f), Own: true}
	}
	rows = append(rows,
		rowC("connect", "ms", func(s Sample) float64 { return ms(s.Connect) }))
	// The definition: ovpn3go until connected (not until its CLI
	// has printed and exited), against the same openvpn figure.
	rows = append(rows, Row{Name: "connect, to CONN_CONNECTED on the bus", Unit: "ms",
		OVPN3GO: medC(OVPN3GO, func(s Sample) float64 { return ms(s.Start.Connected) }),
		Open:    medC(OpenVPN, func(s Sample) float64 { return ms(s.Connect) })},
		// A front-end that already runs (the tray, a desktop applet) starts
		// a session with NewTunnel: no process start, no bus connection.
		Row{Name: "connect from a running front-end, NewTunnel → CONN_CONNECTED", Unit: "ms",
			OVPN3GO: medC(OVPN3GO, func(s Sample) float64 { return ms(s.Phases[PhaseConnected]) }),
			Open:    medC(OpenVPN, func(s Sample) float64 { return ms(s.Connect) })},
	)
	if len(r.Connects[OVPN3GO]) > 0 {
		// The pairs' own starts come after a minute of the other client's
		// traffic: the figure of runs before the connect-only pairs.
		rows = append(rows, Row{Name: "… of the pairs' starts alone (after the other client's traffic)", Unit: "ms",
			OVPN3GO: med(OVPN3GO, func(s Sample) float64 { return ms(s.Phases[PhaseConnected]) }),
			Open:    med(OpenVPN, func(s Sample) float64 { return ms(s.Connect) })})
	}
	rows = append(rows,
		rowC("connect: start → first packet", "ms", func(s Sample) float64 { return ms(s.Wire.FirstPacket) }),
		rowC("connect: handshake on the wire", "ms", func(s Sample) float64 { return ms(s.Wire.LastControl - s.Wire.FirstPacket) }),
		rowC("connect: … of it the client's turns", "ms", func(s Sample) float64 { return ms(s.Wire.Client) }),
		rowC("connect: … of it the server's turns", "ms", func(s Sample) float64 { return ms(s.Wire.Server) }),
		rowC("connect: server's last control packet → connected", "ms", func(s Sample) float64 { return ms(s.Wire.End - s.Wire.LastControl) }))
	for _, p := range Phases[1:] {
		rows = append(rows, ownC("NewTunnel → "+string(p), "ms", func(s Sample) float64 { return ms(s.Phases[p]) }))
	}
	rows = append(rows, ownC("D-Bus calls until connected", "calls", func(s Sample) float64 { return float64(len(s.Start.Calls)) }))
	rows = append(rows,
		row("client RSS once connected", "MB", func(s Sample) float64 { return mb(s.Mem.RSS) }),
		row("client private (anonymous) memory", "MB", func(s Sample) float64 { return mb(s.Mem.Anon) }),
		row("client PSS", "MB", func(s Sample) float64 { return mb(s.Mem.PSS) }),
		row("client RSS of its program file", "MB", func(s Sample) float64 { return mb(s.Mem.Program) }),
		row("client RSS of shared libraries", "MB", func(s Sample) float64 { return mb(s.Mem.Libs) }),
		row("client RSS after the traffic", "MB", func(s Sample) float64 { return mb(s.MemAfter.RSS) }),
		row("client private memory after the traffic", "MB", func(s Sample) float64 { return mb(s.MemAfter.Anon) }),
		own("helper RSS with one session", "MB", func(s Sample) float64 { return mb(s.Helper.RSS) }),
		own("helper private (anonymous) memory", "MB", func(s Sample) float64 { return mb(s.Helper.Anon) }),
		own("helper PSS", "MB", func(s Sample) float64 { return mb(s.Helper.PSS) }),
		own("helper RSS without a session", "MB", func(s Sample) float64 { return mb(s.HelperIdle.RSS) }),
		own("helper private memory without a session", "MB", func(s Sample) float64 { return mb(s.HelperIdle.Anon) }),
		own("spare backend RSS between sessions", "MB", func(s Sample) float64 { return mb(s.Spare.RSS) }),
		own("spare backend private memory", "MB", func(s Sample) float64 { return mb(s.Spare.Anon) }))
	return rows
}

// ServerBound is the share of one core at which the single-threaded
// OpenVPN 2.6 server counts as the limit of a run's throughput: the rest
// of the core goes to the kernel's interrupts and scheduling gaps.
const ServerBound = 90.0

// ServerLimited lists, for each client, the tests in whose runs the
// OpenVPN 2.6 server used at least ServerBound % of a core (medians).
func (r *Results) ServerLimited() map[string][]string {
	out := map[string][]string{}
	for _, client := range []string{OVPN3GO, OpenVPN} {
		for _, t := range r.Tests {
			var v []float64
			for _, s := range r.Samples[client] {
				v = append(v, s.ServerCPU[t.Name])
			}
			if len(v) > 0 && median(v) >= ServerBound {
				out[client] = append(out[client], t.Name)
			}
		}
	}
	return out
}

// limitNote says in which runs the server was the limit.
func (r *Results) limitNote() string {
	lim := r.ServerLimited()
	var parts []string
	for _, client := range []string{OVPN3GO, OpenVPN} {
		if len(lim[client]) > 0 {
			parts = append(parts, fmt.Sprintf("with %s in %s", client, strings.Join(lim[client], ", ")))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("The OpenVPN 2.6 server used less than %.0f %% of a core in every run (median): its one thread was not saturated, so it was not the limit of the throughput by itself (on a machine busy with other work, CPU time for it and the clients may still be).", ServerBound)
	}
	return fmt.Sprintf("The single-threaded OpenVPN 2.6 server used %.0f %% of a core or more (median) %s: there the server, not the client, is the limit of the throughput.",
		ServerBound, strings.Join(parts, "; "))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// WriteMarkdown writes the results table with date, machine and method.
func (r *Results) WriteMarkdown(w io.Writer, note string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# ovpn3go vs OpenVPN 2.6 client — make bench\n\n")
	fmt.Fprintf(&b, "Date: %s  \nMachine: %s  \n", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	polkit := ""
	if r.Polkitd {
		polkit = " A polkitd runs on the private bus, as on a system; the CLI runs as root, whom ovpn3go's session manager does not ask (polkitd says yes to root for every action): an unprivileged user's start also waits for polkit's answer, ~5 ms more here (connbench -user, docs/bench/connect.md)."
	}
	connects := ""
	if n := len(r.Connects[OVPN3GO]); n > 0 {
		connects = fmt.Sprintf(" The connect rows have %d more starts of each, alternating, that only connect and disconnect (%s after the previous client's, so the helper's spare backend is there as for a user): medians of %d.", n, ConnectGap, n+len(r.Samples[OVPN3GO]))
	}
	fmt.Fprintf(&b, "Runs: %d of each client, alternating (ovpn3go, openvpn, …), against the same OpenVPN 2.6 server (variant a: UDP, AES-256-GCM, tls-crypt) in network namespaces; medians.%s%s\n\n",
		len(r.Samples[OVPN3GO]), connects, polkit)
	if note != "" {
		fmt.Fprintf(&b, "%s\n\n", note)
	}
	fmt.Fprintf(&b, "| figure | unit | ovpn3go | openvpn 2.6 | ratio ovpn3go/openvpn |\n|---|---|---:|---:|---:|\n")
	for _, row := range r.Rows() {
		if row.Own {
			fmt.Fprintf(&b, "| %s | %s | %.1f | — | — |\n", row.Name, row.Unit, row.OVPN3GO)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.2f× |\n", row.Name, row.Unit, row.OVPN3GO, row.Open, row.Ratio())
	}
	if len(r.Tests) > 0 {
		fmt.Fprintf(&b, "\n%s\n", r.limitNote())
	}
	if r.Profile != "" {
		fmt.Fprintf(&b, "\nEvery figure comes from the production backend, built without the CPU profiler; the backend's CPU profile (%s) is from one more ovpn3go session with the same iperf3 tests, run before the pairs on a stack of its own whose backend is a profiling build (-tags %s, --backend-cpuprofile), and none of that session's measurements is in this table.\n", r.Profile, testbed.CPUProfileTag)
	}
	fmt.Fprintf(&b, "\nThroughput is iperf3's received rate through the tunnel (up: client to server, down: -R; UDP at a fixed offered load, less the receiver's loss). "+
		"CPU-s/GB is the client process's utime+stime (/proc/PID/stat) over the run per GB received; for ovpn3go the client is the session's backend process. "+
		"Context switches per MB: the client's threads' voluntary and involuntary switches (/proc/PID/task/*/status) over the run per MB received, that is how often it slept and was woken, or was preempted. "+
		"OpenVPN 2.6 server CPU: the server process's utime+stime over each iperf3 run (both clients' runs) in %% of one core; it runs on one thread, so near 100 %% it, not the client, limits the throughput. "+
		"iperf3 server CPU: the same for the iperf3 server in the server's namespace. "+
		"Connect: ovpn3go from starting `ovpn3 session-start` until it exits (it waits for the CONN_CONNECTED signal, then prints where it is connected), openvpn from its process's start (fork) until it wrote \"Initialization Sequence Completed\" (its output is read through a pipe as it is written and the line timestamped when read, so no poll adds to its figure). "+
		"connect, to CONN_CONNECTED: ovpn3go's start until the bus carried CONN_CONNECTED (before its CLI prints and exits), against the same openvpn figure. "+
		"connect from a running front-end: ovpn3go from the CLI's NewTunnel call (the session's start, as a front-end that already runs and holds its bus connection starts it: the tray) until CONN_CONNECTED, both as a monitor on the bus sees them, against the same openvpn figure (from its fork: a process is how openvpn starts a session). D-Bus calls: the method calls the bus carried meanwhile (calls to the bus driver included), each a round trip. "+
		"The connect's packets (UDP to and from the server's port, captured in the client's namespace): start → the client's first packet (its reset); "+
		"the handshake on the wire, from there to the server's last control packet before connected (its PUSH_REPLY), split by who sent the packet after each gap "+
		"(the client's turns: TLS and key-method 2 work, any waiting; the server's turns); then to connected (ovpn3go: CONN_CONNECTED on the bus; the TUN device, addresses, routes; openvpn: its connected line written). "+
		"NewTunnel → …: the session start's milestones as a monitor on the bus sees them, after the NewTunnel call: the backend's RegistrationRequest (its process runs), "+
		"CONN_CONNECTING (Connect reached it), netcfg's Establish call (control channel up, PUSH_REPLY in), CONN_CONNECTED. "+
		"Memory of the client process once connected (ovpn3go's backend), read %s after connecting: VmRSS counts shared pages (the program, libraries) in full, RssAnon is the private part (heap, stacks, relocated data), "+
		"the program file's and the shared libraries' rows are the file pages mapped of each (/proc/PID/smaps), "+
		"PSS divides each shared page among the processes mapping it (ovpn3go's helper and backends map the same program); read again after the iperf3 tests (the data path's buffers in use). "+
		"The helper daemon serves every session; its figures are taken with the one session connected, and before that session started (between sessions). "+
		"What one session costs: its backend's private memory (each session has one) plus the daemon's growth with it. "+
		"The spare backend (started ahead for the next session, --spare-backend) is read between sessions: memory the daemon holds while no session runs.\n", Settle)
	_, err := io.WriteString(w, b.String())
	return err
}
