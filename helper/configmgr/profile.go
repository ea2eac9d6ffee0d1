package configmgr

import (
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
)

// profile is one imported configuration profile. All fields are guarded by
// Service.mu. The JSON form is the persistent file (keys follow upstream's
// file where they exist).
type profile struct {
	Path                 dbus.ObjectPath `json:"object_path"`
	Name                 string          `json:"name"`
	Owner                uint32          `json:"owner"`
	ACL                  []uint32        `json:"acl"`
	PublicAccess         bool            `json:"public_access"`
	LockedDown           bool            `json:"locked_down"`
	Readonly             bool            `json:"readonly"`
	SingleUse            bool            `json:"single_use"`
	Persistent           bool            `json:"persistent"`
	Valid                bool            `json:"valid"`
	TransferOwnerSession bool            `json:"transfer_owner_session"`
	DCO                  bool            `json:"dco"`
	ImportTimestamp      uint64          `json:"import_timestamp"`
	LastUsedTimestamp    uint64          `json:"last_used_timestamp"`
	UsedCount            uint32          `json:"used_count"`
	Tags                 []string        `json:"tags"`
	Overrides            map[string]any  `json:"overrides"`
	Config               string          `json:"config"` // the canonical (re-rendered) profile text
}

func (p *profile) inACL(uid uint32) bool { return slices.Contains(p.ACL, uid) }

// canUse is the method-level rule of spec §5.2: owner, ACL or public.
func (p *profile) canUse(uid uint32) bool {
	return uid == p.Owner || p.inACL(uid) || p.PublicAccess
}

// Info is a snapshot of a profile for in-process users (the session manager).
type Info struct {
	Path                 dbus.ObjectPath
	Name                 string
	Owner                uint32
	ACL                  []uint32
	PublicAccess         bool
	LockedDown           bool
	SingleUse            bool
	Persistent           bool
	Valid                bool
	TransferOwnerSession bool
	DCO                  bool
	Tags                 []string
	Overrides            map[string]any
}

// CanUse reports whether uid may start a session from this profile: it is
// the owner, in the ACL, or the profile is public (spec §5.2, method access).
func (i Info) CanUse(uid uint32) bool {
	return uid == i.Owner || slices.Contains(i.ACL, uid) || i.PublicAccess
}

func (p *profile) info() Info {
	ov := make(map[string]any, len(p.Overrides))
	for k, v := range p.Overrides {
		ov[k] = v
	}
	return Info{
		Path: p.Path, Name: p.Name, Owner: p.Owner, ACL: slices.Clone(p.ACL), PublicAccess: p.PublicAccess,
		LockedDown: p.LockedDown, SingleUse: p.SingleUse, Persistent: p.Persistent, Valid: p.Valid,
		TransferOwnerSession: p.TransferOwnerSession, DCO: p.DCO, Tags: slices.Clone(p.Tags), Overrides: ov,
	}
}

// cleanText drops control characters from caller-supplied names and tags
// (upstream filters them too; a newline in a name would break listings).
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
