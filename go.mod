module github.com/ovpn3go/ovpn3go

go 1.26.0

require (
	github.com/anchore/go-lzo v0.1.1
	github.com/godbus/dbus/v5 v5.2.4
	github.com/pierrec/lz4/v4 v4.1.33
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	software.sslmate.com/src/go-pkcs12 v0.7.4
)
