package testbed

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ReferenceClientConnected is the line openvpn writes once connected.
const ReferenceClientConnected = "Initialization Sequence Completed"

// StartReferenceClient starts the Debian openvpn 2.6 client with the
// server's own profile in the pair's client namespace and returns once it
// logged "Initialization Sequence Completed" (or fails with its log tail);
// the process's MarkedAt is when it wrote that line, read from its output
// pipe as it was written.
// It answers what each variant asks for the way a user of that client
// would: a credentials file for f, the SCRV1 static-challenge response over
// the management interface for g, --compat-mode 2.4.0 for h (so it offers
// the CBC cipher). dir holds the profile, credentials and client.log.
// The caller stops the returned process.
func StartReferenceClient(ctx context.Context, pair *Pair, srv *OpenVPNServer, dir string, timeout time.Duration) (*Process, error) {
	profile := filepath.Join(dir, "client.ovpn")
	if err := os.WriteFile(profile, []byte(srv.Profile()), 0o600); err != nil {
		return nil, fmt.Errorf("reference client: %w", err)
	}
	args := []string{"--config", profile, "--disable-dco"}
	switch srv.Variant {
	case VariantF:
		creds := filepath.Join(dir, "creds")
		if err := os.WriteFile(creds, []byte(TestUser+"\n"+TestPass+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("reference client: %w", err)
		}
		args = append(args, "--auth-user-pass", creds)
	case VariantG:
		args = append(args, "--management", "127.0.0.1", "7505", "--management-query-passwords")
	case VariantH:
		args = append(args, "--compat-mode", "2.4.0")
	}
	cmd := Command(context.Background(), pair.ClientNS, "openvpn", args...)
	cli, err := StartProcessMarking("openvpn client ("+string(srv.Variant)+")", filepath.Join(dir, "client.log"), cmd, ReferenceClientConnected)
	if err != nil {
		return nil, err
	}
	if srv.Variant == VariantG {
		// Ends once it answered, or gives up after 20 s (then the wait
		// below reports the failure).
		go answerStaticChallenge(pair.ClientNS, "127.0.0.1:7505")
	}
	if err := cli.WaitForLog(ctx, ReferenceClientConnected, timeout); err != nil {
		cli.Stop(time.Second)
		return nil, fmt.Errorf("%w\nserver log tail:\n%s", err, srv.LogTail(15))
	}
	return cli, nil
}

// answerStaticChallenge connects to the reference client's management
// interface and answers its password query with the SCRV1 response the
// variant g server expects. It gives up after 20 s; the client's own wait
// then reports the failure.
func answerStaticChallenge(ns, addr string) {
	var c net.Conn
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := InNamespace(ns, func() (err error) {
			c, err = net.DialTimeout("tcp", addr, time.Second)
			return err
		}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c == nil {
		return
	}
	defer c.Close()
	c.SetDeadline(deadline)
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.HasPrefix(line, ">PASSWORD:Need 'Auth' username/password"):
			b64 := base64.StdEncoding.EncodeToString
			fmt.Fprintf(c, "username \"Auth\" %s\n", TestUser)
			fmt.Fprintf(c, "password \"Auth\" \"SCRV1:%s:%s\"\n", b64([]byte(TestPass)), b64([]byte(TestOTP)))
		case strings.HasPrefix(line, "SUCCESS: 'Auth' password"):
			return // both answers taken; closing now cannot lose them
		}
	}
}
