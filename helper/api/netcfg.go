package api

import "github.com/godbus/dbus/v5"

// NetCfgNetwork is one element (suibb) of a netcfg device's AddNetworks.
type NetCfgNetwork struct {
	Address string
	Prefix  uint32
	Metric  int32
	IPv6    bool
	Exclude bool
}

// NetCfgNetworkVia is one element (suibbs) of AddNetworksVia, ovpn3go's
// addition: a network with the gateway its route names ("" = the
// route-gateway).
type NetCfgNetworkVia struct {
	Address string
	Prefix  uint32
	Metric  int32
	IPv6    bool
	Exclude bool
	Gateway string
}

// NetCfgSetting is one element (sav) of Describe's list, ovpn3go's
// addition: a device method (AddIPAddress, AddNetworks, …) with its
// arguments, or a property (mtu, reroute_ipv4, …) with its one value, each
// argument in a variant.
type NetCfgSetting struct {
	Name string
	Args []dbus.Variant
}
