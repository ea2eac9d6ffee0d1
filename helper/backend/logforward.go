package backend

import (
	"context"
	"log/slog"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// signalHandler is a slog.Handler that passes records on to an inner
// handler (the process's stderr, copied into the helper's journal, with
// every structured field) and also sends them as Log signals to the
// session manager — as the sentence a person reads in `openvpn3 log`, at
// the openvpn3 category that fits (logsentence.go). Records carry no
// secrets: the engine and the backend never log credentials or keys.
type signalHandler struct {
	inner  slog.Handler
	b      *Backend
	group  api.LogGroup
	prefix string      // from WithGroup
	attrs  []slog.Attr // from WithAttrs, keys already prefixed
}

func newSignalHandler(inner slog.Handler, b *Backend, group api.LogGroup) *signalHandler {
	return &signalHandler{inner: inner, b: b, group: group}
}

// Enabled is true for everything the session may want: the log level of
// the session decides in emitLog, the inner handler decides for itself.
func (h *signalHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *signalHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.inner.Enabled(ctx, r.Level) {
		err = h.inner.Handle(ctx, r)
	}
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = flatten(attrs, h.prefix, a)
		return true
	})
	text, cat := phrase(r.Message, r.Level, attrs)
	if text != "" {
		h.b.emitLog(h.group, cat, sanitize(text))
	}
	return err
}

// flatten appends a with its key prefixed, groups opened into their
// members ("tls.alert").
func flatten(out []slog.Attr, prefix string, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		p := prefix + a.Key + "."
		if a.Key == "" {
			p = prefix
		}
		for _, g := range a.Value.Group() {
			out = flatten(out, p, g)
		}
		return out
	}
	if a.Equal(slog.Attr{}) {
		return out
	}
	return append(out, slog.Attr{Key: prefix + a.Key, Value: a.Value})
}

func (h *signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	attrs := append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		attrs = flatten(attrs, h.prefix, a)
	}
	return &signalHandler{inner: h.inner.WithAttrs(as), b: h.b, group: h.group, prefix: h.prefix, attrs: attrs}
}

func (h *signalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &signalHandler{inner: h.inner.WithGroup(name), b: h.b, group: h.group, prefix: h.prefix + name + ".", attrs: h.attrs}
}

// category maps slog levels to LogCategory (spec §3.6).
func category(l slog.Level) api.LogCategory {
	switch {
	case l >= slog.LevelError:
		return api.LogCategoryError
	case l >= slog.LevelWarn:
		return api.LogCategoryWarn
	case l >= slog.LevelInfo:
		return api.LogCategoryInfo
	case l >= slog.LevelDebug:
		return api.LogCategoryVerb2
	default:
		return api.LogCategoryDebug
	}
}
