package cli

import (
	"context"
	"errors"
	"flag"
	"io"
	"maps"
	"strings"
	"testing"
)

var errParsed = errors.New("parsed")

// parsed runs a command only up to its option parsing and returns what
// each option (by its long name) was set to.
func parsed(t *testing.T, args ...string) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	afterParse = func(fs *flagSet) error {
		fs.Visit(func(f *flag.Flag) { got[canonical(f)] = f.Value.String() })
		return errParsed
	}
	defer func() { afterParse = nil }()
	cmd, ok := commands[args[0]]
	if !ok {
		t.Fatalf("no command %q", args[0])
	}
	err := cmd.run(context.Background(), args[1:])
	if errors.Is(err, errParsed) {
		err = nil
	}
	return got, err
}

// TestOpenvpn3OptionSpellings: every option spelling of openvpn3's
// commands (spec §8, openvpn3-linux's ovpn3cli option tables) reaches the
// option it stands for, with the value in openvpn3's units.
func TestOpenvpn3OptionSpellings(t *testing.T) {
	type kv = map[string]string
	const sp = "/net/openvpn/v3/sessions/x"
	const cp = "/net/openvpn/v3/configuration/x"
	cases := []struct {
		args string // command and options, split at spaces
		want kv
	}{
		// config-import
		{"config-import --config f.ovpn", kv{"config": "f.ovpn"}},
		{"config-import -c f.ovpn", kv{"config": "f.ovpn"}},
		{"config-import --name n -c f", kv{"name": "n", "config": "f"}},
		{"config-import -n n -c f", kv{"name": "n", "config": "f"}},
		{"config-import --persistent -c f", kv{"persistent": "true", "config": "f"}},
		{"config-import -p -c f", kv{"persistent": "true", "config": "f"}},
		{"config-import --tag a --tag b -c f", kv{"tag": "a,b", "config": "f"}},
		// config-manage
		{"config-manage --path " + cp + " --show", kv{"path": cp, "show": "true"}},
		{"config-manage -o " + cp + " -s", kv{"path": cp, "show": "true"}},
		{"config-manage --config-path " + cp + " -s", kv{"path": cp, "show": "true"}},
		{"config-manage --config n --rename m", kv{"config": "n", "rename": "m"}},
		{"config-manage -c n -r m", kv{"config": "n", "rename": "m"}},
		{"config-manage -c n --tag t --remove-tag u", kv{"config": "n", "tag": "t", "remove-tag": "u"}},
		{"config-manage -c n --exists --quiet", kv{"config": "n", "exists": "true", "quiet": "true"}},
		{"config-manage -c n --dco true", kv{"config": "n", "dco": "true"}},
		{"config-manage -c n --unset-override persist-tun", kv{"config": "n", "unset-override": "persist-tun"}},
		// config-acl
		{"config-acl -o " + cp + " -s", kv{"path": cp, "show": "true"}},
		{"config-acl --config-path " + cp + " --show", kv{"path": cp, "show": "true"}},
		{"config-acl -c n --grant 1000 --revoke 1001", kv{"config": "n", "grant": "1000", "revoke": "1001"}},
		{"config-acl -c n -G 1000 -R 1001", kv{"config": "n", "grant": "1000", "revoke": "1001"}},
		{"config-acl -c n --public-access true --lock-down false", kv{"config": "n", "public-access": "true", "lock-down": "false"}},
		{"config-acl -c n --transfer-owner-session true", kv{"config": "n", "transfer-owner-session": "true"}},
		{"config-acl -c n -T false", kv{"config": "n", "transfer-owner-session": "false"}},
		{"config-acl -c n --seal", kv{"config": "n", "seal": "true"}},
		{"config-acl -c n -S", kv{"config": "n", "seal": "true"}},
		// config-dump, config-remove
		{"config-dump --path " + cp + " --json", kv{"path": cp, "json": "true"}},
		{"config-dump -o " + cp + " -j", kv{"path": cp, "json": "true"}},
		{"config-dump --config-path " + cp, kv{"path": cp}},
		{"config-dump -c n", kv{"config": "n"}},
		{"config-remove --path " + cp + " --force", kv{"path": cp, "force": "true"}},
		{"config-remove -o " + cp, kv{"path": cp}},
		{"config-remove --config-path " + cp, kv{"path": cp}},
		{"config-remove --config n", kv{"config": "n"}},
		{"config-remove -c n", kv{"config": "n"}},
		// configs-list
		{"configs-list --count", kv{"count": "true"}},
		{"configs-list --json", kv{"json": "true"}},
		{"configs-list --verbose", kv{"verbose": "true"}},
		{"configs-list -v", kv{"verbose": "true"}},
		{"configs-list --filter-config a --filter-tag b --filter-owner c", kv{"filter-config": "a", "filter-tag": "b", "filter-owner": "c"}},
		// session-start
		{"session-start --config n", kv{"config": "n"}},
		{"session-start -c n", kv{"config": "n"}},
		{"session-start --config-path " + cp, kv{"config-path": cp}},
		{"session-start -p " + cp, kv{"config-path": cp}},
		{"session-start -c n --persist-tun --background", kv{"config": "n", "persist-tun": "true", "background": "true"}},
		{"session-start -c n --timeout 30", kv{"config": "n", "timeout": "30s"}},
		{"session-start -c n --timeout 0", kv{"config": "n", "timeout": "0s"}},
		{"session-start -c n --dco false", kv{"config": "n", "dco": "false"}},
		// session-manage
		{"session-manage --path " + sp + " --disconnect", kv{"path": sp, "disconnect": "true"}},
		{"session-manage -o " + sp + " -D", kv{"path": sp, "disconnect": "true"}},
		{"session-manage --session-path " + sp + " --pause", kv{"path": sp, "pause": "true"}},
		{"session-manage -c n -P", kv{"config": "n", "pause": "true"}},
		{"session-manage --config n --resume --timeout 30", kv{"config": "n", "resume": "true", "timeout": "30s"}},
		{"session-manage -I tun0 -R", kv{"interface": "tun0", "resume": "true"}},
		{"session-manage --interface tun0 --restart", kv{"interface": "tun0", "restart": "true"}},
		{"session-manage --cleanup", kv{"cleanup": "true"}},
		{"session-manage -c n --log-level", kv{"config": "n", "log-level": ""}},
		{"session-manage -c n --log-level=5", kv{"config": "n", "log-level": "5"}},
		// session-stats, session-acl
		{"session-stats --path " + sp + " --json", kv{"path": sp, "json": "true"}},
		{"session-stats -o " + sp + " -j", kv{"path": sp, "json": "true"}},
		{"session-stats --session-path " + sp, kv{"path": sp}},
		{"session-stats -c n", kv{"config": "n"}},
		{"session-stats -I tun0", kv{"interface": "tun0"}},
		{"session-acl -o " + sp + " -s", kv{"path": sp, "show": "true"}},
		{"session-acl --session-path " + sp + " --show", kv{"path": sp, "show": "true"}},
		{"session-acl -c n -G 1000 -R 1001", kv{"config": "n", "grant": "1000", "revoke": "1001"}},
		{"session-acl -I tun0 --grant 1000 --revoke 1001", kv{"interface": "tun0", "grant": "1000", "revoke": "1001"}},
		{"session-acl -c n --public-access true --allow-log-access false", kv{"config": "n", "public-access": "true", "allow-log-access": "false"}},
		// session-auth, log, sessions-list
		{"session-auth --auth-req 1234", kv{"auth-req": "1234"}},
		{"session-auth", kv{}},
		{"sessions-list", kv{}},
		{"log --session-path " + sp + " --log-level 6", kv{"session-path": sp, "log-level": "6"}},
		{"log -c n", kv{"config": "n"}},
		{"log -I tun0", kv{"interface": "tun0"}},
		// openvpn3-admin's service commands
		{"version --services", kv{"services": "true"}},
		{"log-service --log-level 5 --timestamp true --dbus-details false --enable-log-prefix true",
			kv{"log-level": "5", "timestamp": "true", "dbus-details": "false", "enable-log-prefix": "true"}},
		{"log-service --list-subscriptions", kv{"list-subscriptions": "true"}},
		{"log-service --config-show", kv{"config-show": "true"}},
		{"log-service --config-set k --config-unset k --config-file-override f",
			kv{"config-set": "k", "config-unset": "k", "config-file-override": "f"}},
		{"netcfg-service --list-subscribers", kv{"list-subscribers": "true"}},
		{"netcfg-service --unsubscribe :1.42", kv{"unsubscribe": ":1.42"}},
		{"netcfg-service --config-show", kv{"config-show": "true"}},
		{"sessionmgr-service --list-sessions", kv{"list-sessions": "true"}},
		{"sessionmgr-service --list-sessions-verbose", kv{"list-sessions-verbose": "true"}},

		// getopt_long's other forms
		{"session-start --config=n --timeout=45", kv{"config": "n", "timeout": "45s"}},
		{"session-start -cn", kv{"config": "n"}},
		{"config-dump -jc n", kv{"json": "true", "config": "n"}},
		{"config-acl -sSc n", kv{"show": "true", "seal": "true", "config": "n"}},
		{"session-manage --disc --conf n", kv{"disconnect": "true", "config": "n"}},
		{"session-start --back -c n", kv{"background": "true", "config": "n"}},
		{"session-start -c n --timeout 90s", kv{"config": "n", "timeout": "1m30s"}},
	}
	for _, tc := range cases {
		args := strings.Fields(tc.args)
		got, err := parsed(t, args...)
		if err != nil {
			t.Errorf("%s: %v", tc.args, err)
			continue
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%s: parsed %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestGetoptErrors(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"session-manage --re -c n", "option '--re' is ambiguous; possibilities: '--restart' '--resume'"},
		{"session-start --nope", "unrecognized option '--nope'"},
		{"session-start -x", "invalid option -- 'x'"},
		{"session-start -c", "option requires an argument -- 'c'"},
		{"session-start --config", "option '--config' requires an argument"},
		{"session-start -c n --timeout soon", `invalid value "soon" for flag -timeout: "soon" is not a number of seconds`},
		{"session-start -c n --dco maybe", `"maybe" is not a boolean`},
	} {
		_, err := parsed(t, strings.Fields(tc.args)...)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	// Arguments after the options are the command's (getopt permutes).
	got, err := parsed(t, "config-remove", "extra", "-c", "n")
	if err != nil || got["config"] != "n" {
		t.Errorf("permuted: %v %v", got, err)
	}
	if _, err := runCmd(t, "config-remove", "extra", "-c", "n"); !errors.Is(err, errUsage) {
		t.Errorf("config-remove with an extra argument: %v, want a usage error", err)
	}
}

// Every override key of config-manage is an option of its own (spec
// §2.2.1), with the value kept as given.
func TestConfigManageOverrideOptions(t *testing.T) {
	for _, o := range overrides {
		v := "x"
		if o.typ == "b" {
			v = "true"
		}
		got, err := parsed(t, "config-manage", "-c", "n", "--"+o.key, v)
		if err != nil || !maps.Equal(got, map[string]string{"config": "n", o.key: v}) {
			t.Errorf("--%s %s: %v %v", o.key, v, got, err)
		}
	}
}

// FuzzGetopt: any command line either parses or fails with a usage error
// (or help); it never panics, and what parses names only real options.
func FuzzGetopt(f *testing.F) {
	f.Add("-c\x00n\x00--timeout\x0030")
	f.Add("--disc\x00-sjc\x00x\x00--\x00-c")
	f.Add("--log-level=\x00-I")
	old := stdout
	stdout = io.Discard // -h prints the options
	defer func() { stdout = old }()
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		fs, _, _, _ := sessionFlags("session-manage")
		fs.Bool("disconnect", false, "")
		fs.Bool("show", false, "")
		alias(fs, "show", "s")
		fs.Var(&optionalArg{}, "log-level", "")
		secondsFlag(fs, "timeout", "")
		fs.SetOutput(io.Discard)
		err := parseArgs(fs, args)
		if err != nil && !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%q: %v is neither a usage error nor help", args, err)
		}
	})
}

// -h lists the options as openvpn3 users spell them.
func TestHelpListsGetoptSpellings(t *testing.T) {
	out, err := runCmd(t, "session-manage", "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"usage: ovpn3 session-manage [options]", "  -o, --path, --session-path PATH\n",
		"  -D, --disconnect\n", "  --log-level[=LEVEL]\n", "  --timeout SECS\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if code := run([]string{"session-start", "--help"}); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}
