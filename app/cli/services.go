package cli

// The service administration commands of openvpn3-admin, for whatever
// owns the net.openvpn.v3.* names (our helper or openvpn3-linux):
// version --services, log-service, netcfg-service and sessionmgr-service.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func init() {
	register("version", "Show the program version (--services: the services' versions)", runVersion)
	register("log-service", "Show or change the settings of the log service, list its subscriptions", runLogService)
	register("netcfg-service", "List or remove the subscribers of network change events", runNetCfgService)
	register("sessionmgr-service", "List every running session with its owner (root)", runSessionMgrService)
}

func runVersion(ctx context.Context, args []string) error {
	fs := newFlags("version")
	services := fs.Bool("services", false, "list the net.openvpn.v3.* services and their versions")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	fmt.Fprintf(stdout, "ovpn3 (ovpn3go) %s\n", version.Version)
	if !*services {
		return nil
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	fmt.Fprintln(stdout)
	for _, name := range client.Services {
		v, err := cl.ServiceVersion(ctx, name)
		switch {
		case errors.Is(err, client.ErrServiceUnknown):
			v = "(not running)"
		case errors.Is(err, client.ErrAccessDenied):
			v = "(inaccessible)"
		case err != nil:
			v = "(unavailable: " + describeError(err) + ")"
		}
		fmt.Fprintf(stdout, "%-40s %s\n", name+":", v)
	}
	return nil
}

// errNoConfigFile answers the openvpn3-admin options that edit a
// service's JSON configuration file: our helper is configured by its
// command line, and reports no file.
func errNoConfigFile(ctx context.Context, cl *client.Client, service string, path dbus.ObjectPath) error {
	var file string
	if err := cl.GetProperty(ctx, service, path, service, "config_file", &file); err == nil && file != "" {
		return fmt.Errorf("the service uses the configuration file %s: edit it with openvpn3-admin, ovpn3 does not", file)
	}
	return fmt.Errorf("%s has no configuration file (ovpn3go's helper takes its settings from its command line)", service)
}

// ---- log-service ----

func runLogService(ctx context.Context, args []string) error {
	fs := newFlags("log-service")
	level := fs.Int("log-level", -1, "set the log service's log `LEVEL` (0-6)")
	var timestamp, dbusDetails, prefix boolArg
	fs.Var(&timestamp, "timestamp", "log with timestamps: true or false")
	fs.Var(&dbusDetails, "dbus-details", "log the D-Bus sender, path and method of each event: true or false")
	fs.Var(&prefix, "enable-log-prefix", "prefix log lines with their log tag: true or false")
	list := fs.Bool("list-subscriptions", false, "list the attached log senders")
	cfgShow := fs.Bool("config-show", false, "show the service's configuration file")
	cfgSet := fs.String("config-set", "", "set `KEY` in the configuration file")
	cfgUnset := fs.String("config-unset", "", "remove `KEY` from the configuration file")
	cfgFile := fs.String("config-file-override", "", "use this configuration `FILE`")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *cfgSet == "" && fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if *level > api.MaxLogLevel || *level < -1 {
		return fmt.Errorf("--log-level %d: the levels are 0 to %d: %w", *level, api.MaxLogLevel, errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if *cfgShow || *cfgSet != "" || *cfgUnset != "" || *cfgFile != "" {
		return errNoConfigFile(ctx, cl, api.ServiceLog, api.PathLog)
	}
	set := func(name string, v any) error {
		if err := cl.SetProperty(ctx, api.ServiceLog, api.PathLog, api.InterfaceLog, name, v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	if *list {
		var subs []struct{ Tag, BusName, Interface, Path string }
		if err := cl.Call(ctx, api.ServiceLog, api.PathLog, api.InterfaceLog, "GetSubscriberList", nil, &subs); err != nil {
			return fmt.Errorf("list subscriptions: %w", err)
		}
		if len(subs) == 0 {
			fmt.Fprintln(stdout, "No attached log subscriptions")
			return nil
		}
		fmt.Fprintf(stdout, "%-24s %-16s %-36s %s\n", "Tag", "Bus name", "Interface", "Object path")
		fmt.Fprintln(stdout, strings.Repeat("-", 100))
		for _, s := range subs {
			fmt.Fprintf(stdout, "%-24s %-16s %-36s %s\n", s.Tag, s.BusName, s.Interface, orDash(s.Path))
		}
		return nil
	}
	if *level >= 0 {
		if err := set("log_level", uint32(*level)); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		arg  boolArg
		prop string
	}{{timestamp, "timestamp"}, {dbusDetails, "log_dbus_details"}, {prefix, "log_prefix_logtag"}} {
		if b.arg.set {
			if err := set(b.prop, b.arg.value); err != nil {
				return err
			}
		}
	}
	props, err := cl.GetAllProperties(ctx, api.ServiceLog, api.PathLog, api.InterfaceLog)
	if err != nil {
		return fmt.Errorf("read the log service's settings: %w", err)
	}
	enabled := func(name string) string {
		b, ok := props[name].Value().(bool)
		switch {
		case !ok:
			return "-"
		case b:
			return "enabled"
		}
		return "disabled"
	}
	fmt.Fprintf(stdout, "                 Log method: %v\n", valueOr(props, "log_method"))
	fmt.Fprintf(stdout, " Attached log subscriptions: %v\n", valueOr(props, "num_attached"))
	fmt.Fprintf(stdout, "             Log timestamps: %s\n", enabled("timestamp"))
	fmt.Fprintf(stdout, "     Log tag prefix enabled: %s\n", enabled("log_prefix_logtag"))
	fmt.Fprintf(stdout, "          Log D-Bus details: %s\n", enabled("log_dbus_details"))
	fmt.Fprintf(stdout, "          Current log level: %v\n", valueOr(props, "log_level"))
	return nil
}

func valueOr(props map[string]dbus.Variant, name string) any {
	v, ok := props[name]
	if !ok {
		return "-"
	}
	return v.Value()
}

// ---- netcfg-service ----

func runNetCfgService(ctx context.Context, args []string) error {
	fs := newFlags("netcfg-service")
	list := fs.Bool("list-subscribers", false, "list the D-Bus clients subscribed to NetworkChange signals")
	unsub := fs.String("unsubscribe", "", "remove the subscription of `UNIQUE-NAME`")
	cfgShow := fs.Bool("config-show", false, "show the service's configuration file")
	cfgSet := fs.String("config-set", "", "set `KEY` in the configuration file")
	cfgUnset := fs.String("config-unset", "", "remove `KEY` from the configuration file")
	cfgFile := fs.String("config-file-override", "", "use this configuration `FILE`")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *cfgSet == "" && fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if !*list && *unsub == "" && !*cfgShow && *cfgSet == "" && *cfgUnset == "" && *cfgFile == "" {
		return fmt.Errorf("nothing to do: give --list-subscribers or --unsubscribe NAME: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if *cfgShow || *cfgSet != "" || *cfgUnset != "" || *cfgFile != "" {
		return errNoConfigFile(ctx, cl, api.ServiceNetCfg, api.PathNetCfg)
	}
	if *unsub != "" {
		if err := cl.Call(ctx, api.ServiceNetCfg, api.PathNetCfg, api.InterfaceNetCfg, "NotificationUnsubscribe", []any{*unsub}); err != nil {
			return fmt.Errorf("unsubscribe %s: %w", *unsub, err)
		}
		fmt.Fprintf(stdout, "Unsubscribed '%s'\n", *unsub)
	}
	if *list {
		var subs []struct {
			Name   string
			Filter uint32
		}
		if err := cl.Call(ctx, api.ServiceNetCfg, api.PathNetCfg, api.InterfaceNetCfg, "NotificationSubscriberList", nil, &subs); err != nil {
			return fmt.Errorf("list subscribers: %w", err)
		}
		if len(subs) == 0 {
			fmt.Fprintln(stdout, "No subscribers")
			return nil
		}
		fmt.Fprintln(stdout, "Current subscribers:")
		for _, s := range subs {
			fmt.Fprintf(stdout, "- %s\n", s.Name)
			for _, e := range strings.Split(api.NetCfgChangeType(s.Filter).String(), ", ") {
				fmt.Fprintf(stdout, "        %s\n", e)
			}
		}
	}
	return nil
}

// ---- sessionmgr-service ----

// introspectNode is the part of introspection XML naming child objects.
type introspectNode struct {
	Children []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

func runSessionMgrService(ctx context.Context, args []string) error {
	fs := newFlags("sessionmgr-service")
	list := fs.Bool("list-sessions", false, "list all running sessions and their owners")
	verbose := fs.Bool("list-sessions-verbose", false, "list all running sessions with more details")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if !*list && !*verbose {
		return fmt.Errorf("nothing to do: give --list-sessions or --list-sessions-verbose: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Every session object, not only those FetchAvailableSessions shows
	// the caller: the children of the manager object.
	var x string
	if err := cl.Call(ctx, api.ServiceSessions, api.PathSessions, api.InterfaceIntrospectable, "Introspect", nil, &x); err != nil {
		return fmt.Errorf("list the session objects: %w", err)
	}
	var node introspectNode
	if err := xml.Unmarshal([]byte(x), &node); err != nil {
		return fmt.Errorf("list the session objects: bad introspection data: %w", err)
	}
	var paths []string
	for _, c := range node.Children {
		paths = append(paths, string(api.PathSessions)+"/"+c.Name)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		fmt.Fprintln(stdout, "No sessions running")
		return nil
	}
	line := strings.Repeat("-", 79)
	fmt.Fprintln(stdout, line)
	for _, p := range paths {
		s := cl.Session(dbus.ObjectPath(p))
		in, err := s.Info(ctx)
		if err != nil {
			fmt.Fprintf(stdout, "Session: %s\n  (unavailable: %s)\n%s\n", p, describeError(err), line)
			continue
		}
		fmt.Fprintf(stdout, "Session: %s\n", p)
		fmt.Fprintf(stdout, "  Owner: %-20s Device: %s\n", userName(in.Owner), orDash(in.DeviceName))
		fmt.Fprintf(stdout, " Config: %s\n", in.ConfigName)
		if *verbose {
			fmt.Fprintf(stdout, "Created: %-20s Backend PID: %d\n", formatTime(in.Created), in.BackendPID)
			if in.ConnectedTo.IP != "" {
				fmt.Fprintf(stdout, "Connected to: %s\n", in.ConnectedTo)
			}
			fmt.Fprintf(stdout, " Status: %s\n", in.Status)
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}
