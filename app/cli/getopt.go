package cli

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The commands declare their options on a flag.FlagSet (long names, plus
// one-letter names and aliases registered with alias), and parseArgs reads
// the command line by getopt_long's rules, as openvpn3's parser does:
//
//	--name VALUE, --name=VALUE, -n VALUE, -nVALUE; -sj (grouped flags);
//	--disc (an unambiguous prefix of --disconnect); --log-level[=LEVEL]
//	(optional value: only with "="); options after other arguments; "--"
//	ends the options.

type flagSet = flag.FlagSet

// newFlags returns a flag set for a command that reports errors instead of
// exiting, so that every failure goes through Main's one-line report.
func newFlags(name string) *flagSet {
	fs := flag.NewFlagSet("ovpn3 "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printOptions(fs) }
	return fs
}

// printOptions lists the options in getopt's spelling, each with its
// short form and aliases: "  -o, --path, --session-path PATH  …".
func printOptions(fs *flagSet) {
	type entry struct {
		names []string
		arg   string
		usage string
	}
	byName := map[string]*entry{}
	var order []string
	fs.VisitAll(func(f *flag.Flag) {
		c := canonical(f)
		e, ok := byName[c]
		if !ok {
			e = &entry{}
			byName[c] = e
			order = append(order, c)
		}
		if c == f.Name {
			arg, usage := flag.UnquoteUsage(f)
			e.usage = usage
			switch {
			case isBoolFlag(f):
				if _, opt := f.Value.(*optionalArg); opt {
					if arg == "" || arg == "value" {
						arg = "VALUE"
					}
					e.arg = "[=" + arg + "]"
				}
			case arg != "":
				e.arg = " " + arg
			}
		}
	})
	for _, c := range order {
		e := byName[c]
		fs.VisitAll(func(f *flag.Flag) {
			if canonical(f) == c && len(f.Name) == 1 {
				e.names = append(e.names, "-"+f.Name)
			}
		})
		e.names = append(e.names, "--"+c)
		fs.VisitAll(func(f *flag.Flag) {
			if canonical(f) == c && len(f.Name) > 1 && f.Name != c {
				e.names = append(e.names, "--"+f.Name)
			}
		})
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	w := fs.Output()
	fmt.Fprintf(w, "usage: %s [options]\n\noptions:\n", fs.Name())
	for _, c := range order {
		e := byName[c]
		fmt.Fprintf(w, "  %s%s\n      %s\n", strings.Join(e.names, ", "), e.arg, e.usage)
	}
}

// alias registers another spelling of the option long: a one-letter
// short option or a long alias (openvpn3's --session-path for --path).
func alias(fs *flagSet, long, other string) {
	f := fs.Lookup(long)
	if f == nil {
		panic("ovpn3: alias of an undefined option --" + long)
	}
	usage := "alias of --" + long
	if len(other) == 1 {
		usage = "short for --" + long
	}
	fs.Var(f.Value, other, usage)
}

// canonical is the long name an option spelling stands for.
func canonical(f *flag.Flag) string {
	for _, p := range []string{"short for --", "alias of --"} {
		if s, ok := strings.CutPrefix(f.Usage, p); ok {
			return s
		}
	}
	return f.Name
}

// afterParse, when set (by tests), sees every parsed flag set before the
// command runs; an error it returns ends the command.
var afterParse func(fs *flagSet) error

// parseArgs parses args into fs by getopt_long's rules; errors are usage
// errors, -h/--help prints the options and returns flag.ErrHelp.
func parseArgs(fs *flagSet, args []string) error {
	norm, err := getopt(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w: %w", err, errUsage)
	}
	if err := fs.Parse(norm); err != nil {
		return flagError(err)
	}
	if afterParse != nil {
		return afterParse(fs)
	}
	return nil
}

// flagError marks a flag-parsing failure as a usage error (-h stays help).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errUsage)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// getopt rewrites a getopt_long command line into the unambiguous form the
// flag package reads: every option as -name or -name=value, then "--" and
// the other arguments.
func getopt(fs *flagSet, args []string) ([]string, error) {
	var opts, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case a == "-h" || a == "--help":
			return nil, flag.ErrHelp
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			f, err := lookupLong(fs, name)
			if err != nil {
				return nil, err
			}
			switch {
			case hasValue:
				opts = append(opts, "-"+f.Name+"="+value)
			case isBoolFlag(f):
				opts = append(opts, "-"+f.Name)
			case i+1 < len(args):
				opts = append(opts, "-"+f.Name+"="+args[i+1])
				i++
			default:
				return nil, fmt.Errorf("option '--%s' requires an argument", f.Name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// A group of short options; one taking a value takes the
			// rest of the word, or the next argument.
			for j := 1; j < len(a); j++ {
				c := a[j : j+1]
				f := fs.Lookup(c)
				if f == nil {
					return nil, fmt.Errorf("invalid option -- '%s'", c)
				}
				if isBoolFlag(f) {
					opts = append(opts, "-"+c)
					continue
				}
				value := a[j+1:]
				if value == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("option requires an argument -- '%s'", c)
					}
					i++
					value = args[i]
				}
				opts = append(opts, "-"+c+"="+value)
				break
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(opts, "--"), rest...), nil
}

// lookupLong finds a long option by its name or an unambiguous prefix.
func lookupLong(fs *flagSet, name string) (*flag.Flag, error) {
	if f := fs.Lookup(name); f != nil && len(name) > 1 {
		return f, nil
	}
	var match []*flag.Flag
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) > 1 && strings.HasPrefix(f.Name, name) && name != "" {
			// aliases of one option are one match
			if c := canonical(f); !seen[c] {
				seen[c] = true
				match = append(match, f)
			}
		}
	})
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("unrecognized option '--%s'", name)
	}
	names := make([]string, len(match))
	for i, f := range match {
		names[i] = "'--" + f.Name + "'"
	}
	sort.Strings(names)
	return nil, fmt.Errorf("option '--%s' is ambiguous; possibilities: %s", name, strings.Join(names, " "))
}

// secondsArg is a duration given in seconds, as openvpn3's --timeout SECS;
// a Go duration ("90s", "2m") is accepted too.
type secondsArg struct{ d *time.Duration }

func (s secondsArg) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s secondsArg) Set(v string) error {
	if n, err := strconv.ParseUint(v, 10, 31); err == nil {
		*s.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a number of seconds", v)
	}
	*s.d = d
	return nil
}

// secondsFlag defines a --name SECS option (0: not given).
func secondsFlag(fs *flagSet, name, usage string) *time.Duration {
	d := new(time.Duration)
	fs.Var(secondsArg{d}, name, usage)
	return d
}

// optionalArg is an option whose value is optional (getopt's
// optional_argument): --name alone, or --name=VALUE.
type optionalArg struct {
	set, hasValue bool
	value         string
}

func (o *optionalArg) String() string { return o.value }

// IsBoolFlag lets "--name" stand alone; flag.Parse then sets "true".
func (o *optionalArg) IsBoolFlag() bool { return true }

func (o *optionalArg) Set(v string) error {
	o.set = true
	if v != "true" {
		o.hasValue, o.value = true, v
	}
	return nil
}
