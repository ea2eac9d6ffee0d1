package polkit

// Action ids declared in polkit/net.ovpn3go.policy, both checked by the
// session manager (helper/sessionmgr/authz.go). The session's UID ACL is
// the first gate; control-own is asked for the calls that start or change a
// tunnel, control-other for callers beyond the ACL. When polkitd is absent
// the ACL alone decides. A test keeps this list and the policy file in step.
const (
	// ActionSessionControlOwn: start, pause, resume, restart or disconnect
	// sessions of profiles the caller owns or is granted. Defaults
	// auth_admin / yes / yes (any / inactive / active), so starting a VPN
	// at login never prompts while a remote caller must authenticate.
	ActionSessionControlOwn = "net.ovpn3go.session.control-own"
	// ActionSessionControlOther: control or inspect another user's session
	// beyond its ACL. auth_admin_keep everywhere.
	ActionSessionControlOther = "net.ovpn3go.session.control-other"
)

// Actions lists every action id the helper checks, in the order of the
// policy file.
func Actions() []string {
	return []string{ActionSessionControlOwn, ActionSessionControlOther}
}
