package testbed

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// DNSServer is a tiny authoritative DNS responder over UDP for tests: it
// answers A queries for names under the suffixes in its table with that
// suffix's address, AAAA queries for them with no data, and everything else
// with NXDOMAIN. It records every name it was asked for, so a test can show
// which server a lookup went to.
type DNSServer struct {
	Addr netip.AddrPort

	conn    net.PacketConn
	answers map[string]netip.Addr
	done    chan struct{}

	mu      sync.Mutex
	queries []string
}

// StartDNSServer listens on addr (port 53 when zero) inside network
// namespace ns ("" for the test's own) and answers until the test ends.
// answers maps a domain suffix ("corp.example") to the IPv4 address every
// name below it, and the suffix itself, resolves to.
func StartDNSServer(t testing.TB, ns string, addr netip.AddrPort, answers map[string]netip.Addr) *DNSServer {
	t.Helper()
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), 53)
	}
	var conn net.PacketConn
	listen := func() (err error) {
		conn, err = net.ListenPacket("udp", addr.String())
		return err
	}
	var err error
	if ns == "" {
		err = listen()
	} else {
		err = InNamespace(ns, listen)
	}
	if err != nil {
		t.Fatalf("DNS server on %v in %q: %v", addr, ns, err)
	}
	s := &DNSServer{Addr: addr, conn: conn, answers: map[string]netip.Addr{}, done: make(chan struct{})}
	for k, v := range answers {
		s.answers[strings.ToLower(strings.Trim(k, "."))] = v
	}
	go s.serve()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// Queries returns the names asked for so far (lower case, no final dot).
func (s *DNSServer) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Asked reports whether name was queried.
func (s *DNSServer) Asked(name string) bool {
	for _, q := range s.Queries() {
		if q == strings.ToLower(strings.Trim(name, ".")) {
			return true
		}
	}
	return false
}

func (s *DNSServer) serve() {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := s.answer(buf[:n]); resp != nil {
			_, _ = s.conn.WriteTo(resp, from)
		}
	}
}

const (
	dnsTypeA   = 1
	dnsClassIN = 1
)

// answer builds the reply to one query; nil drops what is not a query.
// Other types than A for a known name get NOERROR without answers.
func (s *DNSServer) answer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// The question: labels, then type and class.
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype, qclass := binary.BigEndian.Uint16(q[i:]), binary.BigEndian.Uint16(q[i+2:])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, "."))
	s.mu.Lock()
	s.queries = append(s.queries, name)
	s.mu.Unlock()

	addr, known := netip.Addr{}, false
	for suffix, a := range s.answers {
		if name == suffix || strings.HasSuffix(name, "."+suffix) {
			addr, known = a, true
			break
		}
	}
	rcode := byte(0)
	if !known || qclass != dnsClassIN {
		rcode = 3 // NXDOMAIN
	}
	withA := known && qclass == dnsClassIN && qtype == dnsTypeA && addr.Is4()
	resp := make([]byte, 12, 12+len(question)+16)
	copy(resp, q[:2])                       // id
	resp[2] = 0x80 | 0x04 | q[2]&0x79       // QR, AA, opcode and RD copied
	resp[3] = 0x80 | rcode                  // RA
	binary.BigEndian.PutUint16(resp[4:], 1) // QDCOUNT
	if withA {
		binary.BigEndian.PutUint16(resp[6:], 1) // ANCOUNT
	}
	resp = append(resp, question...)
	if withA {
		resp = append(resp, 0xc0, 12) // the name: pointer to the question
		resp = binary.BigEndian.AppendUint16(resp, dnsTypeA)
		resp = binary.BigEndian.AppendUint16(resp, dnsClassIN)
		resp = binary.BigEndian.AppendUint32(resp, 1) // TTL 1 s
		resp = binary.BigEndian.AppendUint16(resp, 4)
		a4 := addr.As4()
		resp = append(resp, a4[:]...)
	}
	return resp
}
