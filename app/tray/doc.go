// Package tray is the ovpn3-tray desktop application: a status icon and
// menu (StatusNotifierItem through Fyne's systray), credential dialogs fed
// by a session's user-input queue, desktop notifications, and the
// statistics, log, import and settings windows.
//
// Everything here takes its fyne.App and its Backend (the helper, reached
// through app/client) as parameters, so the whole UI runs headless under
// fyne.io/fyne/v2/test with a fake backend. Every user-visible string goes
// through fyne.io/fyne/v2/lang (catalogues in translations/).
package tray
