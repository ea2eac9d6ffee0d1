// Package ciscripts tests the scripts under .ci that `make test` runs, by
// running them against throwaway modules; it has no code of its own.
package ciscripts
