# ovpn3go — build, test and demo. Everything runs as root on Debian 12 / Ubuntu
# (network namespaces, TUN devices, a private dbus-daemon); see README.md.

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

# Programs the tests and the demo drive (iperf3/nftables/polkitd: later issues);
# gcc and libc6-dev because go test -race needs cgo.
APT_PACKAGES := openvpn iperf3 iproute2 iputils-ping procps util-linux dbus systemd \
	libglib2.0-bin polkitd pkexec nftables openssl gcc libc6-dev

TEST_TIMEOUT ?= 25m
FUZZTIME ?= 5s

.PHONY: all deps build test vet fmt-check unit fuzz-smoke demo clean

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
	@$(GO) mod download

build:
	$(GO) build -o bin/ovpn3-helper ./helper/cmd/ovpn3-helper
	$(GO) build -o bin/ovpn3 ./app/cli

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Unit, integration and e2e tests (fuzz targets run their seed corpora here).
unit:
	CI=$${CI:-1} $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# Every fuzz target fuzzes for FUZZTIME beyond its seeds.
fuzz-smoke:
	FUZZTIME=$(FUZZTIME) .ci/fuzz-smoke

test: deps vet fmt-check unit fuzz-smoke

demo: deps build
	$(GO) build -o bin/ovpn3go-demo ./e2e/cmd/demo
	bin/ovpn3go-demo --bin bin $(DEMO_ARGS)

clean:
	rm -rf bin
	$(GO) clean -testcache
