# The one place commands are defined. CI (.ci/run and the GitHub workflow)
# only calls `make test`.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# One target tree for every cargo call, so SQLite is compiled once.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: test lint fmt rust-test demo bench examples ci-local

## make test: everything CI checks (installs what it needs).
test: lint rust-test examples

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

rust-test:
	cargo test --workspace --locked

## make demo: a producer and a worker on one file, printing what happened.
demo:
	cargo run --quiet --locked -p honker --example demo

## Every example runs in CI (docs are tests).
examples:
	cargo run --quiet --locked -p honker --example demo > /dev/null

## make bench: release-build benchmarks with a raw-SQLite baseline (see bench/README.md).
bench:
	cargo run --release --locked -p honker-bench --bin honker-bench
	cargo run --release --locked -p honker-bench --bin wake

## Runs CI the way CI does: a fresh clone of HEAD.
ci-local:
	rm -rf /tmp/honker-ci && git clone -q . /tmp/honker-ci && cd /tmp/honker-ci && bash .ci/run
