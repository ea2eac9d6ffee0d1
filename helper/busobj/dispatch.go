package busobj

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

const (
	ifaceProperties     = api.InterfaceProperties
	ifaceIntrospectable = api.InterfaceIntrospectable
)

func header[T any](msg *dbus.Message, f dbus.HeaderField) T {
	var zero T
	v, ok := msg.Headers[f]
	if !ok {
		return zero
	}
	t, _ := v.Value().(T)
	return t
}

// handle runs one incoming method call and answers it.
func (s *Server) handle(ctx context.Context, conn *dbus.Conn, msg *dbus.Message) {
	c := &Call{
		Ctx:         ctx,
		Server:      s,
		Path:        header[dbus.ObjectPath](msg, dbus.FieldPath),
		Interface:   header[string](msg, dbus.FieldInterface),
		Member:      header[string](msg, dbus.FieldMember),
		Sender:      header[string](msg, dbus.FieldSender),
		Interactive: msg.Flags&dbus.FlagAllowInteractiveAuthorization != 0,
		Message:     msg,
	}
	handed := false // received fds belong to the handler once it runs
	defer func() {
		if !handed {
			closeFDs(msg.Body)
		}
	}()
	body, err := s.dispatch(c, &handed)
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		c.runAfterReply()
		return
	}
	if err := conn.Send(replyTo(msg, body, err), nil).Err; err != nil {
		s.logger.Debug("busobj: reply not sent", "path", c.Path, "member", c.Member, "err", err)
	}
	c.runAfterReply()
}

// replyTo is the reply to msg: body, or err when not nil.
func replyTo(msg *dbus.Message, body []any, err error) *dbus.Message {
	var reply *dbus.Message
	if err != nil {
		reply = errorReply(err)
	} else {
		reply = &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{}, Body: body}
		if len(body) > 0 {
			reply.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
		}
	}
	reply.Headers[dbus.FieldReplySerial] = dbus.MakeVariant(msg.Serial())
	if sender := header[string](msg, dbus.FieldSender); sender != "" {
		reply.Headers[dbus.FieldDestination] = dbus.MakeVariant(sender)
	}
	return reply
}

func errorReply(err error) *dbus.Message {
	var de *dbus.Error
	if !errors.As(err, &de) || de == nil {
		de = api.Error(api.DomainRequest, err.Error())
	}
	m := &dbus.Message{Type: dbus.TypeError, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldErrorName: dbus.MakeVariant(de.Name),
	}, Body: de.Body}
	if len(de.Body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(de.Body...))
	}
	return m
}

func closeFDs(body []any) {
	for _, v := range body {
		switch fd := v.(type) {
		case dbus.UnixFD:
			_ = closeFD(int(fd))
		case []dbus.UnixFD:
			for _, f := range fd {
				_ = closeFD(int(f))
			}
		}
	}
}

// bodySig is the signature the caller sent. The header field is the truth:
// godbus decodes arrays of structs into nested []any, whose re-computed
// signature (aav) would no longer match the declared a(suibb).
func bodySig(msg *dbus.Message) string {
	if s, ok := msg.Headers[dbus.FieldSignature].Value().(dbus.Signature); ok {
		return s.String()
	}
	if len(msg.Body) == 0 {
		return ""
	}
	return dbus.SignatureOf(msg.Body...).String()
}

func argsSig(args []Arg) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.Type)
	}
	return b.String()
}

func (s *Server) dispatch(c *Call, handed *bool) (body []any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("busobj: handler panicked", "path", c.Path, "member", c.Member, "panic", r, "stack", string(debug.Stack()))
			body, err = nil, api.ErrFailed("internal error")
		}
	}()
	obj, inner := s.lookup(c.Path)
	if obj == nil {
		if !inner {
			return nil, api.ErrUnknownObject(c.Path)
		}
		// an intermediate path: only introspection
		if c.Interface == ifaceIntrospectable || c.Interface == "" && c.Member == "Introspect" {
			return s.introspectCall(c, nil)
		}
		return nil, api.ErrUnknownInterface(c.Interface, c.Path)
	}
	switch {
	case c.Interface == ifaceIntrospectable:
		return s.introspectCall(c, obj)
	case c.Interface == ifaceProperties:
		return s.propertiesCall(c, obj)
	case c.Interface == obj.Name || c.Interface == "":
		return s.methodCall(c, obj, handed)
	}
	return nil, api.ErrUnknownInterface(c.Interface, c.Path)
}

func (s *Server) introspectCall(c *Call, obj *Interface) ([]any, error) {
	if c.Member != "Introspect" {
		return nil, api.ErrUnknownMethod(c.Member)
	}
	if sig := bodySig(c.Message); sig != "" {
		return nil, api.ErrSignature(sig, "")
	}
	return []any{introspectXML(obj, s.children(c.Path))}, nil
}

// identify fills in the caller's credentials.
func (s *Server) identify(c *Call) error {
	if c.Sender == "" {
		return api.ErrAccessDenied("Could not identify the caller")
	}
	uid, pid, err := s.Credentials(c.Ctx, c.Sender)
	if err != nil {
		s.logger.Debug("busobj: caller credentials", "sender", c.Sender, "err", err)
		return api.ErrAccessDenied("Could not identify the caller")
	}
	c.UID, c.PID = uid, pid
	return nil
}

func (s *Server) methodCall(c *Call, obj *Interface, handed *bool) ([]any, error) {
	var m *Method
	for i := range obj.Methods {
		if obj.Methods[i].Name == c.Member {
			m = &obj.Methods[i]
			break
		}
	}
	if m == nil {
		return nil, api.ErrUnknownMethod(c.Member)
	}
	c.Interface = obj.Name
	if got, want := bodySig(c.Message), argsSig(m.In); got != want {
		return nil, api.ErrSignature(got, want)
	}
	if err := s.identify(c); err != nil {
		return nil, err
	}
	c.Op = OpMethod
	c.Args = c.Message.Body
	if obj.Authorize != nil {
		if err := obj.Authorize(c); err != nil {
			var de *dbus.Error
			if errors.As(err, &de) && de != nil {
				return nil, de
			}
			text := err.Error()
			if text == "" {
				text = fmt.Sprintf("Authorization failed for %s performing method call %s.%s in object %s",
					c.Sender, obj.Name, c.Member, c.Path)
			}
			return nil, api.Error(api.DomainGDBusPP, text)
		}
	}
	if m.Handler == nil {
		return nil, nil
	}
	*handed = true
	out, err := m.Handler(c)
	if err != nil {
		var de *dbus.Error
		if !errors.As(err, &de) || de == nil {
			de = api.Error(api.DomainRequest, err.Error())
		}
		return nil, de
	}
	if got, want := sigOf(out), argsSig(m.Out); got != want && (got != "" || !m.OutOptional) {
		c.runAfterReply()
		s.logger.Error("busobj: handler returned the wrong types", "path", c.Path, "method", c.Member, "got", got, "want", want)
		return nil, api.ErrFailed("internal error: reply does not match the declared signature")
	}
	return out, nil
}

func sigOf(vals []any) string {
	if len(vals) == 0 {
		return ""
	}
	return dbus.SignatureOf(vals...).String()
}

func findProp(obj *Interface, name string) *Property {
	for i := range obj.Properties {
		if obj.Properties[i].Name == name {
			return &obj.Properties[i]
		}
	}
	return nil
}

func (s *Server) authorizeProp(c *Call, obj *Interface) error {
	if obj.Authorize == nil {
		return nil
	}
	err := obj.Authorize(c)
	if err == nil {
		return nil
	}
	text := api.ErrorText(err)
	if text == "" {
		// An error without a message is useless to the caller (and
		// breaks clients that print it), as for method calls.
		text = fmt.Sprintf("Authorization failed for %s accessing the properties of %s in object %s", c.Sender, obj.Name, c.Path)
	}
	return api.ErrAccessDenied(text)
}

func (s *Server) getProp(c *Call, p *Property) (dbus.Variant, error) {
	v, err := p.Get(c)
	if err != nil {
		var de *dbus.Error
		if errors.As(err, &de) && de != nil {
			return dbus.Variant{}, de
		}
		return dbus.Variant{}, api.ErrFailed(err.Error())
	}
	if vv, ok := v.(dbus.Variant); ok {
		return vv, nil
	}
	return dbus.MakeVariant(v), nil
}

func (s *Server) propertiesCall(c *Call, obj *Interface) ([]any, error) {
	sig := bodySig(c.Message)
	args := c.Message.Body
	switch c.Member {
	case "Get":
		if sig != "ss" {
			return nil, api.ErrSignature(sig, "ss")
		}
		ifn, name := args[0].(string), args[1].(string)
		if ifn != obj.Name {
			return nil, api.ErrNoSuchInterface(ifn)
		}
		p := findProp(obj, name)
		if p == nil {
			return nil, api.ErrNoSuchProperty(name)
		}
		if err := s.identify(c); err != nil {
			return nil, err
		}
		c.Interface, c.Op, c.Member = obj.Name, OpGet, name
		if err := s.authorizeProp(c, obj); err != nil {
			return nil, err
		}
		v, err := s.getProp(c, p)
		if err != nil {
			return nil, err
		}
		return []any{v}, nil
	case "GetAll":
		if sig != "s" {
			return nil, api.ErrSignature(sig, "s")
		}
		ifn := args[0].(string)
		if ifn != obj.Name {
			return nil, api.ErrNoSuchInterface(ifn)
		}
		if err := s.identify(c); err != nil {
			return nil, err
		}
		all := map[string]dbus.Variant{}
		for i := range obj.Properties {
			p := &obj.Properties[i]
			pc := &Call{Ctx: c.Ctx, Server: s, Path: c.Path, Interface: obj.Name, Op: OpGet, Member: p.Name,
				Sender: c.Sender, UID: c.UID, PID: c.PID, Interactive: c.Interactive, Message: c.Message}
			if s.authorizeProp(pc, obj) != nil {
				continue
			}
			v, err := s.getProp(pc, p)
			if err != nil {
				continue
			}
			all[p.Name] = v
		}
		return []any{all}, nil
	case "Set":
		if sig != "ssv" {
			return nil, api.ErrSignature(sig, "ssv")
		}
		ifn, name, val := args[0].(string), args[1].(string), args[2].(dbus.Variant)
		if ifn != obj.Name {
			return nil, api.ErrNoSuchInterface(ifn)
		}
		p := findProp(obj, name)
		if p == nil {
			return nil, api.ErrNoSuchProperty(name)
		}
		if p.Set == nil {
			return nil, api.ErrNotWritable(name)
		}
		if got := val.Signature().String(); got != p.Type {
			return nil, api.ErrPropertyType(name, p.Type, got)
		}
		if err := s.identify(c); err != nil {
			return nil, err
		}
		c.Interface, c.Op, c.Member = obj.Name, OpSet, name
		if err := s.authorizeProp(c, obj); err != nil {
			return nil, err
		}
		if err := p.Set(c, val.Value()); err != nil {
			var de *dbus.Error
			if errors.As(err, &de) && de != nil {
				return nil, de
			}
			return nil, api.ErrFailed(err.Error())
		}
		if err := s.EmitPropertiesChanged(c.Path, obj.Name, map[string]dbus.Variant{name: val}, nil); err != nil {
			s.logger.Debug("busobj: PropertiesChanged", "path", c.Path, "err", err)
		}
		return nil, nil
	}
	return nil, api.ErrUnknownMethod(c.Member)
}
