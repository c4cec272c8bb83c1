# chatflow: `make dev` runs the whole system, `make test` runs every test.
# Both install and start the local services first (idempotent).
SHELL := /bin/bash
export PATH := $(CURDIR)/bin:$(PATH)
GO ?= go

.PHONY: dev test test-cluster test-cluster-short redis-cluster services stop build generate vet e2e bench bench-peer clean-data chaos chaos-short fuzz

build:
	$(GO) build -o bin/chatflow ./cmd/chatflow

bin/temporal:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@v1.5.1

# No separate `chatflow migrate` here: it needs a deployable JWT_SECRET, and
# every role (dev, and the tests through internal/testenv) migrates at start.
services: build bin/temporal
	scripts/services.sh start

## dev: start services, then API + WebSocket + workers + web client on :8080
dev: services
	@echo "chatflow: http://127.0.0.1:8080  (Temporal Web UI: http://127.0.0.1:8233)"
	bin/chatflow dev

## test: start services, then the whole test suite (unit, workflow, integration,
## the chat test set again on a Redis Cluster, a short fault run on its own
## services, brief fuzzing, e2e). S3_REQUIRED: the attachment tests fail, not
## skip, without the object store.
## A failed Go test step ends with scripts/services.sh diag (service state, log
## tails, Temporal's namespaces): CI keeps only the output.
test: services
	$(GO) vet ./...
	S3_REQUIRED=1 $(GO) test -p 2 -count=1 -timeout 20m ./... || { scripts/services.sh diag; exit 1; }
	$(MAKE) test-cluster || { scripts/services.sh diag; exit 1; }
	$(MAKE) fuzz FUZZTIME=50000x
	bin/chatflow chaos -short
	scripts/e2e.sh

## test-cluster: the chat test set (rooms, frames, order, two nodes, durability,
## edits, membership, presence, read markers, sessions, the log) with every
## process on a local 3-master Redis Cluster (ports 17001-17003) instead of
## the single Redis; see README "Scaling beyond one machine".
REDIS_CLUSTER_ADDRS_LOCAL := 127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003
CHAT_TESTS := ^(TestChat.*|TestRedisCluster.*|TestPersistAppliesEdits|TestMessageEdit.*|TestMembership.*|TestPresence.*|TestSession.*|TestRoom.*|TestDirectMessages|TestUnreadExcludesOwnMessages|TestHistorySenders|TestPagingLimitRule|TestLog.*|TestPersistBatchReplayAndCollision|TestLastLoginAndLastSeen|TestLastSeenWhenNodeDies)$$
CHAT_TESTS_SHORT := ^(TestRedisCluster.*|TestChatCrossNode|TestChatReconnectSync|TestMembershipLeaveRacesSend|TestSessionLogoutDeliversFrame)$$
redis-cluster:
	scripts/services.sh redis-cluster

test-cluster: services redis-cluster
	REDIS_CLUSTER_ADDRS=$(REDIS_CLUSTER_ADDRS_LOCAL) $(GO) test -p 1 -count=1 -timeout 20m -run '$(CHAT_TESTS)' ./tests

## test-cluster-short: a quick subset of test-cluster (two nodes, leave, fan-out over
## every master, a dropped subscriber, a slot moved)
test-cluster-short: services redis-cluster
	REDIS_CLUSTER_ADDRS=$(REDIS_CLUSTER_ADDRS_LOCAL) $(GO) test -p 1 -count=1 -timeout 5m -run '$(CHAT_TESTS_SHORT)' ./tests

## chaos: the whole fault suite (kills, outages, poison) on its own services; see RELIABILITY.md
chaos: build bin/temporal
	bin/chatflow chaos -out .data/chaos-report.md

## chaos-short: the subset `make test` runs
chaos-short: build bin/temporal
	bin/chatflow chaos -short

## fuzz: every fuzz target for FUZZTIME each (make fuzz FUZZTIME=20000000x for a
## long run). Counts, not durations: Go 1.26's fuzz coordinator can fail a
## duration-bounded run with a bare "context deadline exceeded" at the deadline
## on a busy machine (golang/go#75804); a count has no deadline to race.
FUZZTIME ?= 2000000x
fuzz:
	@mkdir -p .data; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >.data/fuzz.log 2>&1 || { cat .data/fuzz.log; exit 1; }; \
	  done; \
	done

## bench-peer: Centrifugo v6.9.1 and chatflow under the same generator, same rates, one
## sitting; writes bench/results/peer.md (the table for BENCHMARKS.md) and peer/peer-curve.png.
## Minutes long: RATES="1000 2500 5000 10000" DURATION=30 by default (see the script).
bench-peer: build
	scripts/bench-peer.sh

stop:
	scripts/services.sh stop

generate:
	$(GO) tool sqlc generate

clean-data: stop
	rm -rf .data
