package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrProxyAuth: the proxy wants credentials we do not have or refused ours.
var ErrProxyAuth = errors.New("http proxy: authentication required")

// maxProxyResponse bounds the proxy's CONNECT answer head we read.
const maxProxyResponse = 16 << 10

// HTTPProxy is an http-proxy with the credentials to present.
type HTTPProxy struct {
	Host, Port string
	User, Pass string // Basic auth when User != ""
	// AuthOnDemand: "auto"/"auto-nct" — send credentials only when the
	// proxy asks with 407.
	AuthOnDemand bool
	// From http-proxy-option: HTTP version ("1.0"/"1.1"), User-Agent and
	// extra header lines.
	Version, Agent string
	Headers        [][2]string
}

// Addr is the proxy's host:port.
func (p *HTTPProxy) Addr() string { return net.JoinHostPort(p.Host, p.Port) }

// dialViaProxy opens a TCP connection to target (host:port as written in
// the profile; the proxy resolves it) through an HTTP proxy with CONNECT.
// Credentials go out with the first request unless the profile said
// "auto" (then only after a 407), as Basic authentication.
func dialViaProxy(ctx context.Context, dial DialFunc, px *HTTPProxy, target string) (net.Conn, error) {
	sendAuth := px.User != "" && !px.AuthOnDemand
	for try := 0; try < 2; try++ {
		c, err := dial(ctx, "tcp", px.Addr())
		if err != nil {
			return nil, fmt.Errorf("http proxy %s: %w", px.Addr(), err)
		}
		status, err := proxyConnect(ctx, c, px, target, sendAuth)
		if err == nil {
			return c, nil
		}
		c.Close()
		if status == statusProxyAuthRequired && !sendAuth && px.User != "" {
			sendAuth = true // "auto": answer the challenge on a fresh connection
			continue
		}
		return nil, err
	}
	return nil, ErrProxyAuth
}

// proxyConnect sends one CONNECT and reads the answer head. Any bytes the
// proxy sends after the head belong to the tunnel, so the head is read
// byte-wise-buffered from a reader that is limited to the head only.
func proxyConnect(ctx context.Context, c net.Conn, px *HTTPProxy, target string, auth bool) (int, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	defer c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	version := px.Version
	if version == "" {
		version = "1.1"
	}
	req := "CONNECT " + target + " HTTP/" + version + "\r\nHost: " + target + "\r\n"
	if px.Agent != "" {
		req += "User-Agent: " + px.Agent + "\r\n"
	}
	for _, h := range px.Headers {
		req += h[0] + ": " + h[1] + "\r\n"
	}
	if auth {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(px.User+":"+px.Pass)) + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, fmt.Errorf("http proxy %s: send CONNECT: %w", px.Addr(), err)
	}
	head, err := readHead(c)
	if err != nil {
		return 0, fmt.Errorf("http proxy %s: read answer: %w", px.Addr(), err)
	}
	code, status, err := statusLine(head)
	if err != nil {
		return 0, fmt.Errorf("http proxy %s: bad answer: %w", px.Addr(), err)
	}
	switch {
	case code/100 == 2:
		return code, nil
	case code == statusProxyAuthRequired && px.User == "":
		return code, fmt.Errorf("http proxy %s: %w (no proxy credentials given)", px.Addr(), ErrProxyAuth)
	case code == statusProxyAuthRequired:
		return code, fmt.Errorf("http proxy %s: %w (credentials refused)", px.Addr(), ErrProxyAuth)
	}
	return code, fmt.Errorf("http proxy %s refused CONNECT %s: %s", px.Addr(), target, status)
}

// statusProxyAuthRequired is HTTP's 407: the proxy wants credentials.
const statusProxyAuthRequired = 407

// statusLine parses the first line of the proxy's answer head,
// "HTTP/1.x NNN reason", into the code and "NNN reason". The header lines
// after it say nothing CONNECT needs (the tunnel starts after the head).
func statusLine(head []byte) (code int, status string, err error) {
	line, _, _ := strings.Cut(string(head), "\n")
	line = strings.TrimSuffix(line, "\r")
	proto, status, ok := strings.Cut(line, " ")
	if !ok || (proto != "HTTP/1.0" && proto != "HTTP/1.1") {
		return 0, "", fmt.Errorf("malformed status line %q", line)
	}
	digits, _, _ := strings.Cut(status, " ")
	code, err = strconv.Atoi(digits)
	if err != nil || len(digits) != 3 || code < 100 {
		return 0, "", fmt.Errorf("malformed status code in %q", line)
	}
	return code, status, nil
}

// readHead reads up to and including the blank line ending the response
// head, one byte at a time so nothing of the tunnel is consumed.
func readHead(c net.Conn) ([]byte, error) {
	var b []byte
	var one [1]byte
	for len(b) < maxProxyResponse {
		if _, err := c.Read(one[:]); err != nil {
			return nil, err
		}
		b = append(b, one[0])
		if n := len(b); n >= 4 && string(b[n-4:]) == "\r\n\r\n" || n >= 2 && string(b[n-2:]) == "\n\n" {
			return b, nil
		}
	}
	return nil, fmt.Errorf("answer head longer than %d bytes", maxProxyResponse)
}

// Option applies one "http-proxy-option NAME [value]".
func (px *HTTPProxy) Option(o []string) error {
	arg := func() (string, error) {
		if len(o) < 2 || o[1] == "" {
			return "", fmt.Errorf("http-proxy-option %s needs a value", o[0])
		}
		if strings.ContainsAny(o[1], "\r\n") {
			return "", fmt.Errorf("http-proxy-option %s: value contains a line break", o[0])
		}
		return o[1], nil
	}
	var err error
	switch strings.ToUpper(o[0]) {
	case "VERSION":
		if px.Version, err = arg(); err == nil && px.Version != "1.0" && px.Version != "1.1" {
			err = fmt.Errorf("http-proxy-option VERSION %q: want 1.0 or 1.1", px.Version)
		}
	case "AGENT":
		px.Agent, err = arg()
	case "CUSTOM-HEADER":
		// "CUSTOM-HEADER name value" arrives as one argument or two.
		var v string
		if v, err = arg(); err == nil {
			name, val, _ := strings.Cut(v, " ")
			if len(o) > 2 {
				name, val = o[1], strings.Join(o[2:], " ")
			}
			if name == "" || strings.ContainsAny(name, ": \t") {
				return fmt.Errorf("http-proxy-option CUSTOM-HEADER: bad header name %q", name)
			}
			px.Headers = append(px.Headers, [2]string{name, strings.TrimSpace(val)})
		}
	default:
		err = fmt.Errorf("http-proxy-option %s is not supported", o[0])
	}
	return err
}
