# Developer workflow. `just` lists the recipes; CI runs `.ci/run`.

default:
    @just --list

# The whole system on an embedded default: private PostgreSQL + API (Ctrl-C stops it)
dev:
    cargo run --release --bin consctl -- dev

# The full test suite (starts its own throwaway PostgreSQL)
test:
    cargo test --workspace

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Every check CI runs, in the same order
ci:
    bash .ci/run

# Deployment and supply-chain checks (Dockerfile, compose, Kubernetes, alerts, dashboard, cargo deny)
deploy-checks:
    bash .ci/deploy-checks

# Apply migrations to DATABASE_URL (or the DB_* variables)
migrate:
    cargo run --release --bin consctl -- migrate

# HTTP ticket creation vs the raw-SQL limit of the same transaction, measured in one run
bench-intake:
    cargo build --release -p cons_api -p cons_bench
    ./target/release/bench-intake

# Chatwoot webhook intake of cons-api at 500 deliveries/s and at its maximum, vs the raw insert limit
bench-webhooks:
    cargo build --release -p cons_api -p cons_bench
    ./target/release/bench-webhooks

# cons-relay draining 100,000 entries to a no-op HTTP peer, against the raw claim limit and the
# peer's loopback ceiling measured in the same run; latency at 200 tickets/s; the drain again
# with a million delivered rows in the table (about 2 minutes)
bench-relay:
    cargo build --release -p cons_relay -p cons_bench
    ./target/release/bench-relay
