package busobj

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// maxCachedOwners bounds the name-owner cache: callers may ask about
// any name (OwnsName of be<PID> for every PID that calls).
const maxCachedOwners = 4096

const errNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"

// ownerCache remembers the owners of the bus names NameOwner was asked
// about and keeps them current from NameOwnerChanged, so that an
// authorization check (OwnsName on every incoming call) costs no round
// trip to the bus after the first.
//
// Why it cannot go stale: intercept feeds every NameOwnerChanged to changed
// on godbus's reader goroutine, in bus order and before any later message
// (the reply to a GetNameOwner sent after the change included) is
// delivered. A lookup whose reply may predate a change it did not see is
// not stored: changed bumps the generation of names being looked up, and
// end stores only when the generation is the one the lookup began with.
// A change that arrives after a stored reply overwrites it.
type ownerCache struct {
	mu      sync.Mutex
	owners  map[string]string // name → unique name of its owner, "" for none
	lookups map[string]*ownerLookup
}

type ownerLookup struct {
	running int
	gen     uint64
}

func (o *ownerCache) get(name string) (owner string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	owner, ok = o.owners[name]
	return owner, ok
}

// begin notes a lookup of name about to be sent and returns its generation.
func (o *ownerCache) begin(name string) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookups == nil {
		o.lookups = map[string]*ownerLookup{}
	}
	l := o.lookups[name]
	if l == nil {
		l = &ownerLookup{}
		o.lookups[name] = l
	}
	l.running++
	return l.gen
}

// end finishes a lookup begun at generation gen; known says the bus
// answered (owner, or "" for a name without one).
func (o *ownerCache) end(name string, gen uint64, owner string, known bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.lookups[name]
	if known && l.gen == gen {
		if o.owners == nil || len(o.owners) >= maxCachedOwners {
			o.owners = map[string]string{}
		}
		o.owners[name] = owner
	}
	if l.running--; l.running == 0 {
		delete(o.lookups, name)
	}
}

// changed applies a NameOwnerChanged.
func (o *ownerCache) changed(name, newOwner string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l := o.lookups[name]; l != nil {
		l.gen++
	}
	if _, tracked := o.owners[name]; !tracked {
		return
	}
	if newOwner == "" && strings.HasPrefix(name, ":") {
		delete(o.owners, name) // a unique name never comes back
		return
	}
	o.owners[name] = newOwner
}

// NameOwner returns the unique name owning a bus name. Only the first
// question about a name goes to the bus; the answer is then kept current
// from NameOwnerChanged (see ownerCache).
func (s *Server) NameOwner(ctx context.Context, name string) (string, error) {
	if owner, ok := s.owners.get(name); ok {
		if owner == "" {
			return "", fmt.Errorf("owner of %s: %w", name, dbus.Error{Name: errNameHasNoOwner, Body: []any{"The name does not have an owner"}})
		}
		return owner, nil
	}
	gen := s.owners.begin(name)
	var owner string
	err := s.Conn().BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner)
	var de dbus.Error
	switch {
	case err == nil:
		s.owners.end(name, gen, owner, true)
		s.learnCredentials(owner)
		return owner, nil
	case errors.As(err, &de) && de.Name == errNameHasNoOwner:
		s.owners.end(name, gen, "", true)
	default:
		s.owners.end(name, gen, "", false)
	}
	return "", fmt.Errorf("owner of %s: %w", name, err)
}

// learnCredentials fetches the credentials of a name's owner in the
// background: a service asks who owns a name mostly to take calls from it
// (a backend: its session manager's), and the first call then needs no
// round trip to the bus to identify its caller.
func (s *Server) learnCredentials(owner string) {
	if !strings.HasPrefix(owner, ":") {
		return
	}
	s.credMu.Lock()
	_, known := s.creds[owner]
	_, busy := s.inflight[owner] // two names of one owner (sessions, log): ask once
	s.credMu.Unlock()
	if known || busy {
		return
	}
	s.qMu.Lock() // as enqueue: no wg.Add once Close has begun
	if s.closed {
		s.qMu.Unlock()
		return
	}
	s.wg.Add(1)
	s.qMu.Unlock()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, credentialsTimeout)
		defer cancel()
		_, _, _ = s.Credentials(ctx, owner) // a failure is tried again on the first call
	}()
}

// credentialsTimeout bounds learnCredentials' question.
const credentialsTimeout = 10 * time.Second
