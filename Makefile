# parkgate — every entry point a person or CI uses.
SHELL := /bin/bash
GO ?= go
export TEST_DATABASE_URL ?= postgres://parkgate:parkgate@127.0.0.1:5432/parkgate?sslmode=disable
STRIPE_MOCK_VERSION := v0.203.0

.PHONY: help build dist services test test-race test-short bench bench-core bench-edge bench-surge bench-binary bench-binary-ab bench-hold-sql fuzz lint vet fmt demo stripe-mock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/parkcloud, bin/parkedge, bin/parksim
	@mkdir -p bin
	$(GO) build -o bin/parkcloud ./cloud/cmd/parkcloud
	$(GO) build -o bin/parkedge ./edge/cmd/parkedge
	$(GO) build -o bin/parksim ./sim/cmd/parksim

# Static (no cgo) Linux binaries for release: parkedge for the gate computers
# (Raspberry Pi 3/4/5 and other arm64 boards; 32-bit ARMv7 boards) and amd64,
# parkcloud for amd64 (the Dockerfile builds its image). The test then checks
# each file's ELF machine, that it has no dynamic loader, and CGO_ENABLED=0.
dist: ## cross-build static release binaries into dist/ and check them
	@rm -rf dist && mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o dist/parkedge-linux-arm64 ./edge/cmd/parkedge
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -o dist/parkedge-linux-armv7 ./edge/cmd/parkedge
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -o dist/parkedge-linux-amd64 ./edge/cmd/parkedge
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -o dist/parkcloud-linux-amd64 ./cloud/cmd/parkcloud
	PARKGATE_DIST_DIR=$(CURDIR)/dist $(GO) test -count=1 -run '^TestDistBinaries$$' ./deploy
	@cd dist && sha256sum * > SHA256SUMS && ls -l

services: ## make Postgres, Redis and Mosquitto ready (installs them if missing)
	@bash deploy/services.sh

stripe-mock: ## install stripe-mock, so payment requests are checked by Stripe's own mock (best effort)
	@command -v stripe-mock >/dev/null || [ -x "$$($(GO) env GOPATH)/bin/stripe-mock" ] || \
		$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION) || \
		echo "stripe-mock could not be installed; its test will be skipped"

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: services stripe-mock vet build ## all tests, race detector on, against the real services (services installs gcc, git, ... when missing)
	$(GO) test -race -count=1 -timeout 15m ./...

test-short: services ## quick tests without the race detector
	$(GO) test -count=1 -timeout 10m ./...

bench: bench-core bench-edge bench-surge bench-binary ## every benchmark

bench-core: services ## hold throughput and search latency vs pgbench (issue 2), webhook ingestion and confirmation (issue 3)
	$(GO) test -run '^$$' -bench 'Holds|Webhook' -benchtime 1x -timeout 30m ./cloud/httpapi/
	@echo "webhooks paced at 2,000/s as Stripe would send them (webhook -> CONFIRMED under that load):"
	BENCH_RATE=2000 BENCH_N=6000 $(GO) test -run '^$$' -bench 'Webhook' -benchtime 1x -timeout 10m ./cloud/httpapi/
	@# Last: loading a million reservations leaves Postgres checkpointing for a while after.
	$(GO) test -run '^$$' -bench 'Search' -benchtime 1x -timeout 30m ./cloud/httpapi/

bench-binary: services build ## bin/parkcloud as its own process over loopback, guard off / on / with a Stripe stand-in, vs pgbench (issue 17), on lots with a past (BENCH_HISTORY per spot); the modes take turns in 8 slices a round (BENCH_SLICES), BENCH_ROUNDS=5 repeats, PARKCLOUD_BIN=a=PATH,b=PATH compares binaries of one schema, BENCH_SQL=a=FILE.sql schemas
	PARKCLOUD_BIN=$${PARKCLOUD_BIN:-this=$(CURDIR)/bin/parkcloud} $(GO) test -run '^$$' -bench Binary -benchtime 1x -timeout 30m ./cloud/httpapi/

bench-binary-ab: services ## bench-binary of revision BASE (default HEAD~1) and of this tree, each on its own harness and schema, alternating ROUNDS (default 3)
	deploy/bench-ab.sh $(or $(BASE),HEAD~1) $(or $(ROUNDS),3)

bench-hold-sql: services build ## pgbench of parkgate_hold alone on two schemas, A=FILE.sql and B=FILE.sql applied after migrating (none: as migrated), alternating ROUNDS (default 4): try an index or key before making it a migration
	deploy/bench-hold-sql.sh $(or $(A),-) $(or $(B),-) $(or $(ROUNDS),4)

bench-edge: ## plate read → barrier, change applied, memory with 1M reservations
	$(GO) test -run '^$$' -bench . -timeout 20m ./edge/...

bench-surge: services ## hot-lot surge (issue 6); BENCH_ROUNDS surges (default 3), BENCH_REPLICAS=2 two replicas the drivers alternate between
	$(GO) test -run '^$$' -bench Surge -benchtime 1x -timeout 20m ./cloud/httpapi/

FUZZTIME ?= 10s
fuzz: ## a short fuzzing pass (FUZZTIME each, default 10s) over every Fuzz target: the parsers that face the outside
	@# Found by name, so a new Fuzz target is fuzzed without editing this file.
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
			echo "fuzz $$dir $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

lint: vet ## vet + staticcheck (when installed)
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed; vet only"

demo: services build ## the main job: a one-minute simulated multi-lot run with a report
	@# services has just run and printed its block: parksim need not run it again.
	./bin/parksim run --scenario demo --services=false

FLEET_LOTS ?= 1000
FLEET_RATE ?= 20
FLEET_DURATION ?= 2m
.PHONY: fleet
fleet: services build ## a thousand lots through the production broker, agents in one process (issue 16): confirmed → applied, relay rate, broker restart, memory per agent; writes reports/<run>-fleet/
	./bin/parksim fleet --lots $(FLEET_LOTS) --rate $(FLEET_RATE) --duration $(FLEET_DURATION) --services=false

SOAK_DURATION ?= 5m
.PHONY: soak
soak: services build ## the fault suite, long (SOAK_DURATION, default 5m): every fault again and again under load; writes reports/<run>/faults.md
	./bin/parksim run --scenario faults --duration $(SOAK_DURATION) --services=false

DRILL_DURATION ?= 3m
.PHONY: drill drill-postgres drill-redis
drill: drill-postgres drill-redis ## both failover drills, long (DRILL_DURATION each, default 3m)

drill-postgres: services build ## Patroni+etcd failover under load, again and again for DRILL_DURATION: 503 seconds, promote time, confirmed bookings lost (must be 0); see deploy/FAILOVER.md
	@bash deploy/drill.sh
	set -o pipefail; DRILL_DURATION=$(DRILL_DURATION) PARKCLOUD_BIN=$(CURDIR)/bin/parkcloud $(GO) test -count=1 -v -run '^TestPostgresFailover$$' -timeout 60m ./deploy/failover | grep -v '^redis: '

drill-redis: services build ## Redis Sentinel failover under load for DRILL_DURATION: the guard follows the new master, bookings stay correct
	@bash deploy/drill.sh
	set -o pipefail; DRILL_DURATION=$(DRILL_DURATION) PARKCLOUD_BIN=$(CURDIR)/bin/parkcloud $(GO) test -count=1 -v -run '^TestRedisSentinelFailover$$' -timeout 60m ./deploy/failover | grep -v '^redis: '

clean:
	rm -rf bin reports
