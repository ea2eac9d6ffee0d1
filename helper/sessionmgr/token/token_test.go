package token

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// Read returns the token, ErrNone for a descriptor closed without
// one, and stops waiting when its context ends (a spare told to go).
func TestRead(t *testing.T) {
	pipe := func() (int, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Dup(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		t.Cleanup(func() { w.Close() })
		return fd, w
	}
	fd, w := pipe()
	go func(w *os.File) { w.WriteString("abc"); w.Close() }(w)
	if tok, err := Read(context.Background(), fd); err != nil || tok != "abc" {
		t.Errorf("Read = %q, %v; want abc", tok, err)
	}
	fd, w = pipe()
	w.Close()
	if _, err := Read(context.Background(), fd); !errors.Is(err, ErrNone) {
		t.Errorf("Read of a closed descriptor: %v, want ErrNone", err)
	}
	fd, _ = pipe()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := Read(ctx, fd); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v, want context.Canceled", err)
	}
	if _, err := Read(context.Background(), 1); err == nil {
		t.Error("Read(1) accepted a standard descriptor")
	}
}
