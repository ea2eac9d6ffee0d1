package backend

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// The engine and the backend log events for the helper's journal: a short
// message and structured fields ("TLS handshake done" key_id=0 version=…).
// A person following a session (`openvpn3 log`, the tray's log window)
// gets each event as a sentence instead, at the openvpn3 category that
// fits it. phrasings holds one entry per message; a message without one
// (a new debug event) is still rendered readably by plainSentence.
//
// The phrasing functions read fields by name; a field that is missing
// reads as "" and the sentence leaves it out.

// fields gives a phrasing its record's attributes by key.
type fields map[string]slog.Value

func (f fields) str(k string) string {
	v, ok := f[k]
	if !ok {
		return ""
	}
	return fmt.Sprint(v.Any())
}

func (f fields) has(k string) bool { return f.str(k) != "" }

// phrasing turns one event into a sentence and its category; "" drops
// the event from the session log (the journal keeps it).
type phrasing func(f fields, level slog.Level) (string, api.LogCategory)

// at fixes the category of a phrasing whose text needs no level.
func at(cat api.LogCategory, text func(f fields) string) phrasing {
	return func(f fields, _ slog.Level) (string, api.LogCategory) { return text(f), cat }
}

// said is a phrasing that is always the same sentence.
func said(cat api.LogCategory, sentence string) phrasing {
	return at(cat, func(fields) string { return sentence })
}

// saidWith is sentence, then ": " and the field key when the record has it.
func saidWith(cat api.LogCategory, sentence, key string) phrasing {
	return at(cat, func(f fields) string { return sentence + colon(f.str(key)) })
}

var phrasings = map[string]phrasing{
	// ---- engine (helper/openvpn/engine) ----
	"state":      phraseState,
	"connecting": phraseConnecting,
	"TLS handshake done": func(f fields, _ slog.Level) (string, api.LogCategory) {
		s := "handshake with the server done"
		if v := f.str("version"); v != "" {
			s = v + " " + s
		}
		cat := api.LogCategoryInfo
		if k := f.str("key_id"); k != "" && k != "0" {
			s += " for key " + k
			cat = api.LogCategoryVerb1
		}
		if c := f.str("cipher"); c != "" {
			s += " (" + c + ")"
		}
		return s, cat
	},
	"connected": at(api.LogCategoryInfo, func(f fields) string {
		s := "Connected"
		var parts []string
		if t := f.str("tun"); t != "" {
			parts = append(parts, "tunnel "+t)
		}
		if c := f.str("cipher"); c != "" {
			parts = append(parts, c)
		}
		if len(parts) > 0 {
			s += ": " + strings.Join(parts, ", ")
		}
		if d := f.str("took"); d != "" {
			s += " (in " + d + ")"
		}
		return s
	}),
	"renegotiating": at(api.LogCategoryVerb1, func(f fields) string {
		return "Renegotiating the data channel keys" + paren("key", f.str("key_id"))
	}),
	"renegotiated": at(api.LogCategoryVerb1, func(f fields) string {
		s := "New data channel keys in use"
		if k := f.str("key_id"); k != "" {
			s += " (key " + k
			if d := f.str("took"); d != "" {
				s += ", after " + d
			}
			s += ")"
		}
		return s
	}),
	"key limit reached": at(api.LogCategoryInfo, func(f fields) string {
		s := "Data channel key"
		if k := f.str("key_id"); k != "" {
			s += " " + k
		}
		s += " reached its limit"
		if l := f.str("limit"); l != "" {
			s += " (" + l + ")"
		}
		return s + "; renegotiating"
	}),
	"retrying": at(api.LogCategoryWarn, func(f fields) string {
		s := "Trying again"
		if d := f.str("after"); d != "" && d != "0s" {
			s += " in " + d
		}
		if r := f.str("reason"); r != "" {
			s += ": " + r
		}
		return s
	}),
	"waiting before the next connection attempt": at(api.LogCategoryVerb1, func(f fields) string {
		if d := f.str("delay"); d != "" {
			return "Waiting " + d + " before the next connection attempt"
		}
		return "Waiting before the next connection attempt"
	}),
	"remote not usable": at(api.LogCategoryWarn, func(f fields) string {
		s := "Cannot use the server"
		if r := f.str("remote"); r != "" {
			s += " " + r
		}
		return s + colon(f.str("err"))
	}),
	"no address of the remote answered": at(api.LogCategoryWarn, func(f fields) string {
		s := "No address of the server"
		if r := f.str("remote"); r != "" {
			s += " " + r
		}
		return s + " answered" + colon(f.str("err"))
	}),
	"happy eyeballs: first to answer": at(api.LogCategoryVerb1, func(f fields) string {
		if srv := f.str("server"); srv != "" {
			return "First to answer: " + describeServer(srv)
		}
		return "First address to answer chosen"
	}),
	"connection ended": at(api.LogCategoryWarn, func(f fields) string {
		s := "The connection"
		if srv := f.str("server"); srv != "" {
			s += " to " + describeServer(srv)
		}
		return s + " ended" + colon(f.str("err"))
	}),
	"server info": at(api.LogCategoryInfo, func(f fields) string {
		s := "Message from the server"
		if t := f.str("text"); t != "" {
			s += ": " + t
		}
		if u := f.str("url"); u != "" {
			s += " " + u
		}
		return s
	}),
	"pushed tun-mtu is larger than tun-mtu-max; ignored": at(api.LogCategoryWarn, func(f fields) string {
		return fmt.Sprintf("The server pushed tun-mtu %s, more than tun-mtu-max %s: keeping %s",
			f.str("tun_mtu"), f.str("tun_mtu_max"), f.str("using"))
	}),
	"data channel not offloaded, using TUN": saidWith(api.LogCategoryWarn,
		"The data channel runs through the TUN device, not offloaded to the kernel", "reason"),
	"deleting the offloaded peer": saidWith(api.LogCategoryWarn, "Could not remove the offloaded peer from the kernel", "err"),
	"deleting the lame-duck key":  saidWith(api.LogCategoryWarn, "Could not remove the previous data channel key", "err"),
	"server reset":                said(api.LogCategoryVerb2, "The server answered the connection request"),
	"server address changed (float)": at(api.LogCategoryInfo, func(f fields) string {
		s := "The server moved"
		if from := f.str("from"); from != "" {
			s += " from " + from
		}
		if to := f.str("to"); to != "" {
			s += " to " + to
		}
		return s + " (float)"
	}),
	"pushed option not applied": saidWith(api.LogCategoryWarn, "A pushed option was not applied", "detail"),
	"pushed option unknown to this client, ignored": at(api.LogCategoryWarn, func(f fields) string {
		if o := f.str("option"); o != "" {
			return "The server pushed the option '" + o + "', which this client does not know; ignored"
		}
		return "The server pushed an option this client does not know; ignored"
	}),
	"auth-token renewed": said(api.LogCategoryVerb1, "The server renewed the session's authentication token"),

	// ---- backend (this package) ----
	"data channel offload requested, using TUN instead": at(api.LogCategoryWarn, func(f fields) string {
		return "Data channel offload (DCO) was requested; this session uses a TUN device instead" + paren("", f.str("reason"))
	}),
	"data channel offload requested and available": said(api.LogCategoryInfo,
		"Data channel offload (DCO) was requested and the kernel offers it"),
	"data channel offloaded to the kernel": at(api.LogCategoryInfo, func(f fields) string {
		return "The kernel carries the data channel (DCO)" + paren("device", f.str("device"))
	}),
	"profile loaded": at(api.LogCategoryVerb1, func(f fields) string {
		s := "Profile"
		if n := f.str("name"); n != "" {
			s += " '" + n + "'"
		}
		return s + " loaded" + paren("", f.str("config"))
	}),
	"waiting for the server": saidWith(api.LogCategoryVerb1, "Waiting for the server", "detail"),
	"TUN device ready": at(api.LogCategoryVerb1, func(f fields) string {
		return "Tunnel device " + f.str("device") + " is ready"
	}),
	"remove the early TUN device": saidWith(api.LogCategoryWarn, "The tunnel device made ahead of the connection could not be removed", "err"),
	"web authentication required": at(api.LogCategoryInfo, func(f fields) string {
		return "The server asks for web authentication: open " + f.str("url")
	}),
	"server asked to open a URL that is not http(s); ignored": said(api.LogCategoryWarn, "The server asked to open a URL that is not http or https; ignored"),
	"server asks a challenge during authentication":           said(api.LogCategoryInfo, "The server asks a challenge question"),
	"server sent a dynamic challenge":                         said(api.LogCategoryInfo, "The server asks a challenge question (dynamic challenge)"),
	"the server needs the credentials again":                  saidWith(api.LogCategoryInfo, "The server needs the credentials again", "detail"),
	"reconnect with the credentials":                          saidWith(api.LogCategoryWarn, "Could not reconnect with the credentials", "err"),
	"challenge answer sent to the server":                     said(api.LogCategoryInfo, "Challenge answer sent to the server"),
	"challenge answer not sent":                               saidWith(api.LogCategoryWarn, "The challenge answer was not sent", "err"),
	"the HTTP proxy refused the credentials":                  saidWith(api.LogCategoryWarn, "The HTTP proxy refused the credentials", "detail"),
}

// phraseState renders the engine's state changes. The status signals
// carry them as well; the log says them as events, at a level that does
// not repeat the INFO lines of the same moment.
func phraseState(f fields, _ slog.Level) (string, api.LogCategory) {
	detail := f.str("detail")
	switch f.str("state") {
	case "connecting":
		return "Starting the connection", api.LogCategoryVerb2
	case "waiting-for-server":
		return "Waiting for the server to complete the handshake", api.LogCategoryVerb1
	case "connected":
		return "The tunnel is up", api.LogCategoryVerb2
	case "reconnecting":
		if detail == "" {
			return "Reconnecting", api.LogCategoryInfo
		}
		return "Reconnecting: " + detail, api.LogCategoryWarn
	case "disconnected":
		return "Disconnected", api.LogCategoryInfo
	case "auth-failed":
		return "Authentication failed" + colon(detail), api.LogCategoryError
	case "failed":
		return "Connection failed" + colon(detail), api.LogCategoryError
	case "done":
		return "The session ended" + colon(detail), api.LogCategoryInfo
	}
	return "State " + f.str("state") + colon(detail), api.LogCategoryVerb1
}

// phraseConnecting is the engine's "connecting" (one attempt, with the
// server as "ip:port/proto[ via http-proxy host:port]") or the backend's
// (the start of Connect, with the profile path).
func phraseConnecting(f fields, _ slog.Level) (string, api.LogCategory) {
	if srv := f.str("server"); srv != "" {
		return "Connecting to " + describeServer(srv), api.LogCategoryInfo
	}
	return "Starting the VPN client" + paren("profile", f.str("config")), api.LogCategoryVerb1
}

// describeServer turns the engine's endpoint text "198.18.0.1:1194/udp"
// into "198.18.0.1:1194 over UDP" (and "… via the HTTP proxy p:3128").
func describeServer(s string) string {
	s, proxy, viaProxy := strings.Cut(s, " via http-proxy ")
	addr, proto, ok := strings.Cut(s, "/")
	out := addr
	if ok {
		out += " over " + strings.ToUpper(proto)
	}
	if viaProxy {
		out += " via the HTTP proxy " + proxy
	}
	return out
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// paren is " (label v)" or " (v)", or "" without a value.
func paren(label, v string) string {
	if v == "" {
		return ""
	}
	if label == "" {
		return " (" + v + ")"
	}
	return " (" + label + " " + v + ")"
}

// phrase is the sentence and category for one record.
func phrase(msg string, level slog.Level, attrs []slog.Attr) (string, api.LogCategory) {
	f := fields{}
	for _, a := range attrs {
		f[a.Key] = a.Value
	}
	if p, ok := phrasings[msg]; ok {
		text, cat := p(f, level)
		// A warning or an error stays one, whatever the phrasing says.
		if c := category(level); level >= slog.LevelWarn && c > cat {
			cat = c
		}
		return capitalize(text), cat
	}
	return plainSentence(msg, attrs), category(level)
}

// plainSentence renders an event that has no phrasing: the message as a
// sentence, the error after a colon, other fields in parentheses.
func plainSentence(msg string, attrs []slog.Attr) string {
	var errText string
	var rest []string
	for _, a := range attrs {
		v := fmt.Sprint(a.Value.Any())
		if a.Key == "err" || strings.HasSuffix(a.Key, ".err") {
			errText = v
			continue
		}
		rest = append(rest, strings.ReplaceAll(a.Key, "_", " ")+" "+v)
	}
	s := capitalize(msg)
	if len(rest) > 0 {
		s += " (" + strings.Join(rest, ", ") + ")"
	}
	return s + colon(errText)
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsLower(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
