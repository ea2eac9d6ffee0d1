// Package packaging holds what installs ovpn3go on a system — the Debian
// source package (deb/debian), the D-Bus activation files, the systemd
// unit, the desktop integration, man pages, bash completion and the Flatpak
// manifest of the tray — and the tests that check them: their contents
// against the code (service names, version), and the built packages
// installed into a clean Debian root.
package packaging
