# ovpn3go — build, test and demo. Everything runs as root on Debian 12 / Ubuntu
# (network namespaces, TUN devices, a private dbus-daemon); see README.md.

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

# The tray: Fyne's cgo GL build (pkg-config, GL and X11 headers), Xvfb for the
# integration test and screenshots, gnome-keyring as the real Secret Service,
# xfce4-panel as a real StatusNotifierItem host, ImageMagick to capture
# screenshots, x11-utils (xwininfo) to find windows.
TRAY_PACKAGES := pkg-config libgl1-mesa-dev libgl1-mesa-dri xorg-dev xvfb xauth gnome-keyring \
	xfce4-panel imagemagick x11-utils

# `make deb` and its install tests (packaging/): the Debian tool chain,
# lintian, debootstrap for the clean root the packages install into, and
# systemd-nspawn to boot that root with systemd.
DEB_PACKAGES := debhelper dpkg-dev fakeroot lintian debootstrap systemd-container

# Programs the tests and the demo drive (iperf3/nftables/polkitd: later issues);
# gcc and libc6-dev because go test -race needs cgo. Defined after the lists it
# takes in: := expands them here, and an undefined one is empty
# (internal/ciscripts' TestDepsInstallsEveryList).
APT_PACKAGES := openvpn iperf3 iproute2 iputils-ping procps util-linux dbus systemd \
	libglib2.0-bin polkitd pkexec nftables openssl gcc libc6-dev \
	$(TRAY_PACKAGES) $(DEB_PACKAGES)

# The release, the one place it is written; internal/version.Version gets it
# at link time (a plain go build says "dev").
VERSION ?= 0.1.0-dev
LDFLAGS := -X github.com/ovpn3go/ovpn3go/internal/version.Version=$(VERSION)
# Extra go build flags for the build target (the Debian package builds
# position-independent executables: -buildmode=pie).
GOBUILDFLAGS ?=
# The daemon and the backend are built with Go 1.26's previous garbage
# collector (0.3 MB less resident memory per backend; the reason is at
# internal/testbed.ServiceGOEXPERIMENT, which must say the same). Go plans
# to drop this opt-out in 1.27: a toolchain upgrade removes this line.
SERVICE_GOEXPERIMENT := nogreenteagc

# systemd-resolved for the DNS tests: unpacked (dpkg -x), never installed —
# installing it would take over the host's /etc/resolv.conf. The tests run it
# in their own namespaces on a private bus (internal/testbed/resolved.go).
RESOLVED_ROOT ?= /var/cache/ovpn3go/systemd-resolved

TEST_TIMEOUT ?= 25m
FUZZTIME ?= 1m

.PHONY: all deps build test screenshots vet fmt-check unit fuzz-smoke fuzz demo bench clean deb load soak

# Debian packages, built from the tracked files (a clean copy with
# packaging/deb/debian at its top), then checked by lintian (errors fail).
DEB_DIR ?= $(CURDIR)/build/deb

all: build

# Idempotent: apt only runs when a package is missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@if [ ! -x $(RESOLVED_ROOT)/lib/systemd/systemd-resolved ]; then \
		echo "deps: unpacking systemd-resolved into $(RESOLVED_ROOT)"; \
		ver=$$(dpkg-query -W -f='$${Version}' systemd) && tmp=$$(mktemp -d) && chmod 755 $$tmp && \
		( cd $$tmp && { apt-get download -qq systemd-resolved=$$ver 2>/dev/null || \
			{ apt-get update -qq && apt-get download -qq systemd-resolved=$$ver; }; } ) && \
		mkdir -p $(RESOLVED_ROOT) && dpkg -x $$tmp/systemd-resolved_*.deb $(RESOLVED_ROOT) && rm -rf $$tmp; \
	fi
	@$(GO) mod download

# The helper and the backend without cgo (Go's own resolver and
# /etc/passwd lookups): no libc is mapped into the daemon and every
# backend, 1.7 MB less resident memory per process (docs/bench/results.md).
# The CLI too: it starts ~3 ms sooner (no dynamic loader, no libc), and
# asks getent(1) for users /etc/passwd lacks (LDAP, sssd: app/cli/users.go).
# The tray needs cgo (GL). testbed.BuildBinaries builds them the same way.
# The daemon finds ovpn3-backend beside itself.
build:
	GOEXPERIMENT=$(SERVICE_GOEXPERIMENT) CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/ovpn3-helper ./helper/cmd/ovpn3-helper
	GOEXPERIMENT=$(SERVICE_GOEXPERIMENT) CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/ovpn3-backend ./helper/cmd/ovpn3-backend
	CGO_ENABLED=0 $(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/ovpn3 ./app/cmd/ovpn3
	$(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/ovpn3-tray ./app/cmd/ovpn3-tray

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Unit, integration and e2e tests (fuzz targets run their seed corpora here).
unit: deb
	CI=$${CI:-1} OVPN3GO_RESOLVED_ROOT=$(RESOLVED_ROOT) OVPN3GO_DEB_DIR=$(DEB_DIR) $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# Every fuzz target fuzzes beyond its seeds for the execution count that
# .ci/fuzz-budgets names (about two minutes in all): a count, never a
# duration, so this step fails only on a finding, never by timing.
fuzz-smoke:
	.ci/fuzz-smoke

# Long fuzzing on purpose: every target for FUZZTIME (a duration, or Nx).
fuzz:
	.ci/fuzz-smoke --fuzztime $(FUZZTIME)

# The load test (issue 15): LOAD_SESSIONS sessions from one helper beside a
# helper with one, D-Bus latency sampled LOAD_SAMPLES times per method
# (about a minute). It measures latency, so it runs alone: built only with
# the "load" tag, never inside `go test ./...`. `make load` updates the
# results file; `make test` writes its figures to build/load.md.
LOAD_SESSIONS ?= 50
LOAD_SAMPLES ?= 5000
LOAD_OUT ?= $(CURDIR)/docs/bench/load.md
load: deps
	$(GO) vet -tags load ./e2e/load/
	mkdir -p $(dir $(LOAD_OUT))
	CI=$${CI:-1} $(GO) test -tags load -count=1 -timeout 15m -run '^TestLoad$$' -v ./e2e/load/ \
		-args -load.sessions $(LOAD_SESSIONS) -load.samples $(LOAD_SAMPLES) -load.out $(LOAD_OUT)

test: LOAD_OUT = $(CURDIR)/build/load.md
test: deps vet fmt-check unit fuzz-smoke load

# The soak test for DURATION (make test runs it for 3 minutes): sessions
# with continuous traffic, renegotiation every 10 s and a server restart
# every minute; fails when memory, goroutines or descriptors of the helper
# or the backends grow beyond the bounds in e2e/soak_test.go.
DURATION ?= 30m
soak: deps
	CI=$${CI:-1} OVPN3GO_SOAK_DURATION=$(DURATION) $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./e2e/

demo: deps build
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ovpn3go-demo ./e2e/cmd/demo
	bin/ovpn3go-demo --bin bin $(DEMO_ARGS)

# Go's caches are passed in because debhelper gives the build a scratch HOME.
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z | tar --null -T - -cf - | tar -xf - -C $(DEB_DIR)/src
	cp -a packaging/deb/debian $(DEB_DIR)/src/debian
	cd $(DEB_DIR)/src && GOCACHE=$$($(GO) env GOCACHE) GOMODCACHE=$$($(GO) env GOMODCACHE) \
		GOPROXY=$$($(GO) env GOPROXY) dpkg-buildpackage -us -uc -b
	lintian --fail-on error --info --display-level '>=warning' $(DEB_DIR)/*.changes

clean:
	rm -rf bin build
	$(GO) clean -testcache

# PNGs of the tray icon in a real panel (xfce4-panel) and of every tray
# window, taken from the running system (helper, OpenVPN server, tray under
# Xvfb); the README shows them. Needs root like the tests.
# ovpn3go vs the OpenVPN 2.6 client, alternating runs (~8 min; not part of
# test: internal/bench's TestSmoke runs the same code path briefly there).
# The CPU profile comes from one extra session with a profiling build of
# the backend (-tags cpuprofile); every figure from the production one.
BENCH_ARGS ?= -pairs 3 -t 10
bench: deps
	$(GO) run ./e2e/cmd/bench $(BENCH_ARGS) -out docs/bench/results.md -profile docs/bench/backend-cpu.pprof

screenshots: deps
	$(GO) run ./e2e/cmd/screenshots -out docs/screenshots
