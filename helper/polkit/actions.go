package polkit

// Action ids declared in polkit/net.ovpn3go.policy. The helper's UID ACL on
// profiles and sessions is the first gate; these actions cover what lies
// beyond it (other users' sessions) and system-wide changes. A test keeps
// this list and the policy file in step.
const (
	// ActionSessionControlOwn: start, pause, resume, restart or disconnect
	// sessions of profiles the caller owns or is granted. Defaults
	// auth_admin / yes / yes (any / inactive / active), so starting a VPN
	// at login never prompts while a remote caller must authenticate.
	ActionSessionControlOwn = "net.ovpn3go.session.control-own"
	// ActionProfileManageOwn: import, remove, rename own profiles and set
	// their overrides. auth_self_keep / yes / yes.
	ActionProfileManageOwn = "net.ovpn3go.profile.manage-own"
	// ActionSessionControlOther: control or inspect another user's session
	// beyond its ACL. auth_admin_keep everywhere.
	ActionSessionControlOther = "net.ovpn3go.session.control-other"
	// ActionProfileManageSystem: system-wide profiles, boot-time autostart,
	// ownership transfer. auth_admin_keep everywhere.
	ActionProfileManageSystem = "net.ovpn3go.profile.manage-system"
	// ActionNetworkKillswitch: enable or disable the firewall lock-down.
	// auth_admin_keep everywhere.
	ActionNetworkKillswitch = "net.ovpn3go.network.killswitch"
	// ActionNetworkConfigure: global DNS policy, routing and DCO settings.
	// auth_admin_keep everywhere.
	ActionNetworkConfigure = "net.ovpn3go.network.configure"
)

// Actions lists every action id the helper checks, in the order of the
// policy file.
func Actions() []string {
	return []string{
		ActionSessionControlOwn,
		ActionProfileManageOwn,
		ActionSessionControlOther,
		ActionProfileManageSystem,
		ActionNetworkKillswitch,
		ActionNetworkConfigure,
	}
}
