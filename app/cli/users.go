package cli

// User names and UIDs. The CLI is built without cgo (it starts ~3 ms
// sooner: no dynamic loader, no libc), so os/user reads only
// /etc/passwd; users from other NSS sources (LDAP, sssd, systemd's
// dynamic users) are then asked of getent(1), which goes through NSS as
// libc does.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"
)

// getentPath is the getent(1) the NSS fallback runs (tests replace it).
var getentPath = "getent"

// getentTimeout bounds one getent run (an unreachable LDAP server).
const getentTimeout = 5 * time.Second

// resolveUID turns a numeric UID or a user name into a UID.
func resolveUID(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	if u, err := user.Lookup(s); err == nil {
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("user %q has a non-numeric uid %q", s, u.Uid)
		}
		return uint32(n), nil
	}
	e, err := getentPasswd(s)
	switch {
	case errors.Is(err, errNoSuchUser):
		return 0, fmt.Errorf("unknown user %q", s)
	case err != nil:
		return 0, fmt.Errorf("look up user %q: %w", s, err)
	}
	return e.uid, nil
}

var (
	namesMu sync.Mutex
	names   = map[uint32]string{} // userName's answers, lists repeat owners
)

// userName is the name of uid, or the number if it has none.
func userName(uid uint32) string {
	namesMu.Lock()
	defer namesMu.Unlock()
	if n, ok := names[uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(uid), 10)
	name := id
	if u, err := user.LookupId(id); err == nil {
		name = u.Username
	} else if e, err := getentPasswd(id); err == nil {
		name = e.name
	}
	names[uid] = name
	return name
}

// passwdEntry is what the CLI needs of a passwd line.
type passwdEntry struct {
	name string
	uid  uint32
}

var errNoSuchUser = errors.New("no such user")

// getentPasswd asks NSS, through getent(1), for the passwd entry of key
// (a name or a UID) and checks that the answer is that entry.
func getentPasswd(key string) (passwdEntry, error) {
	if key == "" || strings.HasPrefix(key, "-") || strings.ContainsAny(key, ":\n") {
		return passwdEntry{}, errNoSuchUser
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, getentPath, "passwd", key).Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 2: // getent: key not found
		return passwdEntry{}, errNoSuchUser
	case err != nil:
		return passwdEntry{}, fmt.Errorf("getent passwd: %w", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Split(line, ":")
	if len(f) < 7 {
		return passwdEntry{}, fmt.Errorf("getent passwd: not a passwd line: %q", line)
	}
	uid, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil || f[0] == "" {
		return passwdEntry{}, fmt.Errorf("getent passwd: not a passwd line: %q", line)
	}
	if f[0] != key && f[2] != key {
		return passwdEntry{}, fmt.Errorf("getent passwd %s answered for %q", key, f[0])
	}
	return passwdEntry{name: f[0], uid: uint32(uid)}, nil
}
