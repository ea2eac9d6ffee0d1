package profile

import (
	"fmt"
	"strings"
)

// Limits against hostile input. Real profiles are a few kilobytes; the
// largest legitimate parts are inline certificate chains and PKCS#12
// blobs.
const (
	MaxProfileSize = 1 << 20   // whole file
	MaxLineLen     = 4096      // one option line (not inline content)
	MaxOptions     = 2000      // option lines incl. those in <connection>
	MaxInlineSize  = 256 << 10 // one inline block
	MaxArgs        = 16        // parameters per option (OpenVPN's MAX_PARMS)
	MaxConnections = 256       // <connection> blocks
	MaxProblems    = 100       // problems listed in one error; the rest are counted
)

// tokenize splits one configuration line into words the way OpenVPN 2.x
// does: whitespace separates words; a word that starts with '"' or '\”
// runs to the matching quote; outside single quotes a backslash takes the
// next character literally; '#' or ';' at the start of a word begins a
// comment.
func tokenize(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	const (
		initial = iota
		unquoted
		dquoted
		squoted
	)
	state := initial
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch state {
		case initial:
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
				continue
			case c == '#' || c == ';':
				return out, nil
			case c == '"':
				state = dquoted
			case c == '\'':
				state = squoted
			case c == '\\':
				if i+1 >= len(line) {
					return nil, fmt.Errorf("backslash at end of line")
				}
				i++
				cur.WriteByte(line[i])
				state = unquoted
			default:
				cur.WriteByte(c)
				state = unquoted
			}
		case unquoted:
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
				out = append(out, cur.String())
				cur.Reset()
				state = initial
			case c == '\\':
				if i+1 >= len(line) {
					return nil, fmt.Errorf("backslash at end of line")
				}
				i++
				cur.WriteByte(line[i])
			default:
				cur.WriteByte(c)
			}
		case dquoted:
			switch c {
			case '"':
				out = append(out, cur.String())
				cur.Reset()
				state = initial
			case '\\':
				if i+1 >= len(line) {
					return nil, fmt.Errorf("no closing quotation (\")")
				}
				i++
				cur.WriteByte(line[i])
			default:
				cur.WriteByte(c)
			}
		case squoted:
			if c == '\'' {
				out = append(out, cur.String())
				cur.Reset()
				state = initial
			} else {
				cur.WriteByte(c)
			}
		}
	}
	switch state {
	case dquoted:
		return nil, fmt.Errorf("no closing quotation (\")")
	case squoted:
		return nil, fmt.Errorf("no closing quotation (')")
	case unquoted:
		out = append(out, cur.String())
	}
	return out, nil
}

// quote renders one word so that tokenize reads it back unchanged.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\r\v\f\"'\\#;") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// inlineTag reports whether a trimmed line is "<name>" or "</name>".
func inlineTag(line string) (name string, closing, ok bool) {
	if len(line) < 3 || line[0] != '<' || line[len(line)-1] != '>' {
		return "", false, false
	}
	name = line[1 : len(line)-1]
	if strings.HasPrefix(name, "/") {
		name, closing = name[1:], true
	}
	if name == "" {
		return "", false, false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 'A' && c <= 'Z') {
			return "", false, false
		}
	}
	return name, closing, true
}
