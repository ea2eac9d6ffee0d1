package api

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/godbus/dbus/v5"
)

// The table of spec §4.1, as seen on the bus from glib 2.74.
func TestErrorNameTable(t *testing.T) {
	tests := []struct{ domain, name string }{
		{"net.openvpn.gdbuspp", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2egdbuspp.Code36"},
		{"net.openvpn.gdbuspp.request", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2egdbuspp_2erequest.Code36"},
		{"net.openvpn.v3.error.ready", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2eready.Code36"},
		{"net.openvpn.v3.error.client", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2eclient.Code36"},
		{"net.openvpn.v3.error.be-registration", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2ebe_2dregistration.Code36"},
		{"net.openvpn.v3.netcfg.error", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2enetcfg_2eerror.Code36"},
		{"net.openvpn.v3.netcfg.device.error", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2enetcfg_2edevice_2eerror.Code36"},
		{"net.openvpn.v3.log.error", "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2elog_2eerror.Code36"},
	}
	for _, tt := range tests {
		if got := ErrorName(tt.domain); got != tt.name {
			t.Errorf("ErrorName(%q) = %q, want %q", tt.domain, got, tt.name)
		}
		d, ok := DomainFromErrorName(tt.name)
		if !ok || d != tt.domain {
			t.Errorf("DomainFromErrorName(%q) = %q, %v", tt.name, d, ok)
		}
	}
}

func TestErrorWireFormat(t *testing.T) {
	e := Error(DomainReady, "Missing user credentials")
	if e.Name != "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2eready.Code36" {
		t.Errorf("name %q", e.Name)
	}
	if len(e.Body) != 1 || e.Body[0] != "GDBus.Error:net.openvpn.v3.error.ready: Missing user credentials" {
		t.Errorf("body %#v", e.Body)
	}
	// openvpn2 looks for the domain at an offset > 67 of "<name>: <message>".
	s := ErrorName(DomainGDBusPP) + ": " + Error(DomainGDBusPP, "x").Body[0].(string)
	if i := regexp.MustCompile(`GDBus\.Error:net\.openvpn\.gdbuspp:`).FindStringIndex(s); i == nil || i[0] <= 67 {
		t.Errorf("offset of the domain in %q: %v", s, i)
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		err          error
		domain, text string
		ok           bool
	}{
		{Error(DomainRequest, "Invalid configuration profile: line 3: bad"), DomainRequest, "Invalid configuration profile: line 3: bad", true},
		{*Error(DomainLog, "Not attached"), DomainLog, "Not attached", true},
		{fmt.Errorf("call: %w", Error(DomainReady, "Pending web authentication")), DomainReady, "Pending web authentication", true},
		// a re-thrown error keeps its leading space
		{Error(DomainRequest, " net.openvpn.v3.error.invalid-input: x"), DomainRequest, " net.openvpn.v3.error.invalid-input: x", true},
		{ErrUnknownObject("/p"), ErrNameUnknownMethod, "Object does not exist at path “/p”", true},
		{dbus.NewError(ErrorName(DomainClient), []any{"bare text"}), DomainClient, "bare text", true},
		{fmt.Errorf("plain"), "", "", false},
	}
	for _, tt := range tests {
		d, txt, ok := ParseError(tt.err)
		if d != tt.domain || txt != tt.text || ok != tt.ok {
			t.Errorf("ParseError(%v) = %q, %q, %v; want %q, %q, %v", tt.err, d, txt, ok, tt.domain, tt.text, tt.ok)
		}
	}
	if got := ErrorText(Error(DomainGDBusPP, "Access denied")); got != "Access denied" {
		t.Errorf("ErrorText = %q", got)
	}
	if !IsDomain(Error(DomainReady, "x"), DomainReady) || IsDomain(Error(DomainReady, "x"), DomainClient) {
		t.Error("IsDomain")
	}
	if !IsErrorName(ErrAccessDenied("no"), ErrNameAccessDenied) {
		t.Error("IsErrorName")
	}
}

func TestStandardErrorTexts(t *testing.T) {
	tests := []struct {
		e          *dbus.Error
		name, text string
	}{
		{ErrUnknownObject("/p"), ErrNameUnknownMethod, "Object does not exist at path “/p”"},
		{ErrUnknownInterface("i", "/p"), ErrNameUnknownMethod, "No such interface “i” on object at path /p"},
		{ErrUnknownMethod("M"), ErrNameUnknownMethod, "No such method “M”"},
		{ErrSignature("s", ""), ErrNameInvalidArgs, "Type of message, “(s)”, does not match expected type “()”"},
		{ErrNoSuchInterface("i"), ErrNameInvalidArgs, "No such interface “i”"},
		{ErrNoSuchProperty("p"), ErrNameInvalidArgs, "No such property “p”"},
		{ErrNotWritable("p"), ErrNameInvalidArgs, "Property “p” is not writable"},
		{ErrPropertyType("p", "b", "s"), ErrNameInvalidArgs, "Error setting property “p”: Expected type “b” but got “s”"},
		{ErrAccessDenied("no"), ErrNameAccessDenied, "no"},
		{ErrFailed("VPN session is stopped"), ErrNameFailed, "VPN session is stopped"},
	}
	for _, tt := range tests {
		if tt.e.Name != tt.name || tt.e.Body[0] != tt.text {
			t.Errorf("got %s %q, want %s %q", tt.e.Name, tt.e.Body[0], tt.name, tt.text)
		}
	}
}

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
		num  uint64
	}{
		{StatusMajorConfig, "Configuration", 1},
		{StatusMajorPKCS11, "PKCS#11", 4},
		{StatusMajor(9), "[StatusMajor:9]", 9},
		{StatusMinorCfgRequireUser, "Configuration requires user input", 4},
		{StatusMinorConnConnected, "Client connected", 7},
		{StatusMinorConnReconnecting, "Client reconnect", 12},
		{StatusMinorConnDone, "Client process exited", 16},
		{StatusMinorSessAuthURL, "URL authentication", 22},
		{StatusMinorProcKilled, "Process killed", 29},
		{AttentionTypeAccessPerm, "Requesting access permission", 3},
		{AttentionGroupChallengeAuthPending, "Pending authentication", 6},
		{AttentionGroupOpenURL, "Web authentication", 9},
		{LogGroupClient, "Client", 7},
		{LogGroupExtService, "External Service", 9},
		{LogGroup(12), "[group:12]", 12},
		{LogCategoryWarn, "WARNING", 5},
		{LogCategoryFatal, "**!! FATAL !!**", 8},
		{LogCategory(9), "[category:9]", 9},
		{SessionEventDestroyed, "Session destroyed", 2},
		{ConfigEventCreated, "Configuration created", 1},
		{ConfigEventUnset, "[UNSET]", 0},
		{NetCfgDNSSearchRemoved, "DNS Search domain Removed", 1024},
		{NetCfgDeviceAdded | NetCfgRouteAdded, "Device Added, Route Added", 17},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%v: String() = %q, want %q", tt.num, got, tt.want)
		}
		var n uint64
		fmt.Sscanf(fmt.Sprintf("%d", tt.v), "%d", &n)
		if n != tt.num {
			t.Errorf("%q: value %d, want %d", tt.want, n, tt.num)
		}
	}
	if len(statusMinorText) != 30 || len(logCategoryText) != 9 || NetCfgAll != 2047 {
		t.Error("table sizes")
	}
	if LogCategoryDebug.MinLogLevel() != 6 || LogCategoryError.MinLogLevel() != 1 || LogCategoryCrit.MinLogLevel() != 0 {
		t.Error("MinLogLevel")
	}
	if s := (Status{}).String(); s != "(No status)" {
		t.Error(s)
	}
	if s := (Status{StatusMajorConnection, StatusMinorConnConnected, ""}).String(); s != "Connection, Client connected" {
		t.Error(s)
	}
	// wire types: u for the codes, q for the event types
	if dbus.SignatureOf(StatusMajorConfig, StatusMinorCfgOK, AttentionGroupOpenURL, LogCategoryInfo, NetCfgDeviceAdded).String() != "uuuuu" ||
		dbus.SignatureOf(SessionEventCreated, ConfigEventCreated).String() != "qq" ||
		dbus.SignatureOf(Status{}).String() != "(uus)" {
		t.Error("wire signatures")
	}
}

func TestPaths(t *testing.T) {
	id := NewUUID()
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("uuid %q", id)
	}
	u := "6a3f3c1a-1b2c-4d5e-8f90-1234567890ab"
	if p := ConfigPath(u); p != "/net/openvpn/v3/configuration/6a3f3c1ax1b2cx4d5ex8f90x1234567890ab" || !p.IsValid() {
		t.Error(p)
	}
	if p := SessionPath(u); p != "/net/openvpn/v3/sessions/6a3f3c1as1b2cs4d5es8f90s1234567890ab" {
		t.Error(p)
	}
	if p := LogProxyPath(u); p != "/net/openvpn/v3/log/proxy/6a3f3c1al1b2cl4d5el8f90l1234567890ab" {
		t.Error(p)
	}
	if s := SessionToken(u); s != "6a3f3c1at1b2ct4d5et8f90t1234567890ab" {
		t.Error(s)
	}
	if PathID(ConfigPath(u)) != "6a3f3c1ax1b2cx4d5ex8f90x1234567890ab" {
		t.Error("PathID")
	}
	if !IsChildPath(PathConfiguration, NewConfigPath()) || IsChildPath(PathConfiguration, PathConfiguration) ||
		IsChildPath(PathConfiguration, PathConfiguration+"/a/b") {
		t.Error("IsChildPath")
	}
	if BackendBusName(4242) != "net.openvpn.v3.backends.be4242" {
		t.Error(BackendBusName(4242))
	}
	if pid, err := ParseBackendBusName("net.openvpn.v3.backends.be4242"); err != nil || pid != 4242 {
		t.Error(pid, err)
	}
	for _, bad := range []string{"net.openvpn.v3.backends", "net.openvpn.v3.backends.be", "net.openvpn.v3.backends.be0", "net.openvpn.v3.backends.be-1", "net.openvpn.v3.backends.be012"} {
		if _, err := ParseBackendBusName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
