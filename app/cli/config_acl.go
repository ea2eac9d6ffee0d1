package cli

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/app/client"
)

func init() {
	register("config-acl", "Show or change who may use a configuration profile", runConfigACL)
}

func runConfigACL(ctx context.Context, args []string) error {
	fs, byName, byPath := profileFlags("config-acl")
	fs.StringVar(byPath, "config-path", "", "alias of --path")
	var grant, revoke listArg
	var public, transfer, lockDown boolArg
	var show, seal bool
	fs.Var(&grant, "grant", "give `USER` (name or UID) access (repeatable)")
	fs.Var(&grant, "G", "short for --grant")
	fs.Var(&revoke, "revoke", "take access from `USER` (name or UID) (repeatable)")
	fs.Var(&revoke, "R", "short for --revoke")
	fs.Var(&public, "public-access", "let every user use the profile (true/false)")
	fs.Var(&transfer, "transfer-owner-session", "sessions started by others belong to the profile owner (true/false)")
	fs.Var(&transfer, "T", "short for --transfer-owner-session")
	fs.Var(&lockDown, "lock-down", "only the owner may read the profile content (true/false)")
	fs.BoolVar(&seal, "seal", false, "make the profile read-only for good")
	fs.BoolVar(&seal, "S", false, "short for --seal")
	fs.BoolVar(&show, "show", false, "show the access settings")
	fs.BoolVar(&show, "s", false, "short for --show")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if (*byName == "") == (*byPath == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	changes := len(grant)+len(revoke) > 0 || public.set || transfer.set || lockDown.set || seal
	if !changes && !show {
		return fmt.Errorf("nothing to do: give --show or a change: %w", errUsage)
	}
	resolve := func(users []string) ([]uint32, error) {
		out := make([]uint32, len(users))
		for i, u := range users {
			uid, err := resolveUID(u)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", err, errUsage)
			}
			out[i] = uid
		}
		return out, nil
	}
	grantUIDs, err := resolve(grant)
	if err != nil {
		return err
	}
	revokeUIDs, err := resolve(revoke)
	if err != nil {
		return err
	}

	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	prof, err := lookupConfig(ctx, cl, *byName, dbus.ObjectPath(*byPath))
	if err != nil {
		return err
	}
	call := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	for i, uid := range grantUIDs {
		if err := call("grant "+grant[i], prof.Grant(ctx, uid)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Granted access to %s (uid %d)\n", userName(uid), uid)
	}
	for i, uid := range revokeUIDs {
		if err := call("revoke "+revoke[i], prof.Revoke(ctx, uid)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked access from %s (uid %d)\n", userName(uid), uid)
	}
	for _, f := range []struct {
		flag, prop string
		arg        boolArg
	}{{"--public-access", "public_access", public}, {"--transfer-owner-session", "transfer_owner_session", transfer},
		{"--lock-down", "locked_down", lockDown}} {
		if !f.arg.set {
			continue
		}
		if err := prof.Set(ctx, f.prop, f.arg.value); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
		fmt.Fprintf(stdout, "%s set to %s\n", f.prop, strconv.FormatBool(f.arg.value))
	}
	// Seal last: nothing can change afterwards.
	if seal {
		if err := call("seal", prof.Seal(ctx)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "Configuration sealed: it cannot be changed any more, only removed.")
	}
	if show {
		return showACL(ctx, prof)
	}
	return nil
}

func showACL(ctx context.Context, prof *client.Profile) error {
	p := prof.Path
	props, err := configProps(ctx, prof)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", propText(props, "name"))
	fmt.Fprintf(tw, "Path:\t%s\n", p)
	for _, row := range [][2]string{{"Owner", "owner"}, {"Granted users", "acl"}, {"Public access", "public_access"},
		{"Locked down", "locked_down"}, {"Transfer owner session", "transfer_owner_session"}, {"Sealed", "readonly"}} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], propText(props, row[1]))
	}
	return tw.Flush()
}
