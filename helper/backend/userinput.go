package backend

import (
	"fmt"
	"strings"
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// slot is one piece of user input the backend waits for (spec §6.5).
type slot struct {
	typ, group, id    uint32
	name, description string
	hidden, provided  bool
	value             string
}

// inputQueue is the RequiresQueue of one backend. For now it only knows
// username/password (auth-user-pass); challenges come later.
type inputQueue struct {
	mu    sync.Mutex
	slots []*slot
}

func newInputQueue(p *profile.Profile) *inputQueue {
	q := &inputQueue{}
	if p != nil && p.AuthUserPass {
		q.addUserPass()
	}
	return q
}

func (q *inputQueue) addUserPass() {
	t, g := uint32(api.AttentionTypeCredentials), uint32(api.AttentionGroupUserPassword)
	q.slots = append(q.slots,
		&slot{typ: t, group: g, id: 0, name: "username", description: "Auth User name"},
		&slot{typ: t, group: g, id: 1, name: "password", description: "Auth Password", hidden: true})
}

// reset asks for everything again (after an authentication failure).
func (q *inputQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		s.provided, s.value = false, ""
	}
}

func (q *inputQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		if !s.provided {
			return true
		}
	}
	return false
}

type typeGroup struct{ Type, Group uint32 }

func (q *inputQueue) typeGroups() []typeGroup {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []typeGroup{}
	for _, s := range q.slots {
		tg := typeGroup{s.typ, s.group}
		if !s.provided && !containsTG(out, tg) {
			out = append(out, tg)
		}
	}
	return out
}

func containsTG(l []typeGroup, x typeGroup) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

func (q *inputQueue) check(typ, group uint32) []uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []uint32{}
	for _, s := range q.slots {
		if s.typ == typ && s.group == group && !s.provided {
			out = append(out, s.id)
		}
	}
	return out
}

func (q *inputQueue) find(typ, group, id uint32) *slot {
	for _, s := range q.slots {
		if s.typ == typ && s.group == group && s.id == id {
			return s
		}
	}
	return nil
}

func (q *inputQueue) fetch(typ, group, id uint32) (slot, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.find(typ, group, id)
	switch {
	case s == nil:
		return slot{}, api.Error(api.DomainRequest, "net.openvpn.v3.element-not-found: No requires queue element found")
	case s.provided:
		return slot{}, api.Error(api.DomainRequest, "net.openvpn.v3.already-provided: User input already provided")
	}
	out := *s
	out.value = ""
	return out, nil
}

func (q *inputQueue) provide(typ, group, id uint32, value string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.slots) == 0 {
		return api.Error(api.DomainRequest, "User input not required")
	}
	s := q.find(typ, group, id)
	value = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, value)
	switch {
	case s == nil:
		return api.Error(api.DomainRequest, "net.openvpn.v3.invalid-input: No matching entry found in the request queue")
	case s.provided:
		return api.Error(api.DomainRequest, fmt.Sprintf("net.openvpn.v3.error.input-already-provided: Request ID %d has already been provided", id))
	case value == "":
		return api.Error(api.DomainRequest, fmt.Sprintf("net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID %d", id))
	}
	s.value, s.provided = value, true
	return nil
}

// credentials returns what the engine needs from the provided slots.
func (q *inputQueue) credentials() engine.Credentials {
	q.mu.Lock()
	defer q.mu.Unlock()
	var c engine.Credentials
	for _, s := range q.slots {
		switch s.name {
		case "username":
			c.Username = s.value
		case "password":
			c.Password = s.value
		}
	}
	return c
}
