// Package ciscripts tests the scripts under .ci that `make test` runs, by
// running them against throwaway modules, and the Makefile's lists of what
// make deps installs; it has no code of its own.
package ciscripts
