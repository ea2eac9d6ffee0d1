package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// Error texts of spec §2.6 / §4.3.
const (
	textInvalidToken      = "Invalid registration token"
	textAlreadyRegistered = "Backend service is already registered"
	textNotInitialized    = "Backend service is not initialized"
	textInputMissing      = "Required user input not provided"
	textMissingCreds      = "Missing user credentials"
)

func errClient(text string) error { return api.Error(api.DomainClient, text) }

// managerOnly are the properties only the session manager may read.
var managerOnly = map[string]bool{"statistics": true, "device_name": true, "session_name": true, "last_log_line": true}

// authorize: every method, Set and the private properties only from the
// current owner of net.openvpn.v3.sessions (spec §5.4).
func (b *Backend) authorize(c *busobj.Call) error {
	if c.Op == busobj.OpGet && !managerOnly[c.Member] {
		return nil
	}
	if c.OwnsName(api.ServiceSessions) {
		return nil
	}
	b.opts.Logger.Warn("unauthorized backend access", "sender", c.Sender, "uid", c.UID, "op", c.Op.String(), "member", c.Member)
	return busobj.Deny("")
}

func (b *Backend) iface() *busobj.Interface {
	u := func(n string) busobj.Arg { return busobj.Arg{Name: n, Type: "u"} }
	s := func(n string) busobj.Arg { return busobj.Arg{Name: n, Type: "s"} }
	ro := func(name, typ string, get func() any) busobj.Property {
		return busobj.Property{Name: name, Type: typ, Get: func(*busobj.Call) (any, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			return get(), nil
		}}
	}
	return &busobj.Interface{
		Name:      api.InterfaceBackends,
		Authorize: b.authorize,
		Methods: []busobj.Method{
			{
				Name: "RegistrationConfirmation",
				In:   []busobj.Arg{s("token"), {Name: "session_path", Type: "o"}, {Name: "config_path", Type: "o"}},
				Out:  []busobj.Arg{s("config_name")},
				Handler: func(c *busobj.Call) ([]any, error) {
					name, err := b.registrationConfirmation(c.Ctx, c.Args[0].(string), c.Args[1].(dbus.ObjectPath), c.Args[2].(dbus.ObjectPath))
					if err != nil {
						return nil, err
					}
					return []any{name}, nil
				},
			},
			{Name: "Ping", Out: []busobj.Arg{{Name: "alive", Type: "b"}},
				Handler: func(*busobj.Call) ([]any, error) { return []any{true}, nil }},
			{Name: "Ready", Handler: func(*busobj.Call) ([]any, error) { return nil, b.ready() }},
			{Name: "Connect", Handler: b.afterEvaluation(func(*busobj.Call) ([]any, error) { return nil, b.connect() })},
			{Name: "Pause", In: []busobj.Arg{s("reason")}, Handler: func(c *busobj.Call) ([]any, error) {
				return nil, b.pause(c.Ctx, c.Args[0].(string))
			}},
			{Name: "Resume", Handler: func(*busobj.Call) ([]any, error) { return nil, b.resume() }},
			{Name: "Restart", Handler: b.afterEvaluation(func(*busobj.Call) ([]any, error) { return nil, b.restart() })},
			{Name: "Disconnect", Handler: func(c *busobj.Call) ([]any, error) {
				b.mu.Lock()
				running := b.runCancel != nil && !b.stopping
				b.mu.Unlock()
				if running {
					b.setStatus(api.StatusMajorConnection, api.StatusMinorConnDisconnecting, "")
				}
				b.teardown(c.Ctx)
				// Exit only once the reply is on the bus.
				c.AfterReply(func() { b.requestExit(nil) })
				return nil, nil
			}},
			{Name: "ForceShutdown", Handler: func(c *busobj.Call) ([]any, error) {
				b.teardown(c.Ctx)
				c.AfterReply(func() { b.requestExit(nil) })
				if c.Message.Flags&dbus.FlagNoReplyExpected != 0 {
					b.requestExit(nil)
				}
				return nil, nil
			}},
			{Name: "UserInputQueueGetTypeGroup", Out: []busobj.Arg{{Name: "type_group_list", Type: "a(uu)"}},
				Handler: func(*busobj.Call) ([]any, error) { return []any{b.queue().typeGroups()}, nil }},
			{Name: "UserInputQueueFetch", In: []busobj.Arg{u("type"), u("group"), u("id")},
				Out: []busobj.Arg{u("type"), u("group"), u("id"), s("name"), s("descripiton"), {Name: "hidden_input", Type: "b"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					sl, err := b.queue().fetch(c.Args[0].(uint32), c.Args[1].(uint32), c.Args[2].(uint32))
					if err != nil {
						return nil, err
					}
					return []any{sl.typ, sl.group, sl.id, sl.name, sl.description, sl.hidden}, nil
				}},
			{Name: "UserInputQueueCheck", In: []busobj.Arg{u("type"), u("group")}, Out: []busobj.Arg{{Name: "indexes", Type: "au"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return []any{b.queue().check(c.Args[0].(uint32), c.Args[1].(uint32))}, nil
				}},
			{Name: "UserInputProvide", In: []busobj.Arg{u("type"), u("group"), u("id"), s("value")},
				Handler: func(c *busobj.Call) ([]any, error) {
					return nil, b.provideInput(c.Args[0].(uint32), c.Args[1].(uint32), c.Args[2].(uint32), c.Args[3].(string))
				}},
		},
		Signals: []busobj.Signal{
			{Name: "Log", Args: []busobj.Arg{u("group"), u("level"), s("session_token"), s("message")}},
			{Name: "StatusChange", Args: []busobj.Arg{u("code_major"), u("code_minor"), s("message")}},
			{Name: "AttentionRequired", Args: []busobj.Arg{u("type"), u("group"), s("message")}},
			{Name: "RegistrationRequest", Args: []busobj.Arg{s("busname"), s("token"), {Name: "pid", Type: "i"}}},
		},
		Properties: []busobj.Property{
			ro("session_path", "o", func() any {
				if b.sessionPath == "" {
					return dbus.ObjectPath("/")
				}
				return b.sessionPath
			}),
			{Name: "dco", Type: "b", Get: func(*busobj.Call) (any, error) {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.dco, nil
			}, Set: func(_ *busobj.Call, v any) error {
				// A request: chooseDataPath decides at Connect, and once
				// connected it says whether the kernel really carries
				// the data channel.
				b.mu.Lock()
				b.dco = v.(bool)
				b.mu.Unlock()
				return nil
			}},
			ro("device_path", "o", func() any {
				if b.devicePath == "" {
					return dbus.ObjectPath("/")
				}
				return b.devicePath
			}),
			ro("device_name", "s", func() any { return b.deviceName }),
			{Name: "log_level", Type: "u", Get: func(*busobj.Call) (any, error) {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.logLevel, nil
			}, Set: func(_ *busobj.Call, v any) error {
				lvl := v.(uint32)
				if lvl > api.MaxLogLevel {
					return api.ErrFailed("Invalid log level")
				}
				b.mu.Lock()
				b.logLevel = lvl
				b.mu.Unlock()
				return nil
			}},
			ro("session_name", "s", func() any {
				if b.connectedLocked() {
					return b.client.Connection().ServerHost
				}
				return ""
			}),
			ro("connection", "(sssu)", func() any {
				if !b.connectedLocked() {
					return connection{}
				}
				ci := b.client.Connection()
				return connection{Proto: ci.Proto, Host: ci.ServerHost, IP: ci.ServerIP, Port: ci.Port}
			}),
			ro("statistics", "a{sx}", func() any {
				if b.client == nil {
					return map[string]int64{}
				}
				return statistics(b.client.Stats())
			}),
			ro("status", "(uus)", func() any {
				return statusTuple{uint32(b.status.Major), uint32(b.status.Minor), b.status.Message}
			}),
			ro("last_log_line", "a{sv}", func() any {
				if b.lastLog == (logLine{}) {
					return map[string]dbus.Variant{}
				}
				return map[string]dbus.Variant{
					"log_group":    dbus.MakeVariant(b.lastLog.group),
					"log_category": dbus.MakeVariant(b.lastLog.category),
					"log_message":  dbus.MakeVariant(b.lastLog.message),
				}
			}),
		},
	}
}

type connection struct {
	Proto, Host, IP string
	Port            uint32
}

type statusTuple struct {
	Major, Minor uint32
	Message      string
}

// registrationConfirmation checks the token, reads the profile from the
// configuration manager and parses it.
func (b *Backend) registrationConfirmation(ctx context.Context, token string, sessionPath, configPath dbus.ObjectPath) (string, error) {
	if token != b.token {
		return "", api.Error(api.DomainBERegistration, textInvalidToken)
	}
	b.mu.Lock()
	if b.registered {
		b.mu.Unlock()
		return "", api.Error(api.DomainBERegistration, textAlreadyRegistered)
	}
	b.registered = true
	b.sessionPath, b.configPath = sessionPath, configPath
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	// One round trip on the session start's path: the log service's
	// AssignSession goes beside the profile's FetchForBackend (ovpn3go's
	// own: the properties name, dco and overrides, then Fetch, which
	// removes a single-use profile, in one call).
	b.attached()
	assigned := b.assignLogSession(ctx, sessionPath)
	var name, text string
	var dco bool
	var overrides map[string]dbus.Variant
	err := b.srv.Conn().Object(api.ServiceConfiguration, configPath).CallWithContext(ctx,
		api.InterfaceConfiguration+".FetchForBackend", 0).Store(&name, &dco, &overrides, &text)
	if err != nil {
		msg := fmt.Sprintf("config_path=%s, eval_message='%s'", configPath, sanitize(api.ErrorText(err)))
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgError, msg)
		return "", errClient("Could not fetch the configuration profile: " + api.ErrorText(err))
	}
	// The profile's dco is the session's default (as name, read as
	// upstream does); the session manager sets ours again at Connect when
	// the session's own was changed.
	if dco {
		b.mu.Lock()
		b.dco = true
		b.mu.Unlock()
	}
	prof, err := profile.Parse(text)
	if err != nil {
		msg := fmt.Sprintf("config_path=%s, eval_message='%s'", configPath, sanitize(err.Error()))
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgError, msg)
		return "", errClient("Configuration parsing failed: " + err.Error())
	}
	err = refuseUnapplied(overrides)
	if err == nil {
		err = applyOverrides(prof, overrides)
	}
	var nov netOverrides
	var lvl uint32
	if err == nil {
		nov, err = applyProfileOverrides(prof, overrides, &lvl)
	}
	b.mu.Lock()
	b.netOv, b.ovLogLevel = nov, lvl
	b.mu.Unlock()
	if err != nil {
		msg := fmt.Sprintf("config_path=%s, eval_message='%s'", configPath, sanitize(err.Error()))
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgError, msg)
		return "", errClient("Configuration override refused: " + err.Error())
	}
	b.mu.Lock()
	b.prof = prof
	b.configName = name
	b.logLevel = profileLogLevel(prof, b.logLevel)
	if b.ovLogLevel != 0 {
		b.logLevel = b.ovLogLevel // the log-level override wins over verb
	}
	b.mu.Unlock()
	// A profile that asks the user (its own inputs, a locked key: known
	// without engine.Prepare, but for a PKCS#12 bundle) is evaluated
	// before the answer, so the session says so from the start.
	if prof.PKCS12 != "" || engine.NeedsKeyPassphrase(prof) || !newInputQueue(prof, false).empty() {
		b.prepareProfile(prof)
		assigned()
		b.log.Info("profile loaded", "config", configPath, "name", name)
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgOK, "config_path="+string(configPath))
		b.announceInput()
		return name, nil
	}
	// It asks nothing: its input queue is known, and empty.
	b.mu.Lock()
	b.inputs = newInputQueue(prof, false)
	b.mu.Unlock()
	assigned()
	b.log.Info("profile loaded", "config", configPath, "name", name)
	b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgOK, "config_path="+string(configPath))
	b.evaluateBehind(prof)
	return name, nil
}

// announceInput tells the session manager (and through it the front-ends)
// about every group of user input still missing.
func (b *Backend) announceInput() {
	for _, r := range b.queue().requests() {
		b.attention(api.AttentionTypeCredentials, r.group, r.attention)
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgRequireUser, r.state)
	}
}

func (b *Backend) attention(t api.AttentionType, g api.AttentionGroup, msg string) {
	_ = b.emit("AttentionRequired", uint32(t), uint32(g), msg)
}

// sanitize drops control characters from text sent in status messages.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func (b *Backend) queue() *inputQueue {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inputs == nil {
		b.inputs = newInputQueue(nil, false)
	}
	return b.inputs
}

func (b *Backend) ready() error {
	b.mu.Lock()
	registered := b.prof != nil
	webAuth := b.webAuthPendingLocked()
	b.mu.Unlock()
	if !registered {
		return errClient(textNotInitialized)
	}
	if b.queue().pending() {
		return api.Error(api.DomainReady, textMissingCreds)
	}
	if webAuth {
		return api.Error(api.DomainReady, textPendingWebAuth)
	}
	return nil
}
