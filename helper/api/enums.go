package api

import "fmt"

// The enumerations of spec §3. All travel as `u` except the two event types
// (`q`). String returns the text the upstream C++ tools print.

// StatusMajor is the first code of a StatusChange (spec §3.1).
type StatusMajor uint32

const (
	StatusMajorUnset      StatusMajor = 0
	StatusMajorConfig     StatusMajor = 1
	StatusMajorConnection StatusMajor = 2
	StatusMajorSession    StatusMajor = 3
	StatusMajorPKCS11     StatusMajor = 4
	StatusMajorProcess    StatusMajor = 5
)

var statusMajorText = []string{"(unset)", "Configuration", "Connection", "Session", "PKCS#11", "Process"}

func (v StatusMajor) String() string { return lookup(statusMajorText, uint32(v), "StatusMajor") }

// StatusMinor is the second code of a StatusChange (spec §3.2).
type StatusMinor uint32

const (
	StatusMinorUnset                StatusMinor = 0
	StatusMinorCfgError             StatusMinor = 1
	StatusMinorCfgOK                StatusMinor = 2
	StatusMinorCfgInlineMissing     StatusMinor = 3
	StatusMinorCfgRequireUser       StatusMinor = 4
	StatusMinorConnInit             StatusMinor = 5
	StatusMinorConnConnecting       StatusMinor = 6
	StatusMinorConnConnected        StatusMinor = 7
	StatusMinorConnDisconnecting    StatusMinor = 8
	StatusMinorConnDisconnected     StatusMinor = 9
	StatusMinorConnFailed           StatusMinor = 10
	StatusMinorConnAuthFailed       StatusMinor = 11
	StatusMinorConnReconnecting     StatusMinor = 12
	StatusMinorConnPausing          StatusMinor = 13
	StatusMinorConnPaused           StatusMinor = 14
	StatusMinorConnResuming         StatusMinor = 15
	StatusMinorConnDone             StatusMinor = 16
	StatusMinorSessNew              StatusMinor = 17
	StatusMinorSessBackendCompleted StatusMinor = 18
	StatusMinorSessRemoved          StatusMinor = 19
	StatusMinorSessAuthUserPass     StatusMinor = 20
	StatusMinorSessAuthChallenge    StatusMinor = 21
	StatusMinorSessAuthURL          StatusMinor = 22
	StatusMinorPKCS11Sign           StatusMinor = 23
	StatusMinorPKCS11Encrypt        StatusMinor = 24
	StatusMinorPKCS11Decrypt        StatusMinor = 25
	StatusMinorPKCS11Verify         StatusMinor = 26
	StatusMinorProcStarted          StatusMinor = 27
	StatusMinorProcStopped          StatusMinor = 28
	StatusMinorProcKilled           StatusMinor = 29
)

var statusMinorText = []string{
	"(unset)", "Configuration error", "Configuration OK", "Configuration missing inline data",
	"Configuration requires user input", "Client initialized", "Client connecting", "Client connected",
	"Client disconnecting", "Client disconnected", "Client connection failed", "Client authentication failed",
	"Client reconnect", "Client pausing connection", "Client connection paused", "Client connection resuming",
	"Client process exited", "New session created", "Backend Session Object completed", "Session deleted",
	"User/password authentication", "Challenge/response authentication", "URL authentication",
	"PKCS#11 Sign", "PKCS#11 Encrypt", "PKCS#11 Decrypt", "PKCS#11 Verify",
	"Process started", "Process stopped", "Process killed",
}

func (v StatusMinor) String() string { return lookup(statusMinorText, uint32(v), "StatusMinor") }

// Status is the (uus) tuple of the `status` properties and StatusChange.
type Status struct {
	Major   StatusMajor
	Minor   StatusMinor
	Message string
}

// String renders a status the way the openvpn3 CLI does: "(No status)" for
// the empty status, else "<major>, <minor>[: <message>]".
func (s Status) String() string {
	if s == (Status{}) {
		return "(No status)"
	}
	out := s.Major.String() + ", " + s.Minor.String()
	if s.Message != "" {
		out += ": " + s.Message
	}
	return out
}

// AttentionType is the first code of AttentionRequired and of user-input
// slots (spec §3.3).
type AttentionType uint32

const (
	AttentionTypeUnset       AttentionType = 0
	AttentionTypeCredentials AttentionType = 1
	AttentionTypePKCS11      AttentionType = 2
	AttentionTypeAccessPerm  AttentionType = 3
)

var attentionTypeText = []string{"(unset)", "User Credentials", "PKCS#11 operation", "Requesting access permission"}

func (v AttentionType) String() string {
	return lookup(attentionTypeText, uint32(v), "ClientAttentionType")
}

// AttentionGroup is the second code of AttentionRequired and of user-input
// slots (spec §3.4).
type AttentionGroup uint32

const (
	AttentionGroupUnset                AttentionGroup = 0
	AttentionGroupUserPassword         AttentionGroup = 1
	AttentionGroupHTTPProxyCreds       AttentionGroup = 2
	AttentionGroupPKPassphrase         AttentionGroup = 3
	AttentionGroupChallengeStatic      AttentionGroup = 4
	AttentionGroupChallengeDynamic     AttentionGroup = 5
	AttentionGroupChallengeAuthPending AttentionGroup = 6
	AttentionGroupPKCS11Sign           AttentionGroup = 7
	AttentionGroupPKCS11Decrypt        AttentionGroup = 8
	AttentionGroupOpenURL              AttentionGroup = 9
)

var attentionGroupText = []string{
	"(unset)", "Username/password authentication", "HTTP proxy credentials", "Private key passphrase",
	"Static challenge", "Dynamic challenge", "Pending authentication", "PKCS#11 sign operation",
	"PKCS#11 decrypt operation", "Web authentication",
}

func (v AttentionGroup) String() string {
	return lookup(attentionGroupText, uint32(v), "ClientAttentionGroup")
}

// LogGroup is the `group` argument of Log signals (spec §3.5).
type LogGroup uint32

const (
	LogGroupUndefined    LogGroup = 0
	LogGroupMasterProc   LogGroup = 1
	LogGroupConfigMgr    LogGroup = 2
	LogGroupSessionMgr   LogGroup = 3
	LogGroupBackendStart LogGroup = 4
	LogGroupLogger       LogGroup = 5
	LogGroupBackendProc  LogGroup = 6
	LogGroupClient       LogGroup = 7
	LogGroupNetCfg       LogGroup = 8
	LogGroupExtService   LogGroup = 9
)

var logGroupText = []string{
	"[[UNDEFINED]]", "Master Process", "Config Manager", "Session Manager", "Backend Starter", "Logger",
	"Backend Session Process", "Client", "Network Configuration", "External Service",
}

func (v LogGroup) String() string {
	if int(v) < len(logGroupText) {
		return logGroupText[v]
	}
	return fmt.Sprintf("[group:%d]", uint32(v))
}

// LogCategory is the `level` argument of Log signals (spec §3.6).
type LogCategory uint32

const (
	LogCategoryUndefined LogCategory = 0
	LogCategoryDebug     LogCategory = 1
	LogCategoryVerb2     LogCategory = 2
	LogCategoryVerb1     LogCategory = 3
	LogCategoryInfo      LogCategory = 4
	LogCategoryWarn      LogCategory = 5
	LogCategoryError     LogCategory = 6
	LogCategoryCrit      LogCategory = 7
	LogCategoryFatal     LogCategory = 8
)

var logCategoryText = []string{
	"[[UNDEFINED]]", "DEBUG", "VERB2", "VERB1", "INFO", "WARNING", "-- ERROR --", "!! CRITICAL !!", "**!! FATAL !!**",
}

func (v LogCategory) String() string {
	if int(v) < len(logCategoryText) {
		return logCategoryText[v]
	}
	return fmt.Sprintf("[category:%d]", uint32(v))
}

// MinLogLevel is the lowest log level (0..6) at which a Log event of this
// category is sent; UNDEFINED, CRIT and FATAL are always sent (level 0).
func (v LogCategory) MinLogLevel() uint32 {
	switch {
	case v >= LogCategoryDebug && v <= LogCategoryError:
		return 7 - uint32(v)
	default:
		return 0
	}
}

// MaxLogLevel is the highest valid log level; Set of a larger one fails.
const MaxLogLevel = 6

// SessionEventType is the `type` (q) of SessionManagerEvent (spec §3.7).
type SessionEventType uint16

const (
	SessionEventUnset     SessionEventType = 0
	SessionEventCreated   SessionEventType = 1
	SessionEventDestroyed SessionEventType = 2
)

var sessionEventText = []string{"[UNSET]", "Session created", "Session destroyed"}

func (v SessionEventType) String() string {
	return lookup(sessionEventText, uint32(v), "SessionManagerEvent")
}

// ConfigEventType is the `type` (q) of ConfigurationManagerEvent (spec §3.7).
type ConfigEventType uint16

const (
	ConfigEventUnset     ConfigEventType = 0
	ConfigEventCreated   ConfigEventType = 1
	ConfigEventDestroyed ConfigEventType = 2
)

var configEventText = []string{"[UNSET]", "Configuration created", "Configuration destroyed"}

func (v ConfigEventType) String() string {
	return lookup(configEventText, uint32(v), "ConfigurationManagerEvent")
}

// NetCfgChangeType is the bitmask type of NetworkChange (spec §3.8).
type NetCfgChangeType uint32

const (
	NetCfgUnset            NetCfgChangeType = 0
	NetCfgDeviceAdded      NetCfgChangeType = 1 << 0
	NetCfgDeviceRemoved    NetCfgChangeType = 1 << 1
	NetCfgIPAddrAdded      NetCfgChangeType = 1 << 2
	NetCfgIPAddrRemoved    NetCfgChangeType = 1 << 3
	NetCfgRouteAdded       NetCfgChangeType = 1 << 4
	NetCfgRouteRemoved     NetCfgChangeType = 1 << 5
	NetCfgRouteExcluded    NetCfgChangeType = 1 << 6
	NetCfgDNSServerAdded   NetCfgChangeType = 1 << 7
	NetCfgDNSServerRemoved NetCfgChangeType = 1 << 8
	NetCfgDNSSearchAdded   NetCfgChangeType = 1 << 9
	NetCfgDNSSearchRemoved NetCfgChangeType = 1 << 10

	// NetCfgAll is every defined bit; valid subscription filters are 1..65535.
	NetCfgAll NetCfgChangeType = 1<<11 - 1
)

var netCfgChangeText = []string{
	"Device Added", "Device Removed", "IP Address Added", "IP Address Removed", "Route Added", "Route Removed",
	"Route Excluded", "DNS Server Added", "DNS Server Removed", "DNS Search domain Added", "DNS Search domain Removed",
}

// String names a single change type; a combination of bits is joined by ", ".
func (v NetCfgChangeType) String() string {
	if v == 0 {
		return "[UNSET]"
	}
	out := ""
	for i, s := range netCfgChangeText {
		if v&(1<<i) != 0 {
			if out != "" {
				out += ", "
			}
			out += s
		}
	}
	if rest := v &^ NetCfgAll; rest != 0 {
		if out != "" {
			out += ", "
		}
		out += fmt.Sprintf("[NetCfgChangeType:%#x]", uint32(rest))
	}
	return out
}

func lookup(table []string, v uint32, kind string) string {
	if int(v) < len(table) {
		return table[v]
	}
	return fmt.Sprintf("[%s:%d]", kind, v)
}
