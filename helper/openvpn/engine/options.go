package engine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// options is what the engine takes from the profile, checked once in New.
type options struct {
	remotes []profile.Remote
	tls     tlsParams

	wrapMode string // "", "tls-crypt", "tls-auth", "tls-crypt-v2"
	wrapKey  string
	keyDir   int
	auth     string

	cipher      string   // profile "cipher" (legacy, for the OCC string)
	dataCiphers []string // what we offer, in preference order

	authUserPass bool
	creds        Credentials
	challenge    string // static-challenge format: "", "scrv1", "concat"
	// oneTimeCreds: the credentials may go to the server once (a
	// static-challenge answer, a CRV1 answer, auth-nocache); noCache:
	// auth-nocache, the password is forgotten once sent (creds.go).
	oneTimeCreds, noCache bool

	handWindow   time.Duration
	tlsTimeout   time.Duration
	ping         time.Duration // profile defaults until pushed; 0 = off
	pingRestart  time.Duration
	explicitExit int
	tunMTU       int
	maxCtlPacket int
	lim          control.Limits // key lifetime and session limits

	noEKM bool // tests only: do not announce TLS-EKM support
}

func optionsFromProfile(p *profile.Profile, creds Credentials, pre *Prepared) (options, error) {
	o := options{
		remotes:      p.Remotes,
		cipher:       p.Cipher,
		auth:         p.Auth,
		keyDir:       p.KeyDirection,
		authUserPass: p.AuthUserPass,
		creds:        creds,
		handWindow:   60 * time.Second,
		tlsTimeout:   2 * time.Second,
		pingRestart:  120 * time.Second,
		tunMTU:       1500,
		maxCtlPacket: 1250,
	}
	if len(o.remotes) == 0 {
		return o, errors.New("no remote")
	}
	for _, r := range o.remotes {
		if _, err := normalizeProto(r.Proto); err != nil {
			return o, fmt.Errorf("remote %s: %w", r.Host, err)
		}
	}
	o.tls = tlsParamsFromProfile(p, creds.KeyPassphrase) // tlsconfig.go
	pre.lend(&o.tls)                                     // built at registration (prepare.go)
	switch {
	case p.TLSCryptV2 != "":
		o.wrapMode, o.wrapKey = "tls-crypt-v2", p.TLSCryptV2
	case p.TLSCrypt != "":
		o.wrapMode, o.wrapKey = "tls-crypt", p.TLSCrypt
	case p.TLSAuth != "":
		o.wrapMode, o.wrapKey = "tls-auth", p.TLSAuth
	}
	if _, err := o.newWrapper(); err != nil {
		return o, err
	}

	var err error
	if o.dataCiphers, err = offeredCiphers(p); err != nil { // data_ciphers.go
		return o, err
	}

	if p.HandWindow > 0 {
		o.handWindow = time.Duration(p.HandWindow) * time.Second
	}
	if p.TLSTimeout > 0 {
		o.tlsTimeout = time.Duration(p.TLSTimeout) * time.Second
	}
	o.ping = time.Duration(p.Ping) * time.Second
	if p.PingRestart > 0 {
		o.pingRestart = time.Duration(p.PingRestart) * time.Second
	}
	o.explicitExit = p.ExplicitExitNotify
	if p.TunMTU > 0 {
		o.tunMTU = p.TunMTU
	}
	o.lim = control.LimitsFromProfile(p)
	if p.MaxPacketSize > 0 {
		o.maxCtlPacket = p.MaxPacketSize
	}
	if p.TLSVersionMin != "" {
		if _, err := parseTLSVersion(p.TLSVersionMin); err != nil {
			return o, err
		}
		o.tls.MinVersion = p.TLSVersionMin
	}
	if p.StaticChallenge != nil {
		o.challenge = strings.ToLower(p.StaticChallenge.Format)
		if o.challenge == "" {
			o.challenge = "scrv1"
		}
		if o.challenge != "scrv1" && o.challenge != "concat" {
			return o, fmt.Errorf("static-challenge format %q: want scrv1 or concat", p.StaticChallenge.Format)
		}
	}
	o.setCredentials(p, creds)
	if o.handWindow <= 0 {
		o.handWindow = 60 * time.Second
	}
	if o.tlsTimeout <= 0 {
		o.tlsTimeout = 2 * time.Second
	}
	if _, err := buildTLSConfig(o.tls); err != nil {
		return o, err
	}
	return o, nil
}

// setCredentials takes the credentials for key-method 2: the user's, else
// the profile's inline ones.
func (o *options) setCredentials(p *profile.Profile, creds Credentials) {
	o.creds = creds
	if o.creds.Username == "" && o.creds.Password == "" && p.AuthUsername != "" {
		o.creds = Credentials{Username: p.AuthUsername, Password: p.AuthPassword}
	}
	o.noCache = p.AuthNoCache
	o.oneTimeCreds = o.noCache || o.creds.ChallengeResponse != "" || strings.HasPrefix(o.creds.Password, "CRV1::")
}

// password is the password field of the key-method 2 message: with a
// static challenge and a ChallengeResponse, the password and the response
// combined. Without a ChallengeResponse the password is sent as given, so a
// caller that combines them itself (or answers a CRV1 challenge) can.
func (o *options) password() string {
	if o.creds.ChallengeResponse == "" {
		return o.creds.Password
	}
	switch o.challenge {
	case "scrv1":
		return "SCRV1:" + base64.StdEncoding.EncodeToString([]byte(o.creds.Password)) + ":" +
			base64.StdEncoding.EncodeToString([]byte(o.creds.ChallengeResponse))
	case "concat":
		return o.creds.Password + o.creds.ChallengeResponse
	}
	return o.creds.Password
}

// newWrapper returns a fresh control-channel wrapper (its replay state is
// per connection).
func (o *options) newWrapper() (ctlwrap.Wrapper, error) {
	switch o.wrapMode {
	case "":
		return ctlwrap.NewPlain(), nil
	case "tls-crypt-v2":
		w, err := ctlwrap.NewTLSCryptV2([]byte(o.wrapKey))
		if err != nil {
			return nil, fmt.Errorf("tls-crypt-v2: %w", err)
		}
		return w, nil
	}
	k, err := ctlwrap.ParseStaticKey([]byte(o.wrapKey))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.wrapMode, err)
	}
	if o.wrapMode == "tls-crypt" {
		w, err := ctlwrap.NewTLSCrypt(k)
		if err != nil {
			return nil, fmt.Errorf("tls-crypt: %w", err)
		}
		return w, nil
	}
	digest := strings.ToUpper(o.auth)
	if digest == "" {
		digest = "SHA1"
	}
	w, err := ctlwrap.NewTLSAuth(k, o.keyDir, digest)
	if err != nil {
		return nil, fmt.Errorf("tls-auth: %w", err)
	}
	return w, nil
}
