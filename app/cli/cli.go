// Package cli is the ovpn3 command line (app/cmd/ovpn3 is its main): the
// commands of openvpn3's CLI with its option spellings, talking to the
// net.openvpn.v3.* services on the system bus (DBUS_SYSTEM_BUS_ADDRESS is
// honoured) through app/client.
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
// newFlags(name) and parseArgs (getopt_long rules, as openvpn3: long and
// short options, --opt=value, -cVALUE, grouped short flags, abbreviated long
// options, options after other arguments). Register short spellings and
// aliases with alias(fs, long, short). Write normal output to stdout (a
// variable, so tests can capture it). Return an error to fail: Main prints
// "ovpn3 <command>: <reason>" on one line, with service errors reduced to
// their text (describeError), and exits 1 (2 for errors wrapping errUsage:
// bad arguments). connectBus gives the app/client Client every command uses.
// config.go, config_manage.go and config_acl.go hold the configuration
// commands (flags.go their option types), session.go the session ones,
// services.go the service administration commands.
// Options take their openvpn3 names (spec §8.1); boolean options that
// openvpn3 gives a value ("--dco true") use boolArg.
package cli

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

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/app/client"
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

// Main runs the command line args (without the program name) and returns
// the exit status.
func Main(args []string) int { return run(args) }

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ovpn3: unknown command %q\n", args[0])
		usage(stderr)
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
			fmt.Fprintf(stderr, "ovpn3 %s: %s (see 'ovpn3 %s -h')\n", cmd.name, msg, cmd.name)
			return 2
		}
		fmt.Fprintf(stderr, "ovpn3 %s: %s\n", cmd.name, msg)
		return 1
	}
	return 0
}

// describeError renders err on one line; a service error inside it is
// reduced to its text (the command's own wrapping says what was done).
func describeError(err error) string {
	msg := err.Error()
	var ce *client.Error
	var de *dbus.Error
	var dv dbus.Error
	switch {
	case errors.As(err, &ce):
		msg = strings.Replace(msg, ce.Error(), client.ErrorText(ce), 1)
	case errors.As(err, &de) && de != nil:
		msg = strings.Replace(msg, de.Error(), api.ErrorText(err), 1)
	case errors.As(err, &dv):
		msg = strings.Replace(msg, dv.Error(), api.ErrorText(err), 1)
	}
	return strings.Join(strings.Fields(msg), " ")
}

// connectBus connects to the system bus.
func connectBus(ctx context.Context) (*client.Client, error) {
	return client.Connect(ctx)
}
