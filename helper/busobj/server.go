package busobj

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Server exports objects on one bus connection. Create it with Connect (or
// NewServer + ConnOption + Start when you dial the bus yourself).
type Server struct {
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	conn    *dbus.Conn
	objects map[dbus.ObjectPath]*Interface
	// nodes counts, for every path that has exported objects below it,
	// the exported descendants under each child name: lookups and
	// introspection never scan all objects.
	nodes map[dbus.ObjectPath]map[string]int

	limits   Limits
	signals  *signalHandler
	qMu      sync.Mutex
	closed   bool
	senders  map[string]*senderQueue
	refusals chan *dbus.Message

	credMu   sync.Mutex
	creds    map[string]creds
	inflight map[string]*credLookup // questions to the bus under way, by unique name
	credHook func(*credLookup)      // tests: runs before the question is sent
	owners   ownerCache

	watchMu  sync.Mutex
	watchers map[int]func(name, oldOwner, newOwner string)
	nextID   int
	sigCh    chan *dbus.Signal
}

type creds struct{ uid, pid uint32 }

// credLookup is one question to the bus for a unique name's credentials,
// shared by every caller that needs them while it is under way.
type credLookup struct {
	done    chan struct{} // closed once c and err are set
	c       creds
	err     error
	waiters int // callers waiting for it besides the one asking
}

// maxCachedCreds bounds the credential cache: an entry filled just after its
// NameOwnerChanged would otherwise stay forever.
const maxCachedCreds = 4096

// NewServer returns a server that is not attached to a connection yet.
// Open the connection with s.ConnOption(), then call s.Start(conn).
func NewServer(logger *slog.Logger) *Server {
	return NewServerWithLimits(logger, Limits{})
}

// NewServerWithLimits is NewServer with other bounds on each sender's
// work than DefaultLimits.
func NewServerWithLimits(logger *slog.Logger, l Limits) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	l = l.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		logger:   logger,
		ctx:      ctx,
		cancel:   cancel,
		objects:  map[dbus.ObjectPath]*Interface{},
		nodes:    map[dbus.ObjectPath]map[string]int{},
		limits:   l,
		signals:  &signalHandler{perSender: l.SignalsPerSender},
		senders:  map[string]*senderQueue{},
		refusals: make(chan *dbus.Message, 256),
		creds:    map[string]creds{},
		watchers: map[int]func(string, string, string){},
	}
}

// ConnOption makes the server the connection's receiver of method calls
// (all of them, org.freedesktop.DBus.Peer included) and installs its
// bounded, in-order signal delivery. Use it on one connection only.
func (s *Server) ConnOption() dbus.ConnOption {
	return func(conn *dbus.Conn) error {
		for _, o := range []dbus.ConnOption{dbus.WithIncomingInterceptor(s.intercept), dbus.WithSignalHandler(s.signals)} {
			if err := o(conn); err != nil {
				return err
			}
		}
		return nil
	}
}

// Connect dials address (the system bus, honouring DBUS_SYSTEM_BUS_ADDRESS,
// when address is ""), and starts a server on it.
func Connect(ctx context.Context, address string, logger *slog.Logger) (*Server, error) {
	return ConnectWithLimits(ctx, address, logger, Limits{})
}

// ConnectWithLimits is Connect with other bounds on each sender's work.
func ConnectWithLimits(ctx context.Context, address string, logger *slog.Logger, l Limits) (*Server, error) {
	s := NewServerWithLimits(logger, l)
	opts := []dbus.ConnOption{s.ConnOption(), dbus.WithContext(s.ctx)}
	var conn *dbus.Conn
	var err error
	if address == "" {
		conn, err = dbus.ConnectSystemBus(opts...)
	} else {
		conn, err = dbus.Connect(address, opts...)
	}
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("connect to bus: %w", err)
	}
	if err := s.Start(ctx, conn); err != nil {
		_ = conn.Close()
		s.cancel()
		return nil, err
	}
	return s, nil
}

// Start attaches the server to a connection opened with s.ConnOption() and
// subscribes to NameOwnerChanged (credential cache, WatchNames).
func (s *Server) Start(ctx context.Context, conn *dbus.Conn) error {
	s.mu.Lock()
	if s.conn != nil {
		s.mu.Unlock()
		return errors.New("busobj: server already started")
	}
	s.conn = conn
	s.mu.Unlock()
	if err := conn.AddMatchSignalContext(ctx,
		dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		return fmt.Errorf("subscribe to NameOwnerChanged: %w", err)
	}
	// godbus blocks its reader until every signal channel took the signal:
	// keep a buffer and never block in the loop.
	s.sigCh = make(chan *dbus.Signal, 64)
	conn.Signal(s.sigCh)
	s.wg.Add(2)
	go s.signalLoop()
	go s.refuser()
	return nil
}

// Conn is the underlying connection (for calls to other services and for
// RequestName).
func (s *Server) Conn() *dbus.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.conn
}

// Context is cancelled when the server closes.
func (s *Server) Context() context.Context { return s.ctx }

// Close cancels running calls' contexts, stops the signal goroutine and
// closes the connection.
func (s *Server) Close() error {
	s.qMu.Lock()
	s.closed = true
	s.qMu.Unlock()
	s.cancel()
	conn := s.Conn()
	var err error
	if conn != nil {
		conn.RemoveSignal(s.sigCh)
		err = conn.Close()
	}
	s.wg.Wait()
	return err
}

// RequestName asks for a well-known name and fails unless we became its
// primary owner.
func (s *Server) RequestName(name string) error {
	r, err := s.Conn().RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request bus name %s: %w", name, err)
	}
	if r != dbus.RequestNameReplyPrimaryOwner && r != dbus.RequestNameReplyAlreadyOwner {
		return fmt.Errorf("request bus name %s: name is taken (reply %d)", name, r)
	}
	return nil
}

// Export publishes iface at path. The path must be valid and free.
// Export is safe to call from handlers.
func (s *Server) Export(path dbus.ObjectPath, iface *Interface) error {
	if !path.IsValid() {
		return fmt.Errorf("export %q: invalid object path", path)
	}
	if iface == nil || iface.Name == "" {
		return fmt.Errorf("export %s: interface without a name", path)
	}
	for _, p := range iface.Properties {
		if p.Get == nil {
			return fmt.Errorf("export %s: property %s has no getter", path, p.Name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[path]; ok {
		return fmt.Errorf("export %s: path already exported", path)
	}
	s.objects[path] = iface
	s.countNodes(path, 1)
	return nil
}

// countNodes adds delta to the descendant counts of path's ancestors.
func (s *Server) countNodes(path dbus.ObjectPath, delta int) {
	p := string(path)
	for p != "/" {
		i := strings.LastIndexByte(p, '/')
		parent, child := p[:i], p[i+1:]
		if parent == "" {
			parent = "/"
		}
		kids := s.nodes[dbus.ObjectPath(parent)]
		if kids == nil {
			kids = map[string]int{}
			s.nodes[dbus.ObjectPath(parent)] = kids
		}
		if kids[child] += delta; kids[child] <= 0 {
			delete(kids, child)
			if len(kids) == 0 {
				delete(s.nodes, dbus.ObjectPath(parent))
			}
		}
		p = parent
	}
}

// Unexport removes the object at path; it reports whether there was one.
func (s *Server) Unexport(path dbus.ObjectPath) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects[path]
	if ok {
		delete(s.objects, path)
		s.countNodes(path, -1)
	}
	return ok
}

// Exported reports whether an object is exported at path.
func (s *Server) Exported(path dbus.ObjectPath) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.objects[path]
	return ok
}

// lookup returns the object at path (nil if none) and whether path has
// exported objects below it; its cost does not grow with the number of
// exported objects.
func (s *Server) lookup(path dbus.ObjectPath) (*Interface, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.objects[path], len(s.nodes[path]) > 0
}

// children lists the names of path's direct children, sorted.
func (s *Server) children(path dbus.ObjectPath) []string {
	s.mu.RLock()
	kids := make([]string, 0, len(s.nodes[path]))
	for k := range s.nodes[path] {
		kids = append(kids, k)
	}
	s.mu.RUnlock()
	sort.Strings(kids)
	return kids
}

// Credentials returns the UID and PID of a unique bus name, from the cache
// or from the bus. Callers that need one unique name's credentials while
// they are being asked for share that question (a backend's first calls
// arrive together: its Attach, its registration, the owner lookup of its
// name); one whose question failed (its caller left) asks for itself.
func (s *Server) Credentials(ctx context.Context, sender string) (uid, pid uint32, err error) {
	unique := strings.HasPrefix(sender, ":") // only unique names are immutable
	s.credMu.Lock()
	if c, ok := s.creds[sender]; ok {
		s.credMu.Unlock()
		return c.uid, c.pid, nil
	}
	l, busy := s.inflight[sender]
	if busy {
		l.waiters++
	} else if unique {
		l = &credLookup{done: make(chan struct{})}
		if s.inflight == nil {
			s.inflight = map[string]*credLookup{}
		}
		s.inflight[sender] = l
	}
	hook := s.credHook
	s.credMu.Unlock()
	if busy {
		select {
		case <-l.done:
			if l.err == nil {
				return l.c.uid, l.c.pid, nil
			}
			c, err := s.askCredentials(ctx, sender)
			return c.uid, c.pid, err
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("credentials of %s: %w", sender, ctx.Err())
		}
	}
	if l == nil { // a well-known name: its owner may change, nothing shared
		c, err := s.askCredentials(ctx, sender)
		return c.uid, c.pid, err
	}
	if hook != nil {
		hook(l)
	}
	l.c, l.err = s.askCredentials(ctx, sender)
	s.credMu.Lock()
	delete(s.inflight, sender)
	s.credMu.Unlock()
	close(l.done)
	return l.c.uid, l.c.pid, l.err
}

// askCredentials asks the bus; a unique name's answer is cached.
func (s *Server) askCredentials(ctx context.Context, sender string) (creds, error) {
	var m map[string]dbus.Variant
	err := s.Conn().BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&m)
	if err != nil {
		return creds{}, fmt.Errorf("credentials of %s: %w", sender, err)
	}
	u, uok := m["UnixUserID"].Value().(uint32)
	p, pok := m["ProcessID"].Value().(uint32)
	if !uok || !pok {
		return creds{}, fmt.Errorf("credentials of %s: bus gave no UnixUserID/ProcessID", sender)
	}
	c := creds{u, p}
	if strings.HasPrefix(sender, ":") {
		s.credMu.Lock()
		if len(s.creds) >= maxCachedCreds {
			clear(s.creds)
		}
		s.creds[sender] = c
		s.credMu.Unlock()
	}
	return c, nil
}

// WatchNames calls fn for every NameOwnerChanged on the bus (newOwner "" when
// a name is released or a connection vanished; for a vanished connection
// name == oldOwner == its unique name). fn runs on the server's signal
// goroutine and must not block; the returned func stops the watch.
func (s *Server) WatchNames(fn func(name, oldOwner, newOwner string)) (stop func()) {
	s.watchMu.Lock()
	id := s.nextID
	s.nextID++
	s.watchers[id] = fn
	s.watchMu.Unlock()
	return func() {
		s.watchMu.Lock()
		delete(s.watchers, id)
		s.watchMu.Unlock()
	}
}

func (s *Server) signalLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case sig, ok := <-s.sigCh:
			if !ok {
				return
			}
			if sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
				continue
			}
			name, _ := sig.Body[0].(string)
			oldOwner, _ := sig.Body[1].(string)
			newOwner, _ := sig.Body[2].(string)
			if newOwner == "" && strings.HasPrefix(name, ":") {
				s.credMu.Lock()
				delete(s.creds, name)
				s.credMu.Unlock()
			}
			s.watchMu.Lock()
			fns := make([]func(string, string, string), 0, len(s.watchers))
			for _, fn := range s.watchers {
				fns = append(fns, fn)
			}
			s.watchMu.Unlock()
			for _, fn := range fns {
				fn(name, oldOwner, newOwner)
			}
		}
	}
}

// Emit broadcasts a signal from path.
func (s *Server) Emit(path dbus.ObjectPath, iface, name string, args ...any) error {
	if err := s.Conn().Emit(path, iface+"."+name, args...); err != nil {
		return fmt.Errorf("emit %s.%s from %s: %w", iface, name, path, err)
	}
	return nil
}

// EmitTo sends a signal from path to one destination only (unicast).
func (s *Server) EmitTo(destination string, path dbus.ObjectPath, iface, name string, args ...any) error {
	msg := &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(name),
			dbus.FieldDestination: dbus.MakeVariant(destination),
		},
		Body: args,
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	if err := s.Conn().Send(msg, nil).Err; err != nil {
		return fmt.Errorf("emit %s.%s from %s to %s: %w", iface, name, path, destination, err)
	}
	return nil
}

// EmitPropertiesChanged broadcasts org.freedesktop.DBus.Properties.PropertiesChanged
// for properties a service changed by itself.
func (s *Server) EmitPropertiesChanged(path dbus.ObjectPath, iface string, changed map[string]dbus.Variant, invalidated []string) error {
	if changed == nil {
		changed = map[string]dbus.Variant{}
	}
	if invalidated == nil {
		invalidated = []string{}
	}
	return s.Emit(path, ifaceProperties, "PropertiesChanged", iface, changed, invalidated)
}
