package configmgr_test

// The ACL matrix of spec §5.2: every method and property of a profile
// object, and the manager's listings, called by real processes running as
// different UIDs on a private bus. The test binary doubles as the client:
// started with aclClientEnv set (under setpriv --reuid/--regid), it reads
// requests from stdin, makes each call on its own bus connection and writes
// the outcome to stdout.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const (
	aclClientEnv  = "OVPN3GO_CONFIGMGR_ACL_CLIENT"  // run as the matrix client
	aclBackendEnv = "OVPN3GO_CONFIGMGR_ACL_BACKEND" // … owning be<PID>, like a backend
)

func TestMain(m *testing.M) {
	if os.Getenv(aclClientEnv) != "" {
		os.Exit(runACLClient())
	}
	os.Exit(m.Run())
}

// uidNewOwner is the TransferOwnership target and AccessGrant argument; it
// is only a number, no process runs as it.
const uidNewOwner = 4242

// A caller of the matrix; the letter is its column in the tables below.
type caller struct {
	letter  byte
	uid     uint32
	backend bool // owns net.openvpn.v3.backends.be<PID> (the $OVPN role)
}

// matrixCallers picks the owner, granted and stranger UIDs among users
// that exist: dbus-daemon drops connections from UIDs without a passwd
// entry (it looks up their groups).
func matrixCallers(t *testing.T) []caller {
	t.Helper()
	var uids []uint32
	for _, id := range []uint32{1000, 1001, 1002, 65534, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10} {
		if _, err := user.LookupId(strconv.FormatUint(uint64(id), 10)); err == nil {
			uids = append(uids, id)
		}
		if len(uids) == 3 {
			return []caller{{'O', uids[0], false}, {'G', uids[1], false}, {'S', uids[2], false}, {'R', 0, false}, backendCaller(t)}
		}
	}
	t.Skipf("need three non-root users in the passwd database, found %v", uids)
	return nil
}

// backendCaller is a process of the backend user owning
// net.openvpn.v3.backends.be<its PID>, as a real backend does.
func backendCaller(t *testing.T) caller {
	t.Helper()
	uid, _ := testenv.EnsureBackendUser(t)
	return caller{'B', uid, true}
}

type aclRequest struct {
	Op      string          `json:"op"`
	Path    dbus.ObjectPath `json:"path"`
	Name    string          `json:"name"`    // the profile's name, for LookupConfigName
	Owner   uint32          `json:"owner"`   // for SearchByOwner
	Granted uint32          `json:"granted"` // for AccessRevoke
}

type aclResult struct {
	Err     string `json:"err"` // D-Bus error name, "" on success
	Message string `json:"msg"` // its message as sent on the wire
	Value   string `json:"value"`
}

// aclOps are the operations of the matrix. Each returns a short rendering
// of its result (listings: "listed" or "unlisted"; GetAll: the number of
// properties).
var aclOps = map[string]func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error){}

// mutating ops get a fresh profile per caller; the others share one.
var mutating = map[string]bool{}

func init() {
	ifc := api.InterfaceConfiguration
	call := func(name string, mut bool, args ...any) {
		mutating["call "+name] = mut
		aclOps["call "+name] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
			return "", c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, ifc+"."+name, 0, args...).Err
		}
	}
	aclOps["fetch"] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
		var text string
		err := c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, ifc+".Fetch", 0).Store(&text)
		return text, err
	}
	aclOps["fetch for backend"] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
		var name, text string
		var dco bool
		var ov map[string]dbus.Variant
		err := c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, ifc+".FetchForBackend", 0).Store(&name, &dco, &ov, &text)
		keys := slices.Sorted(maps.Keys(ov))
		vals := make([]string, len(keys))
		for i, k := range keys {
			vals[i] = k + "=" + fmt.Sprint(ov[k].Value())
		}
		return fmt.Sprintf("%s|%v|%s|%s", name, dco, strings.Join(vals, ","), text), err
	}
	call("Validate", false)
	call("Fetch", false)
	call("FetchJSON", false)
	call("FetchForBackend", false)
	call("SetOption", true, "verb", "4")
	call("SetOverride", true, "dns-scope", dbus.MakeVariant("tunnel"))
	call("UnsetOverride", true, "persist-tun")
	call("AddTag", true, "new-tag")
	call("RemoveTag", true, "t1")
	call("AccessGrant", true, uint32(uidNewOwner))
	call("Seal", true)
	call("Remove", true)
	mutating["call AccessRevoke"] = true
	aclOps["call AccessRevoke"] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
		return "", c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, ifc+".AccessRevoke", 0, r.Granted).Err
	}
	for _, p := range profileProps {
		aclOps["get "+p] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
			var v dbus.Variant
			err := c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, api.InterfaceProperties+".Get", 0, ifc, p).Store(&v)
			if err != nil {
				return "", err
			}
			return fmt.Sprint(v.Value()), nil
		}
	}
	set := func(name string, v any) {
		mutating["set "+name] = true
		aclOps["set "+name] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
			return "", c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, api.InterfaceProperties+".Set", 0,
				ifc, name, dbus.MakeVariant(v)).Err
		}
	}
	set("name", "renamed")
	set("public_access", true)
	set("locked_down", true)
	set("transfer_owner_session", true)
	set("dco", true)
	set("owner", uint32(uidNewOwner))
	aclOps["GetAll"] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
		var all map[string]dbus.Variant
		err := c.Object(api.ServiceConfiguration, r.Path).CallWithContext(ctx, api.InterfaceProperties+".GetAll", 0, ifc).Store(&all)
		return strconv.Itoa(len(all)), err
	}
	listing := func(name string, arg func(r aclRequest) []any) {
		aclOps["list "+name] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
			var paths []dbus.ObjectPath
			err := c.Object(api.ServiceConfiguration, api.PathConfiguration).CallWithContext(ctx, ifc+"."+name, 0, arg(r)...).Store(&paths)
			if slices.Contains(paths, r.Path) {
				return "listed", err
			}
			return "unlisted", err
		}
	}
	listing("FetchAvailableConfigs", func(aclRequest) []any { return nil })
	listing("LookupConfigName", func(r aclRequest) []any { return []any{r.Name} })
	listing("SearchByTag", func(aclRequest) []any { return []any{"t1"} })
	listing("SearchByOwner", func(r aclRequest) []any { return []any{strconv.FormatUint(uint64(r.Owner), 10)} })
	mutating["call TransferOwnership"] = true
	aclOps["call TransferOwnership"] = func(ctx context.Context, c *dbus.Conn, r aclRequest) (string, error) {
		return "", c.Object(api.ServiceConfiguration, api.PathConfiguration).CallWithContext(ctx, ifc+".TransferOwnership", 0,
			r.Path, uint32(uidNewOwner)).Err
	}
}

var profileProps = []string{"owner", "acl", "name", "public_access", "persistent", "import_timestamp",
	"last_used_timestamp", "locked_down", "overrides", "readonly", "single_use", "tags",
	"transfer_owner_session", "used_count", "dco", "valid"}

// runACLClient is the client process: one connection, requests in, results out.
func runACLClient() int {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "acl client:", err)
		return 1
	}
	defer conn.Close()
	if os.Getenv(aclBackendEnv) != "" {
		r, err := conn.RequestName(api.BackendBusName(uint32(os.Getpid())), dbus.NameFlagDoNotQueue)
		if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			fmt.Fprintln(os.Stderr, "acl client: backend name:", r, err)
			return 1
		}
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req aclRequest
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "acl client:", err)
			return 1
		}
		op, ok := aclOps[req.Op]
		if !ok {
			fmt.Fprintln(os.Stderr, "acl client: unknown op", req.Op)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, err := op(ctx, conn, req)
		cancel()
		res := aclResult{Value: v}
		if err != nil {
			res = aclResult{Err: "not a D-Bus error", Message: err.Error()}
			var de dbus.Error
			var dep *dbus.Error
			ok := errors.As(err, &dep) && dep != nil
			if ok {
				de = *dep
			} else {
				ok = errors.As(err, &de)
			}
			if ok {
				res.Err = de.Name
				if len(de.Body) > 0 {
					res.Message, _ = de.Body[0].(string)
				}
			}
		}
		if err := enc.Encode(res); err != nil {
			return 1
		}
	}
	return 0
}

// A variant of the profile under test; the columns of the tables.
type variant struct {
	name                            string
	public, locked, sealed, toOwner bool
}

var variants = []variant{
	{name: "plain"},
	{name: "public", public: true},
	{name: "locked_down", locked: true},
	{name: "sealed", sealed: true},
	{name: "public+locked_down", public: true, locked: true},
}

// Denials, as they travel on the wire.
var (
	methodDenied = aclResult{Err: api.ErrorName(api.DomainGDBusPP), Message: "GDBus.Error:net.openvpn.gdbuspp: Access to the configuration profile is denied."}
	methodSealed = aclResult{Err: api.ErrorName(api.DomainGDBusPP), Message: "GDBus.Error:net.openvpn.gdbuspp: Configuration profile is sealed and read-only"}
	getDenied    = aclResult{Err: api.ErrNameAccessDenied, Message: "Access to the configuration profile is denied."}
	setOwnerOnly = aclResult{Err: api.ErrNameAccessDenied, Message: "Configuration can only be modified by the profile owner"}
	setSealed    = aclResult{Err: api.ErrNameAccessDenied, Message: "Configuration profile is sealed and read-only"}
	notWritable  = aclResult{Err: api.ErrNameInvalidArgs, Message: "Property “owner” is not writable"}
	// policyDenied: refused by the bus policy (packaging/dbus), before the
	// service; the daemon's message names pids, so any text matches.
	policyDenied = aclResult{Err: "org.freedesktop.DBus.Error.AccessDenied", Message: "*"}
)

// rule is one row: for each variant, the callers (letters O G S R B) that
// are allowed; everyone else gets deny (or, for sealed profiles, sealed).
type rule struct {
	op                                    string
	plain, public, locked, sealed, pubLck string
	deny, sealedDeny                      aclResult
}

// allowedValue is what an allowed op returns when the value matters.
var allowedValue = map[string]string{
	"list FetchAvailableConfigs": "listed", "list LookupConfigName": "listed",
	"list SearchByTag": "listed", "list SearchByOwner": "listed",
}

// The matrix of spec §5.2 (root has no special rights on profiles; the
// backend, which plays upstream's $OVPN, may Fetch and read most
// properties, and it alone may FetchForBackend; public_access never grants
// Fetch).
var aclMatrix = func() []rule {
	const (
		all     = "OGSRB"
		members = "OG---" // owner, ACL (public adds everyone)
		readers = "OG--B" // owner, ACL, $OVPN
		owner   = "O----"
		none    = "-----"
	)
	var rules []rule
	add := func(r rule) { rules = append(rules, r) }
	// methods
	add(rule{"call Validate", members, all, members, members, all, methodDenied, methodDenied})
	for _, m := range []string{"Fetch", "FetchJSON"} {
		add(rule{"call " + m, readers, readers, "O---B", readers, "O---B", methodDenied, methodDenied})
	}
	// ovpn3go's own: the profile's backend only, whatever the flags
	add(rule{"call FetchForBackend", "----B", "----B", "----B", "----B", "----B", methodDenied, methodDenied})
	for _, m := range []string{"SetOption", "SetOverride", "UnsetOverride", "AddTag", "RemoveTag", "AccessGrant", "AccessRevoke"} {
		add(rule{"call " + m, owner, owner, owner, none, owner, methodDenied, methodSealed})
	}
	add(rule{"call Seal", owner, owner, owner, owner, owner, methodDenied, methodDenied})
	add(rule{"call Remove", owner, owner, owner, owner, owner, methodDenied, methodDenied})
	// property reads
	add(rule{"get owner", all, all, all, all, all, getDenied, getDenied})
	for _, p := range []string{"name", "transfer_owner_session", "overrides", "dco", "persistent", "import_timestamp",
		"last_used_timestamp", "locked_down", "readonly", "used_count", "valid", "tags"} {
		add(rule{"get " + p, readers, all, readers, readers, all, getDenied, getDenied})
	}
	for _, p := range []string{"public_access", "acl", "single_use"} {
		add(rule{"get " + p, members, all, members, members, all, getDenied, getDenied})
	}
	// property writes
	for _, p := range []string{"name", "locked_down", "public_access"} {
		add(rule{"set " + p, owner, owner, owner, none, owner, setOwnerOnly, setSealed})
	}
	for _, p := range []string{"transfer_owner_session", "dco"} {
		add(rule{"set " + p, members, members, members, none, members, setOwnerOnly, setSealed})
	}
	add(rule{"set owner", none, none, none, none, none, notWritable, notWritable})
	// manager: listings filtered by owner/ACL/public; TransferOwnership root
	// only (the bus policy refuses everyone else)
	for _, m := range []string{"FetchAvailableConfigs", "LookupConfigName", "SearchByTag", "SearchByOwner"} {
		add(rule{"list " + m, members, all, members, members, all, aclResult{Value: "unlisted"}, aclResult{Value: "unlisted"}})
	}
	add(rule{"call TransferOwnership", "---R-", "---R-", "---R-", "---R-", "---R-", policyDenied, policyDenied})
	return rules
}()

// getAllCounts: how many properties GetAll returns to each caller (the
// denied ones are silently left out).
var getAllCounts = map[string]map[byte]int{
	"plain":              {'O': 16, 'G': 16, 'S': 1, 'R': 1, 'B': 13},
	"public":             {'O': 16, 'G': 16, 'S': 16, 'R': 16, 'B': 16},
	"locked_down":        {'O': 16, 'G': 16, 'S': 1, 'R': 1, 'B': 13},
	"sealed":             {'O': 16, 'G': 16, 'S': 1, 'R': 1, 'B': 13},
	"public+locked_down": {'O': 16, 'G': 16, 'S': 16, 'R': 16, 'B': 16},
}

func (r rule) allowed(v variant) string {
	switch {
	case v.public && v.locked:
		return r.pubLck
	case v.public:
		return r.public
	case v.locked:
		return r.locked
	case v.sealed:
		return r.sealed
	}
	return r.plain
}

// clientBinary copies the test binary where the other UIDs may run it.
func clientBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cfgacl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "client")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runClient runs the requests as c and returns one result per request.
func runClient(t *testing.T, addr, bin string, c caller, reqs []aclRequest) ([]aclResult, error) {
	cmd := busobjtest.AsUser(t, int(c.uid), addr, bin)
	cmd.Env = append(cmd.Env, aclClientEnv+"=1")
	if c.backend {
		cmd.Env = append(cmd.Env, aclBackendEnv+"=1")
	}
	var in strings.Builder
	for _, r := range reqs {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	cmd.Stdin = strings.NewReader(in.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("client %c (uid %d): %w: %s", c.letter, c.uid, err, stderr.String())
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var res []aclResult
	for {
		var r aclResult
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("client %c: %w", c.letter, err)
		}
		res = append(res, r)
	}
	if len(res) != len(reqs) {
		return nil, fmt.Errorf("client %c: %d results for %d requests: %s", c.letter, len(res), len(reqs), stderr.String())
	}
	return res, nil
}

// prepare imports a profile as root and shapes it for v: tag t1, override
// persist-tun, the G caller granted, the variant's flags, then owned by the
// O caller.
func (e *env) prepare(t *testing.T, cs []caller, name string, v variant) dbus.ObjectPath {
	t.Helper()
	p := e.importProfile(t, name, goodProfile, false, false)
	o := e.obj(p)
	ifc := api.InterfaceConfiguration
	must := func(what string, err error) {
		if err != nil {
			t.Fatalf("prepare %s: %s: %v", name, what, err)
		}
	}
	must("AddTag", o.Call(ifc+".AddTag", 0, "t1").Err)
	must("SetOverride", o.Call(ifc+".SetOverride", 0, "persist-tun", dbus.MakeVariant(true)).Err)
	must("AccessGrant", o.Call(ifc+".AccessGrant", 0, cs[1].uid).Err)
	if v.public {
		must("public_access", o.SetProperty(ifc+".public_access", dbus.MakeVariant(true)))
	}
	if v.locked {
		must("locked_down", o.SetProperty(ifc+".locked_down", dbus.MakeVariant(true)))
	}
	if v.sealed {
		must("Seal", o.Call(ifc+".Seal", 0).Err)
	}
	must("TransferOwnership", e.obj(api.PathConfiguration).Call(ifc+".TransferOwnership", 0, p, cs[0].uid).Err)
	return p
}

func TestACLMatrix(t *testing.T) {
	e := setup(t)
	testenv.RequireCommand(t, "setpriv")
	callers := matrixCallers(t)
	bin := clientBinary(t)

	type cell struct {
		variant variant
		rule    *rule // nil: GetAll
		op      string
	}
	reqs := make(map[byte][]aclRequest)
	cells := make(map[byte][]cell)
	n := 0
	for _, v := range variants {
		shared := e.prepare(t, callers, "acl-shared-"+v.name, v)
		sharedName := "acl-shared-" + v.name
		for i := range aclMatrix {
			r := &aclMatrix[i]
			for _, c := range callers {
				path, name := shared, sharedName
				if mutating[r.op] {
					n++
					name = fmt.Sprintf("acl-%d", n)
					path = e.prepare(t, callers, name, v)
				}
				reqs[c.letter] = append(reqs[c.letter], aclRequest{Op: r.op, Path: path, Name: name,
					Owner: callers[0].uid, Granted: callers[1].uid})
				cells[c.letter] = append(cells[c.letter], cell{v, r, r.op})
			}
		}
		for _, c := range callers {
			reqs[c.letter] = append(reqs[c.letter], aclRequest{Op: "GetAll", Path: shared})
			cells[c.letter] = append(cells[c.letter], cell{v, nil, "GetAll"})
		}
	}

	results := make(map[byte][]aclResult)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(callers))
	for _, c := range callers {
		wg.Go(func() {
			res, err := runClient(t, e.addr, bin, c, reqs[c.letter])
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			results[c.letter] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	checked := 0
	for _, c := range callers {
		for i, got := range results[c.letter] {
			cl := cells[c.letter][i]
			where := fmt.Sprintf("%s, %s profile, caller %c (uid %d, backend %v)", cl.op, cl.variant.name, c.letter, c.uid, c.backend)
			checked++
			if cl.rule == nil {
				if want := strconv.Itoa(getAllCounts[cl.variant.name][c.letter]); got.Err != "" || got.Value != want {
					t.Errorf("%s: %+v, want %s properties", where, got, want)
				}
				continue
			}
			var want aclResult
			switch {
			case strings.IndexByte(cl.rule.allowed(cl.variant), c.letter) >= 0:
				want = aclResult{Value: allowedValue[cl.op]}
			case cl.variant.sealed:
				want = cl.rule.sealedDeny
			default:
				want = cl.rule.deny
			}
			valueMatters := strings.HasPrefix(cl.op, "list ")
			if got.Err != want.Err || want.Message != "*" && got.Message != want.Message || valueMatters && got.Value != want.Value {
				t.Errorf("%s:\n got %+v\nwant %+v", where, got, want)
			}
		}
	}
	t.Logf("%d calls checked across %d callers and %d profile variants", checked, len(callers), len(variants))
}

// TestACLEffects checks, as the owner and the granted UID in real
// processes, that allowed writes did what they say and that a refused
// call changed nothing.
func TestACLEffects(t *testing.T) {
	e := setup(t)
	testenv.RequireCommand(t, "setpriv")
	callers := matrixCallers(t)
	bin := clientBinary(t)
	p := e.prepare(t, callers, "effects", variant{name: "plain"})
	steps := []struct {
		c   caller
		req aclRequest
	}{
		{callers[2], aclRequest{Op: "set name", Path: p, Granted: callers[1].uid}},          // stranger: refused
		{callers[2], aclRequest{Op: "call AccessGrant", Path: p}},                           // stranger: refused
		{callers[1], aclRequest{Op: "call AccessGrant", Path: p}},                           // granted: refused
		{callers[1], aclRequest{Op: "set dco", Path: p}},                                    // granted: allowed
		{callers[0], aclRequest{Op: "call AccessRevoke", Path: p, Granted: callers[1].uid}}, // owner: 1001 out
		{callers[1], aclRequest{Op: "call Fetch", Path: p}},                                 // no longer granted
		{callers[0], aclRequest{Op: "set name", Path: p}},                                   // owner: renamed
		{callers[0], aclRequest{Op: "call AccessGrant", Path: p}},                           // owner: 4242 in
		{callers[3], aclRequest{Op: "call TransferOwnership", Path: p}},                     // root: owner 4242
		{callers[0], aclRequest{Op: "call Fetch", Path: p}},                                 // the old owner is out
	}
	wantErr := []bool{true, true, true, false, false, true, false, false, false, true}
	for i, s := range steps {
		res, err := runClient(t, e.addr, bin, s.c, []aclRequest{s.req})
		if err != nil {
			t.Fatal(err)
		}
		if (res[0].Err != "") != wantErr[i] {
			t.Errorf("step %d (%s as %c): %+v", i, s.req.Op, s.c.letter, res[0])
		}
	}
	info, ok := e.svc.Profile(p)
	if !ok || info.Owner != uidNewOwner || !slices.Equal(info.ACL, []uint32{uidNewOwner}) || info.Name != "renamed" || !info.DCO {
		t.Errorf("after the steps: %+v", info)
	}
}
