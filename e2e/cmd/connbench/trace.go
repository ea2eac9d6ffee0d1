package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
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
			t.msgs = append(t.msgs, traced{time.Now(), m})
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

// printTrace writes the messages from NewTunnel until CONN_CONNECTED, ms
// after NewTunnel; names maps unique names to roles.
func printTrace(w io.Writer, msgs []traced, names func(string) string) {
	var t0 time.Time
	for _, m := range msgs {
		h := m.msg.Headers
		member, _ := h[dbus.FieldMember].Value().(string)
		if t0.IsZero() {
			if member != "NewTunnel" {
				continue
			}
			t0 = m.at
		}
		sender, _ := h[dbus.FieldSender].Value().(string)
		dest, _ := h[dbus.FieldDestination].Value().(string)
		var what string
		switch m.msg.Type {
		case dbus.TypeMethodCall:
			what = fmt.Sprintf("call   #%d %s", m.msg.Serial(), member)
		case dbus.TypeMethodReply:
			rs, _ := h[dbus.FieldReplySerial].Value().(uint32)
			what = fmt.Sprintf("return #%d", rs)
		case dbus.TypeError:
			rs, _ := h[dbus.FieldReplySerial].Value().(uint32)
			en, _ := h[dbus.FieldErrorName].Value().(string)
			what = fmt.Sprintf("error  #%d %s", rs, en)
		case dbus.TypeSignal:
			what = "signal " + member
			if member == "StatusChange" && len(m.msg.Body) == 3 {
				what += fmt.Sprintf(" %v/%v", m.msg.Body[0], m.msg.Body[1])
			}
		}
		fmt.Fprintf(w, "  %7.2f  %-8s → %-8s %s\n", float64(m.at.Sub(t0))/float64(time.Millisecond),
			names(sender), names(dest), what)
		path, _ := h[dbus.FieldPath].Value().(dbus.ObjectPath)
		if m.msg.Type == dbus.TypeSignal && member == "StatusChange" && api.IsChildPath(api.PathSessions, path) &&
			len(m.msg.Body) == 3 && m.msg.Body[1] == uint32(api.StatusMinorConnConnected) {
			return
		}
	}
}
