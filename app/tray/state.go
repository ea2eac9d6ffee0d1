package tray

import (
	"fyne.io/fyne/v2/lang"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// IconState is what the tray icon shows. The order is the rank: with
// several sessions the icon shows the highest state.
type IconState int

const (
	IconDisconnected IconState = iota
	IconConnected
	IconPaused
	IconConnecting
	IconAttention
	IconError
)

// AssetName is the state's PNG name in assets/tray.
func (s IconState) AssetName() string {
	return [...]string{"disconnected", "connected", "paused", "connecting", "attention", "error"}[s]
}

// SessionState classifies a session by its last status and whether an
// AttentionRequired is outstanding.
func SessionState(st api.Status, attention bool) IconState {
	switch st.Minor {
	case api.StatusMinorCfgRequireUser, api.StatusMinorSessAuthURL:
		return IconAttention
	case api.StatusMinorConnConnected:
		if attention {
			return IconAttention
		}
		return IconConnected
	case api.StatusMinorConnPaused, api.StatusMinorConnPausing:
		return IconPaused
	case api.StatusMinorConnFailed, api.StatusMinorConnAuthFailed, api.StatusMinorCfgError,
		api.StatusMinorCfgInlineMissing, api.StatusMinorProcKilled:
		return IconError
	case api.StatusMinorConnDisconnected, api.StatusMinorConnDone, api.StatusMinorProcStopped:
		return IconDisconnected
	}
	if attention {
		return IconAttention
	}
	return IconConnecting
}

// StatusText is the short, translated text of a session status shown in
// the menu, the main window and notifications.
func StatusText(st api.Status) string {
	switch st.Minor {
	case api.StatusMinorCfgRequireUser:
		return lang.L("Waiting for credentials")
	case api.StatusMinorSessAuthURL:
		return lang.L("Waiting for web sign-in")
	case api.StatusMinorConnConnected:
		return lang.L("Connected")
	case api.StatusMinorConnPausing, api.StatusMinorConnPaused:
		return lang.L("Paused")
	case api.StatusMinorConnResuming:
		return lang.L("Resuming")
	case api.StatusMinorConnReconnecting:
		return lang.L("Reconnecting")
	case api.StatusMinorConnDisconnecting:
		return lang.L("Disconnecting")
	case api.StatusMinorConnDisconnected, api.StatusMinorConnDone, api.StatusMinorProcStopped:
		return lang.L("Disconnected")
	case api.StatusMinorConnAuthFailed:
		return lang.L("Authentication failed")
	case api.StatusMinorConnFailed:
		return lang.L("Connection failed")
	case api.StatusMinorCfgError, api.StatusMinorCfgInlineMissing:
		return lang.L("Configuration error")
	case api.StatusMinorProcKilled:
		return lang.L("Stopped unexpectedly")
	}
	return lang.L("Connecting")
}
