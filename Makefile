# Tessera. The two commands a newcomer needs: `make run` and `make test`.
# Both use Postgres at $DATABASE_URL when it is set; otherwise they start a private cluster with
# the `postgresql` package's initdb/pg_ctl and stop it afterwards (run keeps its files in
# data/pg, test throws them away).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test ci fmt fmt-check lint openapi build

run:
	$(CARGO) build -p tessera-api --bin tessera
	scripts/with-postgres.sh --keep data/pg --db tessera -- ./target/debug/tessera serve

test:
	scripts/with-postgres.sh -- $(CARGO) test --workspace --all-targets

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
	$(CARGO) run -q -p tessera-api --bin tessera -- openapi > openapi/openapi.json

ci: fmt-check lint test
