package testbed

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// markWriter finds its mark however the pipe's reads cut the output, notes
// the first write that completes it, and passes every byte on to the log.
func TestMarkWriterSplitMark(t *testing.T) {
	var log bytes.Buffer
	m := newMarkWriter(&log, "Initialization Sequence Completed")
	chunks := []string{"line one\nInitial", "ization Seq", "uence Comp", "leted\nlast line\n"}
	for i, c := range chunks {
		if _, err := m.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.seen:
			if i != len(chunks)-1 {
				t.Fatalf("mark seen after chunk %d of %d", i+1, len(chunks))
			}
		default:
			if i == len(chunks)-1 {
				t.Fatal("mark split over four reads not seen")
			}
		}
	}
	at := m.at
	if at.IsZero() {
		t.Fatal("no time noted")
	}
	if _, err := m.Write([]byte("Initialization Sequence Completed again\n")); err != nil {
		t.Fatal(err)
	}
	if m.at != at {
		t.Error("a second mark moved the noted time")
	}
	if want := strings.Join(chunks, "") + "Initialization Sequence Completed again\n"; log.String() != want {
		t.Errorf("log %q, want %q", log.String(), want)
	}
}

// A process started with a mark: WaitForLog returns once the marked line
// is read from the pipe, MarkedAt says when (after the start), and the log
// holds the output up to it.
func TestStartProcessMarking(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "out.log")
	cmd := exec.Command("sh", "-c", "echo starting; echo ready >&2; exec sleep 60")
	p, err := StartProcessMarking("marking test", logPath, cmd, "ready")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	if err := p.WaitForLog(context.Background(), "ready", time.Minute); err != nil {
		t.Fatal(err)
	}
	at, ok := p.MarkedAt()
	if !ok || at.Before(p.Started) {
		t.Errorf("marked %v (%v), started %v: want the mark after the start", ok, at, p.Started)
	}
	if log := p.Log(); !strings.Contains(log, "starting\n") || !strings.Contains(log, "ready\n") {
		t.Errorf("log %q lacks the output", log)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	plain, err := StartProcess("plain", filepath.Join(t.TempDir(), "plain.log"), exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	<-plain.Done()
	if _, ok := plain.MarkedAt(); ok {
		t.Error("a process started without a mark is marked")
	}
	if _, err := StartProcessMarking("no mark", logPath, exec.Command("true"), ""); err == nil {
		t.Error("an empty mark was accepted")
	}
}
