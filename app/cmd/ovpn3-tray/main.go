// Command ovpn3-tray is the ovpn3go desktop application: a tray icon and
// menu to connect, pause and disconnect VPN sessions, credential dialogs,
// notifications, statistics and logs. It runs as the desktop user and talks
// to the VPN services only over the system bus (app/client); the UI lives
// in app/tray.
//
//	ovpn3-tray                 run the tray
//	ovpn3-tray --import FILE   run it and import FILE (also how file managers open .ovpn files)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/app/tray"
	"github.com/ovpn3go/ovpn3go/app/tray/notify"
	"github.com/ovpn3go/ovpn3go/app/tray/secrets"
	"github.com/ovpn3go/ovpn3go/assets"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// AppID is the application's ID (FyneApp.toml, desktop file, autostart).
const AppID = "net.ovpn3go.tray"

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("ovpn3-tray", flag.ContinueOnError)
	importFile := fs.String("import", "", "import this profile file (.ovpn) and show the result")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("ovpn3-tray", version.Version)
		return 0
	}
	if *importFile == "" && fs.NArg() == 1 {
		*importFile = fs.Arg(0) // Exec=ovpn3-tray %f from the desktop file
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a := app.NewWithID(AppID)
	a.SetIcon(fyne.NewStaticResource("ovpn3go.png", assets.AppIcon()))
	if err := tray.LoadTranslations(); err != nil {
		log.Error("translations", "err", err)
	}
	c, err := client.Connect(ctx)
	if err != nil {
		log.Error("cannot reach the system bus", "err", err)
		return 1
	}
	defer c.Close()

	opts := tray.Options{Backend: tray.ClientBackend{C: c}, Log: log}
	if exe, err := os.Executable(); err == nil {
		opts.Executable = exe
	}
	if dir, err := tray.AutostartDir(); err == nil {
		opts.AutostartDir = dir
	}
	// our own session-bus connection for notifications, the keyring, the
	// tray host watch and the test control (Fyne and systray have theirs)
	sess, err := dbus.SessionBusPrivate()
	if err == nil {
		if err = sess.Auth(nil); err == nil {
			err = sess.Hello()
		}
	}
	var notes *notify.Client
	if err != nil {
		log.Warn("no session bus: no notifications, no remembered credentials", "err", err)
		sess = nil
	} else {
		defer sess.Close()
		notes = &notify.Client{Conn: sess, AppName: "ovpn3go", DesktopEntry: AppID}
		opts.Notify = notes
		opts.Watcher = tray.BusHostWatcher{Conn: sess}
		switch s, err := secrets.Open(ctx, sess); {
		case err == nil:
			defer s.Close()
			opts.Secrets = tray.KeyringStore{S: s}
		case errors.Is(err, secrets.ErrNoService):
			log.Info("no Secret Service: credentials are not remembered")
		default:
			log.Warn("Secret Service", "err", err)
		}
	}

	t := tray.New(a, opts)
	if sess != nil {
		primary, err := t.ClaimInstance(sess)
		switch {
		case err != nil:
			log.Warn("single instance", "err", err)
		case !primary && *importFile != "":
			if err := tray.ForwardImport(ctx, sess, *importFile); err != nil {
				log.Error("import", "err", err)
				return 1
			}
			log.Info("handed the profile to the running ovpn3-tray", "file", *importFile)
			return 0
		case !primary:
			log.Info("ovpn3-tray already runs in this session")
			return 0
		}
	}
	if sess != nil && os.Getenv(tray.ControlEnv) == "1" {
		if err := t.ExportControl(sess); err != nil {
			log.Error("test control", "err", err)
			return 1
		}
		log.Info("test control exported", "name", tray.ControlName)
	}
	if notes != nil {
		if acts, err := notes.Actions(ctx); err == nil {
			go func() {
				for inv := range acts {
					t.NotificationAction(inv.ID, inv.Action)
				}
			}()
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
			fyne.Do(a.Quit)
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	started := false
	a.Lifecycle().SetOnStarted(func() {
		started = true
		go func() {
			defer close(done)
			t.Run(ctx)
		}()
		if *importFile != "" {
			t.ImportFromCommandLine(*importFile)
		}
	})
	t.Install()
	a.Run()
	cancel()
	if started {
		<-done // Run ends once its goroutines have
	}
	return 0
}
