// Command ovpn3 is the command-line front-end of ovpn3go: it talks to the
// net.openvpn.v3.* services on the system bus (DBUS_SYSTEM_BUS_ADDRESS is
// honoured) like openvpn3's own CLI.
//
// Adding commands: every file of this package registers its commands from
// init() with
//
//	func init() {
//		register("session-start", "Start a VPN session", runSessionStart)
//	}
//	func runSessionStart(ctx context.Context, args []string) error { … }
//
// args are the arguments after the command name; parse them with
// newFlags(name). Write normal output to stdout (a variable, so tests can
// capture it). Return an error to fail: main prints "ovpn3 <command>: <reason>"
// on one line, with D-Bus errors decoded to their text (describeError), and
// exits 1 (2 for errors wrapping errUsage: bad arguments). Shared helpers: connectBus, callMethod, getProperty, lookupConfig.
// config.go, config_manage.go and config_acl.go hold the configuration
// commands (flags.go their option types), session.go the session ones.
// Options take their openvpn3 names (spec §8.1); boolean options that
// openvpn3 gives a value ("--dco true") use boolArg.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// commands is the registry filled by register from every file's init().
var commands = map[string]command{}

// stdout is where commands print their results; stderr gets warnings and
// prompts, stdin answers (variables, so tests can replace them).
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
	stdin  io.Reader = os.Stdin
)

// register adds a command; a duplicate name is a programming error.
func register(name, summary string, run func(ctx context.Context, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("ovpn3: command registered twice: " + name)
	}
	commands[name] = command{name, summary, run}
}

// errUsage marks wrong command-line arguments (wrap it: fmt.Errorf("give
// --x: %w", errUsage)); main then points at the command's -h and exits 2.
var errUsage = errors.New("usage")

// errSilent fails a command without a message (config-manage --exists
// --quiet): exit status 1 says it all.
var errSilent = errors.New("failed")

func init() {
	register("version", "Show the program version", func(context.Context, []string) error {
		fmt.Fprintf(stdout, "ovpn3 (ovpn3go) %s\n", api.Version)
		return nil
	})
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ovpn3 <command> [options]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ovpn3 <command> -h' for the options of a command.")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "ovpn3: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errSilent) {
			return 1
		}
		msg := describeError(err)
		if errors.Is(err, errUsage) {
			msg = strings.TrimSuffix(msg, ": "+errUsage.Error())
			if msg == errUsage.Error() {
				msg = "wrong arguments"
			}
			fmt.Fprintf(os.Stderr, "ovpn3 %s: %s (see 'ovpn3 %s -h')\n", cmd.name, msg, cmd.name)
			return 2
		}
		fmt.Fprintf(os.Stderr, "ovpn3 %s: %s\n", cmd.name, msg)
		return 1
	}
	return 0
}

// newFlags returns a flag set for a command that reports errors instead of
// exiting, so that every failure goes through main's one-line report.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ovpn3 "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// flagError marks a flag-parsing failure as a usage error (-h stays help).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errUsage)
}

// describeError renders err on one line; a D-Bus error inside it is
// replaced by its decoded text ("GDBus.Error:<domain>: " removed).
func describeError(err error) string {
	msg := err.Error()
	var de *dbus.Error
	var dv dbus.Error
	raw := ""
	switch {
	case errors.As(err, &de) && de != nil:
		raw = de.Error()
	case errors.As(err, &dv):
		raw = dv.Error()
	}
	if raw != "" {
		msg = strings.Replace(msg, raw, api.ErrorText(err), 1)
	}
	return strings.Join(strings.Fields(msg), " ")
}

// callTimeout bounds every D-Bus call the CLI makes.
const callTimeout = 30 * time.Second

// connectBus opens a connection to the system bus.
func connectBus(ctx context.Context) (*dbus.Conn, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the system bus: %w", err)
	}
	return conn, nil
}

// callMethod calls iface.method on path of service and stores the reply in
// out (pointers), with a timeout.
func callMethod(ctx context.Context, conn *dbus.Conn, service string, path dbus.ObjectPath, iface, method string, args []any, out ...any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	call := conn.Object(service, path).CallWithContext(ctx, iface+"."+method, 0, args...)
	if call.Err != nil {
		return call.Err
	}
	if len(out) == 0 {
		return nil
	}
	return call.Store(out...)
}

// getProperty reads one property into out.
func getProperty(ctx context.Context, conn *dbus.Conn, service string, path dbus.ObjectPath, iface, name string, out any) error {
	var v dbus.Variant
	if err := callMethod(ctx, conn, service, path, api.InterfaceProperties, "Get", []any{iface, name}, &v); err != nil {
		return err
	}
	if err := dbus.Store([]any{v.Value()}, out); err != nil {
		return fmt.Errorf("property %s: %w", name, err)
	}
	return nil
}
