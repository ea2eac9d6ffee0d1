package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// tracer records every message the bus carries (a monitor connection, as
// the phase clock's) with the time it was read, for -trace: where the
// time between two milestones goes, message by message.
type tracer struct {
	conn *dbus.Conn
	ch   chan *dbus.Message
	done chan struct{}
	once sync.Once
	msgs []traced
}

type traced struct {
	at  time.Time
	msg *dbus.Message
	pkt *testbed.Packet // a packet on the wire instead of a message
}

func startTracer(addr string) (*tracer, error) {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, fmt.Errorf("trace: connect %s: %w", addr, err)
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, []string{}, uint32(0)).Err; err != nil {
		conn.Close()
		return nil, fmt.Errorf("trace: BecomeMonitor: %w", err)
	}
	t := &tracer{conn: conn, ch: make(chan *dbus.Message, 8192), done: make(chan struct{})}
	conn.Eavesdrop(t.ch)
	go func() {
		defer close(t.done)
		for m := range t.ch {
			t.msgs = append(t.msgs, traced{at: time.Now(), msg: m})
		}
	}()
	return t, nil
}

// stop ends the monitor (the channel detached first, as the phase clock
// does) and returns what it saw; safe to call again.
func (t *tracer) stop() []traced {
	t.once.Do(func() {
		t.conn.Eavesdrop(nil)
		close(t.ch)
		t.conn.Close()
		<-t.done
	})
	return t.msgs
}

// Landmarks of a traced start, in order: rows of the report.
var landmarks = []string{
	"RegistrationRequest",
	"RegistrationConfirmation sent",
	"profile fetched (Fetch or FetchForBackend answered)",
	"RegistrationConfirmation answered",
	"client's first packet (its reset)",
	"NewTunnel answered",
	"CLI's next call",
	"CLI's LogForward answered",
	"Ready reaches the backend",
	"the backend answers Ready",
	"CLI's Ready answered",
	"CLI's Connect sent",
	"Connect reaches the backend",
	"backend's CONN_CONNECTING",
	"server's last control packet (its PUSH_REPLY)",
	"EstablishWith sent",
	"EstablishWith answered",
	"backend's CONN_CONNECTED",
	"CONN_CONNECTED on the session's path (relayed)",
	"CONN_CONNECTED forwarded to the CLI",
}

// withPackets merges the OpenVPN packets captured in the client's
// namespace into msgs by time.
func withPackets(msgs []traced, pkts []testbed.Packet) []traced {
	for i := range pkts {
		msgs = append(msgs, traced{at: pkts[i].At, pkt: &pkts[i]})
	}
	slices.SortStableFunc(msgs, func(a, b traced) int { return a.at.Compare(b.at) })
	return msgs
}

// analyze renders the messages (and packets) from NewTunnel until
// CONN_CONNECTED reaches the CLI, ms after NewTunnel (names maps unique names to roles),
// and finds the landmarks' times (the first of each; the server's last
// control packet is the last before CONN_CONNECTED).
func analyze(msgs []traced, names func(string) string) (string, map[string]time.Duration) {
	var b strings.Builder
	marks := map[string]time.Duration{}
	var t0 time.Time
	calls := map[string]string{} // "sender serial" → member
	for _, m := range msgs {
		if m.pkt != nil {
			if t0.IsZero() {
				continue
			}
			at := m.at.Sub(t0)
			p := m.pkt
			if p.ToServer {
				if _, seen := marks["client's first packet (its reset)"]; !seen {
					marks["client's first packet (its reset)"] = at
				}
			} else if p.Control() {
				marks["server's last control packet (its PUSH_REPLY)"] = at
			}
			fmt.Fprintf(&b, "  %7.2f  wire               %s\n", float64(at)/float64(time.Millisecond), p)
			continue
		}
		h := m.msg.Headers
		member, _ := h[dbus.FieldMember].Value().(string)
		if t0.IsZero() {
			if member != "NewTunnel" {
				continue
			}
			t0 = m.at
		}
		at := m.at.Sub(t0)
		mark := func(name string) {
			if _, seen := marks[name]; !seen {
				marks[name] = at
			}
		}
		sender, _ := h[dbus.FieldSender].Value().(string)
		dest, _ := h[dbus.FieldDestination].Value().(string)
		from, to := names(sender), names(dest)
		var what string
		switch m.msg.Type {
		case dbus.TypeMethodCall:
			calls[fmt.Sprint(sender, " ", m.msg.Serial())] = member
			if _, answered := marks["NewTunnel answered"]; answered && from == "CLI" {
				mark("CLI's next call")
			}
			what = fmt.Sprintf("call   #%d %s", m.msg.Serial(), member)
			switch {
			case member == "RegistrationConfirmation":
				mark("RegistrationConfirmation sent")
			case member == "Ready" && to == "backend":
				mark("Ready reaches the backend")
			case member == "Connect" && from == "CLI":
				mark("CLI's Connect sent")
			case member == "Connect" && to == "backend":
				mark("Connect reaches the backend")
			case member == "EstablishWith":
				mark("EstablishWith sent")
			}
		case dbus.TypeMethodReply, dbus.TypeError:
			rs, _ := h[dbus.FieldReplySerial].Value().(uint32)
			of := calls[fmt.Sprint(dest, " ", rs)]
			if m.msg.Type == dbus.TypeError {
				en, _ := h[dbus.FieldErrorName].Value().(string)
				what = fmt.Sprintf("error  #%d %s %s", rs, of, en)
			} else {
				what = fmt.Sprintf("return #%d %s", rs, of)
			}
			switch {
			case of == "Fetch" || of == "FetchForBackend":
				mark("profile fetched (Fetch or FetchForBackend answered)")
			case of == "RegistrationConfirmation":
				mark("RegistrationConfirmation answered")
			case of == "NewTunnel":
				mark("NewTunnel answered")
			case of == "Ready" && from == "backend":
				mark("the backend answers Ready")
			case of == "Ready" && to == "CLI":
				mark("CLI's Ready answered")
			case of == "LogForward" && to == "CLI":
				mark("CLI's LogForward answered")
			case of == "EstablishWith":
				mark("EstablishWith answered")
			}
		case dbus.TypeSignal:
			what = "signal " + member
			if member == "StatusChange" && len(m.msg.Body) == 3 {
				what += fmt.Sprintf(" %v/%v", m.msg.Body[0], m.msg.Body[1])
				if from == "backend" && m.msg.Body[1] == uint32(api.StatusMinorConnConnecting) {
					mark("backend's CONN_CONNECTING")
				}
				if m.msg.Body[1] == uint32(api.StatusMinorConnConnected) {
					switch {
					case from == "backend":
						mark("backend's CONN_CONNECTED")
					case to == "CLI":
						mark("CONN_CONNECTED forwarded to the CLI")
					default:
						mark("CONN_CONNECTED on the session's path (relayed)")
					}
				}
			}
			if member == "RegistrationRequest" {
				mark("RegistrationRequest")
			}
		}
		fmt.Fprintf(&b, "  %7.2f  %-8s → %-8s %s\n", float64(at)/float64(time.Millisecond), from, to, what)
		if _, forwarded := marks["CONN_CONNECTED forwarded to the CLI"]; forwarded {
			break
		}
	}
	return b.String(), marks
}
