SHELL     := /bin/bash
GO        ?= go
BIN       := bin/strata
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/strata-log/strata/cmd/internal/cli.Version=$(VERSION)
# The S3 server of the tiering tests, where `make deps` builds it.
ifndef VERSITYGW_BIN
VERSITYGW_BIN := $(shell scripts/deps versitygw-bin)
endif
export VERSITYGW_BIN
# An execution count, not a duration: a duration races Go 1.26's fuzz
# coordinator at the deadline (golang/go#75804, spurious "context deadline
# exceeded" failures on a loaded machine).
FUZZTIME  ?= 100000x

.PHONY: all build run deps check-deps test vet unit fuzz e2e nemesis bench clean image certs compose-tls-check

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/strata

## run: a single broker with embedded defaults (127.0.0.1:9092, data in ./data)
run: build
	./$(BIN)

## deps: once, installs what the tests need and is missing (Kafka clients, chromium, versitygw);
## without root it prints the apt-get command to run
deps:
	scripts/deps install

## check-deps: stops within seconds, naming what is missing, before tests that would fail deep in
check-deps:
	scripts/deps check

## test: vet, unit tests with -race, brief fuzzing, end-to-end tests against the real binary
test: check-deps vet unit fuzz e2e

# The end-to-end suite is behind the e2e build tag: `go test ./...` runs unit tests only.
vet:
	$(GO) vet -tags e2e ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# Each fuzz target runs briefly on top of its committed seed corpus.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./broker/recordbatch
	$(GO) test -run='^$$' -fuzz='^FuzzSplit$$' -fuzztime=$(FUZZTIME) ./broker/recordbatch
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRequest$$' -fuzztime=$(FUZZTIME) ./broker

e2e: check-deps build
	STRATA_BIN=$(abspath $(BIN)) $(GO) test -tags e2e -count=1 -p 1 -timeout 30m -v ./e2e/ 2>&1 | tee e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+[a-z_]+\.go:[0-9]+:)' ; test $${PIPESTATUS[0]} -eq 0

## nemesis: the fault scenarios of TestNemesis (kill -9, pauses, link cuts and delays, object-store faults,
## full disk, lost page cache) for NEMESIS_DURATION in all, random seeds (each printed; replay one with
## NEMESIS_SEED=N make nemesis NEMESIS_RUN=TestNemesis/<scenario>); `make test` runs them briefly with fixed seeds
NEMESIS_DURATION ?= 30m
NEMESIS_RUN      ?= TestNemesis
nemesis: check-deps build
	NEMESIS_DURATION=$(NEMESIS_DURATION) STRATA_BIN=$(abspath $(BIN)) $(GO) test -tags e2e -count=1 -timeout 0 -v -run '$(NEMESIS_RUN)' ./e2e/ 2>&1 | tee nemesis.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+[a-z_]+\.go:[0-9]+:)' ; test $${PIPESTATUS[0]} -eq 0

## bench: throughput and latency against a running broker, with the disk's raw bandwidth as the reference;
## then a 3-node cluster: RF=3 acks=all next to RF=1 acks=1; then replaying a tiered topic through the
## broker (cold and warm chunk cache) next to reading its objects directly from the same S3 server
## (versitygw, as the tests use it; BENCH_TIERED_MIB sets the data size) and to consuming an untiered
## topic, a fixed-rate producer's latency during a cold replay, a broker restart during a replay and a
## 64-partition replay, with issue 18's goals met or not; then produce and consume through an SSL
## listener next to a PLAINTEXT one of the same broker
BENCH_TIERED_MIB ?= 512
bench: build
	STRATA_BIN=$(abspath $(BIN)) $(GO) run ./e2e/cmd/strata-bench
	STRATA_BIN=$(abspath $(BIN)) $(GO) run ./e2e/cmd/strata-bench --cluster
	STRATA_BIN=$(abspath $(BIN)) $(GO) run ./e2e/cmd/strata-bench --tiered --tiered-mib $(BENCH_TIERED_MIB)
	STRATA_BIN=$(abspath $(BIN)) $(GO) run ./e2e/cmd/strata-bench --tls

clean:
	rm -rf bin data e2e.log nemesis.log

## image: the container image (static binary on scratch)
image: build
	mkdir -p bin/image
	cp /etc/ssl/certs/ca-certificates.crt bin/image/ 2>/dev/null || : > bin/image/ca-certificates.crt
	docker build -f deploy/Dockerfile -t strata:dev .

## certs: a local CA, node certificates (urn:strata:node:<id>, the compose host names, localhost,
## 127.0.0.1), a client certificate, an admin token and SASL/PLAIN users in deploy/tls, with openssl
## (scripts/gen-certs; nothing downloaded; an existing CA is kept)
CERTS_DIR ?= deploy/tls
certs:
	scripts/gen-certs $(CERTS_DIR) 3

## compose-tls-check: the TLS + SASL_SSL compose variant (deploy/compose.tls.yaml) up, checked with kcat
## over SASL_SSL and the admin API over HTTPS, then down (scripts/compose-tls-check)
compose-tls-check: certs image
	scripts/compose-tls-check
