package ctlmsg

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind identifies a control-channel text message.
type Kind int

const (
	Unknown Kind = iota
	PushReply
	PushUpdate
	AuthFailed
	AuthPending
	InfoPre
	Info
	Restart
	Halt
	Exit
	CRResponse
	PushRequest
)

// keywords in match order: longer keywords that share a prefix with a
// shorter one come first (INFO_PRE before INFO).
var keywords = []struct {
	word string
	kind Kind
}{
	{"PUSH_REPLY", PushReply},
	{"PUSH_UPDATE", PushUpdate},
	{"PUSH_REQUEST", PushRequest},
	{"AUTH_FAILED", AuthFailed},
	{"AUTH_PENDING", AuthPending},
	{"INFO_PRE", InfoPre},
	{"INFO", Info},
	{"RESTART", Restart},
	{"HALT", Halt},
	{"EXIT", Exit},
	{"CR_RESPONSE", CRResponse},
}

func (k Kind) String() string {
	for _, kw := range keywords {
		if kw.kind == k {
			return kw.word
		}
	}
	return "UNKNOWN"
}

// Message is one control-channel text message.
type Message struct {
	Kind Kind
	// Body is the text after "KEYWORD," ("" when there is none). For
	// Unknown it is the whole message.
	Body string
}

// MaxMessageLen bounds one message; OpenVPN's own control buffers are far
// smaller (push replies are split into continuation messages below 64 KiB).
const MaxMessageLen = 1 << 16

// ParseMessage decodes one control-channel message. Trailing NULs are
// stripped; the text must be valid UTF-8 without control characters other
// than tab, CR and LF. An unrecognised keyword is not an error: it yields
// Kind Unknown so the caller can log and ignore it, as OpenVPN does.
func ParseMessage(b []byte) (Message, error) {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return Message{}, errors.New("control message: empty")
	}
	if len(b) > MaxMessageLen {
		return Message{}, fmt.Errorf("control message: %d bytes, limit %d", len(b), MaxMessageLen)
	}
	if !utf8.Valid(b) {
		return Message{}, errors.New("control message: not valid UTF-8")
	}
	for i, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return Message{}, fmt.Errorf("control message: control byte 0x%02x at offset %d", c, i)
		}
	}
	s := string(b)
	for _, kw := range keywords {
		rest, ok := strings.CutPrefix(s, kw.word)
		if !ok {
			continue
		}
		switch {
		case rest == "":
			return Message{Kind: kw.kind}, nil
		case rest[0] == ',':
			return Message{Kind: kw.kind, Body: rest[1:]}, nil
		}
		// "INFORMATION" is not INFO: the keyword must end at a comma.
	}
	return Message{Kind: Unknown, Body: s}, nil
}

// Marshal encodes a message for sending: keyword, optional ",body", NUL.
func Marshal(kind Kind, body string) []byte {
	s := kind.String()
	if body != "" {
		s += "," + body
	}
	return append([]byte(s), 0)
}

// AuthFailure is the decoded reason of an AUTH_FAILED message.
type AuthFailure struct {
	// Reason is the human-readable text ("" when the server gave none).
	Reason string
	// Session: the auth-token expired or is invalid; drop it and
	// reconnect with real credentials.
	Session bool
	// Temp: temporary failure; retry after Backoff seconds (0 = default),
	// Advance says which remote to use next: "addr", "remote" or "no".
	Temp    bool
	Backoff int
	Advance string
	// Challenge is set for a dynamic challenge (CRV1).
	Challenge *Challenge
}

// Challenge is a CRV1 dynamic challenge: the client must reconnect with
// Username and password "CRV1::<StateID>::<response>".
type Challenge struct {
	Echo, ResponseRequired bool
	StateID                string
	Username               string
	Text                   string
}

// Response builds the password field answering the challenge.
func (c *Challenge) Response(answer string) string {
	return "CRV1::" + c.StateID + "::" + answer
}

// ParseAuthFailed decodes the body of an AUTH_FAILED message.
func ParseAuthFailed(body string) (AuthFailure, error) {
	switch {
	case strings.HasPrefix(body, "SESSION:"):
		return AuthFailure{Session: true, Reason: strings.TrimPrefix(body, "SESSION:")}, nil
	case strings.HasPrefix(body, "CRV1:"):
		c, err := parseCRV1(strings.TrimPrefix(body, "CRV1:"))
		if err != nil {
			return AuthFailure{}, err
		}
		return AuthFailure{Challenge: c, Reason: c.Text}, nil
	case body == "TEMP" || strings.HasPrefix(body, "TEMP[") || strings.HasPrefix(body, "TEMP:") || strings.HasPrefix(body, "TEMP,"):
		return parseTemp(strings.TrimPrefix(body, "TEMP"))
	}
	return AuthFailure{Reason: body}, nil
}

// parseTemp decodes "[backoff N,advance X]:msg" (both parts optional).
func parseTemp(s string) (AuthFailure, error) {
	f := AuthFailure{Temp: true}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return AuthFailure{}, errors.New("AUTH_FAILED,TEMP: unterminated '['")
		}
		for flag := range strings.SplitSeq(s[1:end], ",") {
			key, val, _ := strings.Cut(strings.TrimSpace(flag), " ")
			switch key {
			case "backoff":
				n, err := strconv.Atoi(strings.TrimSpace(val))
				if err != nil || n < 0 || n > 86400 {
					return AuthFailure{}, fmt.Errorf("AUTH_FAILED,TEMP: bad backoff %q", val)
				}
				f.Backoff = n
			case "advance":
				switch v := strings.TrimSpace(val); v {
				case "addr", "remote", "no":
					f.Advance = v
				default:
					return AuthFailure{}, fmt.Errorf("AUTH_FAILED,TEMP: bad advance %q", v)
				}
			case "":
			default:
				// Unknown flags are ignored for forward compatibility.
			}
		}
		s = s[end+1:]
	}
	if len(s) > 0 && (s[0] == ':' || s[0] == ',') {
		s = s[1:]
	}
	f.Reason = s
	return f, nil
}

// parseCRV1 decodes "flags:state_id:base64(username):text".
func parseCRV1(s string) (*Challenge, error) {
	parts := strings.SplitN(s, ":", 4)
	if len(parts) != 4 {
		return nil, errors.New("AUTH_FAILED,CRV1: want flags:state_id:username:text")
	}
	c := &Challenge{StateID: parts[1], Text: parts[3]}
	for f := range strings.SplitSeq(parts[0], ",") {
		switch f {
		case "E":
			c.Echo = true
		case "R":
			c.ResponseRequired = true
		}
	}
	user, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("AUTH_FAILED,CRV1: username is not base64: %w", err)
	}
	if !utf8.Valid(user) || strings.ContainsAny(string(user), "\x00\n") {
		return nil, errors.New("AUTH_FAILED,CRV1: username is not clean text")
	}
	c.Username = string(user)
	return c, nil
}

// ParseAuthPending decodes the body of AUTH_PENDING ("timeout N" or
// empty; further keywords are ignored). timeout is 0 when not given.
func ParseAuthPending(body string) (timeout int, err error) {
	for kw := range strings.SplitSeq(body, ",") {
		key, val, _ := strings.Cut(strings.TrimSpace(kw), " ")
		if key != "timeout" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("AUTH_PENDING: bad timeout %q", val)
		}
		timeout = n
	}
	return timeout, nil
}

// RestartInfo is the decoded body of RESTART (and HALT): optional flags in
// brackets, then a message.
type RestartInfo struct {
	KeepCredentials bool // [P]
	NextRemote      bool // [N]
	Text            string
}

// ParseRestart decodes "[flags]msg" (flags and message both optional).
func ParseRestart(body string) RestartInfo {
	var r RestartInfo
	if strings.HasPrefix(body, "[") {
		if end := strings.IndexByte(body, ']'); end > 0 {
			flags := body[1:end]
			r.KeepCredentials = strings.Contains(flags, "P")
			r.NextRemote = strings.Contains(flags, "N")
			body = body[end+1:]
		}
	}
	r.Text = body
	return r
}

// PendingInfo is the decoded body of INFO_PRE / INFO for pending auth.
type PendingInfo struct {
	Method string // "WEB_AUTH", "OPEN_URL", "CR_TEXT" or "" for plain text
	Flags  string // WEB_AUTH flags / CR_TEXT "E,R" flags
	Value  string // URL or challenge text
}

// ParseInfo decodes the body of INFO_PRE/INFO: WEB_AUTH:flags:url,
// OPEN_URL:url, CR_TEXT:flags:text; anything else is plain text.
func ParseInfo(body string) PendingInfo {
	method, rest, ok := strings.Cut(body, ":")
	if !ok {
		return PendingInfo{Value: body}
	}
	switch method {
	case "WEB_AUTH", "CR_TEXT":
		flags, val, ok := strings.Cut(rest, ":")
		if !ok {
			return PendingInfo{Method: method, Value: rest}
		}
		return PendingInfo{Method: method, Flags: flags, Value: val}
	case "OPEN_URL":
		return PendingInfo{Method: method, Value: rest}
	}
	return PendingInfo{Value: body}
}
