package ctlwrap

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/replay"
)

// replayIDLen is the "long form" packet id tls-auth and tls-crypt carry:
// a 32-bit counter followed by a 32-bit Unix time.
const replayIDLen = 8

// replaySender hands out replay packet ids. The time is fixed at the first
// send, as OpenVPN does; the counter starts at 1 and refuses to wrap.
type replaySender struct {
	mu   sync.Mutex
	now  func() time.Time
	next uint32
	time uint32
}

func newReplaySender(now func() time.Time, first uint32) *replaySender {
	if now == nil {
		now = time.Now
	}
	return &replaySender{now: now, next: first}
}

func (s *replaySender) append(dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == 0 {
		return dst, fmt.Errorf("replay packet id exhausted")
	}
	if s.time == 0 {
		s.time = uint32(s.now().Unix())
	}
	dst = binary.BigEndian.AppendUint32(dst, s.next)
	dst = binary.BigEndian.AppendUint32(dst, s.time)
	s.next++ // wraps to 0, which the check above then refuses
	return dst, nil
}

// replayReceiver checks received replay packet ids like OpenVPN's
// packet_id_test: a newer time starts a fresh window, an older time is
// rejected, the same time goes through the sliding window.
type replayReceiver struct {
	mu     sync.Mutex
	time   uint32
	window *replay.Window
}

func newReplayReceiver() *replayReceiver {
	return &replayReceiver{window: replay.NewWindow(replay.DefaultSize)}
}

// accept must only be called for authenticated packets.
func (r *replayReceiver) accept(b []byte) error {
	id := binary.BigEndian.Uint32(b)
	t := binary.BigEndian.Uint32(b[4:])
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case id == 0:
		return fmt.Errorf("%w: id 0", ErrReplay)
	case t < r.time:
		return fmt.Errorf("%w: time %d older than %d", ErrReplay, t, r.time)
	case t > r.time:
		if r.time != 0 || r.window.Highest() != 0 {
			r.window.Reset()
		}
		r.time = t
	}
	if !r.window.Accept(uint64(id)) {
		return fmt.Errorf("%w: id %d (highest %d)", ErrReplay, id, r.window.Highest())
	}
	return nil
}
