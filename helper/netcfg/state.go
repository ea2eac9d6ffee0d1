package netcfg

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sharedroute"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
)

// JournalDirName is the journal's directory inside the state directory.
const JournalDirName = "netcfg-journal"

// sharedJournal is the journal of the routes shared by all devices.
const sharedJournal = "shared-routes"

// SetStateDir makes the service journal every change it makes in
// stateDir/netcfg-journal (package journal), and undo at Export whatever an
// earlier run left there. Call it before Export. Without it the service
// keeps no journal (tests that run the service in-process).
func (s *Service) SetStateDir(stateDir string) error {
	st, err := journal.Open(filepath.Join(stateDir, JournalDirName))
	if err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal = st
	return nil
}

// Undoers is where other packages that change the system on netcfg's
// behalf (the DNS backends) register the undo functions of their journal
// entry kinds, before Export runs the recovery.
func (s *Service) Undoers() *journal.Undoers { return &s.undoers }

// Journal creates a journal called name (see journal.Store.Create) in the
// service's journal directory, or returns nil when the service keeps none.
func (s *Service) Journal(name string) (*journal.Journal, error) {
	s.mu.Lock()
	st := s.journal
	s.mu.Unlock()
	if st == nil {
		return nil, nil
	}
	return st.Create(name)
}

// startRouting recovers what a crashed run left behind, then starts the
// shared route table (with its journal) and its watch on route changes.
func (s *Service) startRouting(ctx context.Context) error {
	s.mu.Lock()
	st, ns := s.journal, s.ns
	s.mu.Unlock()
	if st != nil {
		nlh, err := netlink.NewHandleAt(ns) // netns.None(): the process's own
		if err != nil {
			return fmt.Errorf("netcfg: netlink for recovery: %w", err)
		}
		sysrec.Register(&s.undoers, func() (*netlink.Handle, error) { return nlh, nil })
		left, _ := st.Pending()
		if err := st.Recover(ctx, &s.undoers); err != nil {
			// Not fatal: what could not be undone stays journalled for
			// the next start, and the service can still work.
			s.log.Error("undoing what an earlier run left behind is incomplete", "err", err)
		} else if len(left) > 0 {
			s.log.Warn("undid the network changes an earlier run left behind", "journals", len(left))
		}
		nlh.Close()
	}
	j, err := s.Journal(sharedJournal)
	if err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	tbl, err := sharedroute.New(ns, j, s.log.With("part", "shared-routes"))
	if err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	if err := tbl.Start(); err != nil {
		_ = tbl.Close()
		return fmt.Errorf("netcfg: %w", err)
	}
	s.mu.Lock()
	s.shared = tbl
	s.mu.Unlock()
	return nil
}

func (s *Service) sharedRoutes() *sharedroute.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared
}
