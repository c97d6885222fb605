# Tessera. The two commands a newcomer needs: `make run` and `make test`.
# `make run` needs no database server: it stores everything in SQLite (data/tessera.db), or uses
# $DATABASE_URL when set. `make test` runs every test against both SQLite and Postgres: Postgres
# at $DATABASE_URL when set, otherwise a private throwaway cluster started with the `postgresql`
# package's initdb/pg_ctl and removed afterwards.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run run-postgres test docs fuzz fuzz-code bench bench-scale-out soak ha ha-stop test-ha ci fmt fmt-check lint openapi build

run:
	$(CARGO) run -p tessera-cli --bin tessera -- serve

# The service on a local Postgres cluster kept in data/pg (or on $DATABASE_URL).
run-postgres:
	$(CARGO) build -p tessera-cli --bin tessera
	scripts/with-postgres.sh --keep data/pg --db tessera -- $(CARGO) run -q -p tessera-cli --bin tessera -- serve

# Every test: the Rust suites on SQLite and Postgres, then a short schemathesis pass over the
# served OpenAPI document on each database, then make bench on a 1-second run and make soak on a
# few seconds a phase (each must start and report). The
# Python tools (schemathesis, prometheus-client, matplotlib) go into target/test-venv on first use;
# the benchmark needs wrk (apt-get install wrk).
test:
	scripts/with-postgres.sh -- $(CARGO) test --workspace --all-targets
	TESSERA_BIN=$${CARGO_TARGET_DIR:-target}/debug/tessera scripts/fuzz.sh 25 sqlite
	scripts/with-postgres.sh -- env TESSERA_BIN=$${CARGO_TARGET_DIR:-target}/debug/tessera scripts/fuzz.sh 25 postgres
	scripts/bench-smoke.sh
	scripts/soak-smoke.sh

# The book (docs/, mdBook) into target/book/: open target/book/index.html. Installs mdbook with
# cargo when it is missing. Its code blocks run in `make test` (crates/cli/tests/readme.rs).
docs:
	command -v mdbook >/dev/null || $(CARGO) install mdbook --locked --version '^0.5'
	mdbook build

# The benchmark: a release build on Postgres and SQLite, every case beside its ceiling, written to
# docs/benchmarks/ (report.md, chart.png). Needs wrk (apt-get install wrk).
bench:
	scripts/bench.sh

# Two instances on one Postgres against one, beside the database ceiling: docs/benchmarks/scale-out.md.
bench-scale-out:
	scripts/scale-out.sh

# A highly available Postgres on this machine: etcd, three Patroni members and HAProxy on
# 127.0.0.1:5440 (scripts/ha.sh; apt-get install patroni etcd-server haproxy). HA_SYNC=off for
# asynchronous replication. Point Tessera at postgres://postgres@127.0.0.1:5440/tessera.
ha:
	scripts/ha.sh start

ha-stop:
	scripts/ha.sh stop

# A failover under load: two instances on the stack above, the leader killed mid-load, with
# synchronous and then asynchronous replication. Fails unless synchronous replication lost no
# answered rotation, revoked no session, answered no 5xx but 503 and followed the new leader.
# Writes docs/benchmarks/failover.md. About 3 minutes; .ci/run runs it after make ci.
test-ha:
	scripts/test-ha.sh

# A soak: SOAK_MINUTES (default 8) of mixed load with attacks per database, after three attack
# phases (invented methods, slow bodies, a registration flood), sampling RSS, descriptors,
# database size and latencies: docs/benchmarks/soak.md and soak.png. Needs wrk.
soak:
	scripts/soak.sh

# A longer schemathesis pass: every check, 200 examples per operation.
fuzz:
	scripts/fuzz.sh 200

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser of untrusted bytes: each target
# of fuzz/ for FUZZ_SECONDS seconds (default 60). Fails with the crash file's path on a crash.
# Installs cargo-fuzz when missing; builds with RUSTC_BOOTSTRAP=1 on the stable toolchain.
FUZZ_SECONDS ?= 60
fuzz-code:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz-code.sh

build:
	$(CARGO) build --workspace --all-targets

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Regenerates the committed OpenAPI document from the code (a test fails when it is stale).
openapi:
	$(CARGO) run -q -p tessera-cli --bin tessera -- openapi > openapi/openapi.json

ci: fmt-check lint test
