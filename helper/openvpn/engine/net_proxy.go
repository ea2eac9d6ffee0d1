package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// errProxyAuth: the proxy wants credentials we do not have or refused ours.
var errProxyAuth = errors.New("http proxy: authentication required")

// maxProxyResponse bounds the proxy's CONNECT answer head we read.
const maxProxyResponse = 16 << 10

// dialViaProxy opens a TCP connection to target (host:port as written in
// the profile; the proxy resolves it) through an HTTP proxy with CONNECT.
// Credentials go out with the first request unless the profile said
// "auto" (then only after a 407), as Basic authentication.
func dialViaProxy(ctx context.Context, dial DialFunc, px *proxySpec, target string) (net.Conn, error) {
	sendAuth := px.user != "" && !px.authOnDemand
	for try := 0; try < 2; try++ {
		c, err := dial(ctx, "tcp", px.addr())
		if err != nil {
			return nil, fmt.Errorf("http proxy %s: %w", px.addr(), err)
		}
		status, err := proxyConnect(ctx, c, px, target, sendAuth)
		if err == nil {
			return c, nil
		}
		c.Close()
		if status == http.StatusProxyAuthRequired && !sendAuth && px.user != "" {
			sendAuth = true // "auto": answer the challenge on a fresh connection
			continue
		}
		return nil, err
	}
	return nil, errProxyAuth
}

// proxyConnect sends one CONNECT and reads the answer head. Any bytes the
// proxy sends after the head belong to the tunnel, so the head is read
// byte-wise-buffered from a reader that is limited to the head only.
func proxyConnect(ctx context.Context, c net.Conn, px *proxySpec, target string, auth bool) (int, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	defer c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	version := px.version
	if version == "" {
		version = "1.1"
	}
	req := "CONNECT " + target + " HTTP/" + version + "\r\nHost: " + target + "\r\n"
	if px.agent != "" {
		req += "User-Agent: " + px.agent + "\r\n"
	}
	for _, h := range px.headers {
		req += h[0] + ": " + h[1] + "\r\n"
	}
	if auth {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(px.user+":"+px.pass)) + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, fmt.Errorf("http proxy %s: send CONNECT: %w", px.addr(), err)
	}
	head, err := readHead(c)
	if err != nil {
		return 0, fmt.Errorf("http proxy %s: read answer: %w", px.addr(), err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&headReader{b: head}), nil)
	if err != nil {
		return 0, fmt.Errorf("http proxy %s: bad answer: %w", px.addr(), err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return resp.StatusCode, nil
	case resp.StatusCode == http.StatusProxyAuthRequired && px.user == "":
		return resp.StatusCode, fmt.Errorf("http proxy %s: %w (no proxy credentials given)", px.addr(), errProxyAuth)
	case resp.StatusCode == http.StatusProxyAuthRequired:
		return resp.StatusCode, fmt.Errorf("http proxy %s: %w (credentials refused)", px.addr(), errProxyAuth)
	}
	return resp.StatusCode, fmt.Errorf("http proxy %s refused CONNECT %s: %s", px.addr(), target, resp.Status)
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

type headReader struct{ b []byte }

func (h *headReader) Read(p []byte) (int, error) {
	if len(h.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.b)
	h.b = h.b[n:]
	return n, nil
}
