# The one place commands are defined. CI (.ci/run and the GitHub workflow)
# only calls `make test`.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# One target tree for every cargo call, so SQLite is compiled once.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
# `napi build` always passes --target; naming the host target for every
# cargo call keeps all builds (Rust, Python, Node) in one tree.
export CARGO_BUILD_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
OUT := $(CARGO_TARGET_DIR)/$(CARGO_BUILD_TARGET)

# The loadable extension has its own workspace (see docs/ARCHITECTURE.md) but shares
# the target directory: it does not compile SQLite.
EXT_MANIFEST := bindings/sqlite/Cargo.toml
DYLIB := $(if $(filter Darwin,$(shell uname -s)),dylib,so)
EXT := $(OUT)/debug/libhonker_ext.$(DYLIB)

# A Python whose sqlite3 module can load extensions: Debian's by default
# (macOS: Homebrew's, e.g. PYTHON=$$(brew --prefix python)/bin/python3).
PYTHON ?= /usr/bin/python3

VENV := $(CURDIR)/.venv

.PHONY: test lint fmt rust-test demo bench bench-pg bench-wal node-path-install bench-python examples ci-local deps ext ext-test python-test cross-test vectors-test node-deps node-ts node-test bench-node bench-wake-cross browser-deps dashboard-test screenshots pg-test

## make test: everything CI checks (installs what it needs).
test: lint rust-test ext-test python-test node-test vectors-test cross-test dashboard-test pg-test examples

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path $(EXT_MANIFEST) -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@# The workspace build has honker's tokio feature on (bench uses it);
	@# the crate alone is checked without it.
	cargo clippy -p honker --all-targets --locked -- -D warnings
	cargo clippy -p honker --all-targets --locked --features tokio,otel -- -D warnings
	cargo clippy --manifest-path $(EXT_MANIFEST) --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all
	cargo fmt --manifest-path $(EXT_MANIFEST)

## System packages the extension tests use: Debian's sqlite3 shell and a
## python3 whose sqlite3 module can load extensions.
deps:
	@if ! command -v sqlite3 >/dev/null || ! $(PYTHON) -c 'import ensurepip, sqlite3; sqlite3.connect(":memory:").enable_load_extension(True)' 2>/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 python3 python3-venv >/dev/null; \
	fi

## The SQLite loadable extension: libhonker_ext.so
ext:
	cargo build --locked --manifest-path $(EXT_MANIFEST)

ext-test: deps ext
	cargo test --locked --manifest-path $(EXT_MANIFEST)
	bash bindings/sqlite/tests/shell.sh $(EXT)
	$(PYTHON) bindings/sqlite/tests/test_extension.py $(EXT)
	HONKER_EXT=$(EXT) cargo test --locked -p honker --test extension_interop -- --ignored

## The Rust crate's async API (feature tokio) is tested with the rest.
rust-test:
	cargo test --workspace --locked --features honker/tokio,honker/otel

## make demo: a producer and a worker on one file, printing what happened.
demo:
	cargo run --quiet --locked -p honker --example demo

## The Python package: built into a venv with maturin, tested with pytest.
## python/build.rs ships the extension in the package; HONKER_EXT_PREBUILT
## hands it the one `make ext` built (plain `pip install ./python` builds it).
python-test: deps ext
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check maturin==1.16.0 pytest==9.2.0 pytest-timeout==2.4.0 ruff==0.17.6 mypy==2.4.1 opentelemetry-sdk==1.39.1
	cd python && HONKER_EXT_PREBUILT=$(EXT) VIRTUAL_ENV=$(VENV) PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/maturin develop -q
	cd python && HONKER_EXT_PREBUILT=$(EXT) $(VENV)/bin/maturin build -q --profile dev -o $(CARGO_TARGET_DIR)/wheels
	$(VENV)/bin/python python/tests/check_wheel.py $(CARGO_TARGET_DIR)/wheels
	cd python && $(VENV)/bin/ruff check honker tests && $(VENV)/bin/ruff format --check honker tests
	cd python && $(VENV)/bin/python -m mypy && $(VENV)/bin/python -m mypy.stubtest honker._honker
	$(VENV)/bin/python -m pytest -q python/tests

## The cross-language suite (tests/cross): real processes in Python, Node,
## Rust and SQL (Debian's sqlite3 shell with the extension) on one file.
cross-test: deps ext python-test node-test
	cargo build --locked -p honker-cross -p honker-cli
	$(VENV)/bin/ruff check tests/cross && $(VENV)/bin/ruff format --check tests/cross
	$(VENV)/bin/python -m mypy --strict tests/cross/run.py tests/cross/roles.py
	node --check tests/cross/roles.mjs
	$(VENV)/bin/python tests/cross/run.py --node --rust $(OUT)/debug/honker-cross --cli $(OUT)/debug/honker --ext $(EXT)

## Parity vectors (tests/vectors/*.json, see tests/README.md): the Python
## runner (needs the package in .venv: python-test), the SQL runner
## (Debian's python3 driving the extension) and the same files as scripts
## in Debian's sqlite3 shell. The Rust runner is
## bindings/rust/tests/vectors.rs, part of rust-test.
vectors-test: deps ext python-test node-test
	$(VENV)/bin/ruff check tests/runners && $(VENV)/bin/ruff format --check tests/runners
	$(VENV)/bin/python -m mypy --strict tests/runners/api_surface.py
	$(VENV)/bin/python tests/runners/vectors.py
	$(PYTHON) tests/runners/vectors_sql.py $(EXT)
	$(PYTHON) tests/runners/vectors_shell.py $(EXT)
	node tests/runners/vectors.mjs
	$(VENV)/bin/python tests/runners/api_surface.py $(EXT)

## The Node package (node/): npm installs the pinned tools from the
## committed lockfile; @napi-rs/cli builds the addon into the one target
## tree; the generated native.d.ts must match the committed one; tsc
## compiles the TypeScript sources (lib/*.ts) into dist/ with the public
## declarations (members marked @internal stripped), type-checks them
## against native.d.ts, and checks test/types.test-d.ts against the
## declarations; node --test runs the suite.
# node-gyp builds better-sqlite3 (the benchmark's baseline and the
# extension test's host) from source here: use the installed Node headers.
ifneq ($(wildcard /usr/include/node/node_api.h),)
export npm_config_nodedir ?= /usr
endif
NAPI_BUILD := node_modules/.bin/napi build --platform --no-js --dts native.d.ts

node-deps:
	cd node && npm install --no-audit --no-fund

# The JS layer, compiled from lib/*.ts (the addon is built by node-test or
# the benchmarks, each in its profile).
node-ts: node-deps
	cd node && rm -rf dist && node_modules/.bin/tsc -p .

node-test: ext node-deps
	cp $(EXT) node/libhonker_ext.$(DYLIB)
	cp node/native.d.ts $(CARGO_TARGET_DIR)/native.d.ts.committed
	cd node && $(NAPI_BUILD)
	@diff -u $(CARGO_TARGET_DIR)/native.d.ts.committed node/native.d.ts || \
		{ echo "node/native.d.ts drifted from the addon: review and commit the regenerated file"; exit 1; }
	$(MAKE) --no-print-directory node-ts
	cd node && node_modules/.bin/tsc -p tsconfig.test.json
	cd node && for f in index.mjs scripts/*.js test/*.js test/fixtures/*.js; do node --check $$f || exit 1; done
	cd node && node --test --test-timeout=120000 test/*.test.js
	$(MAKE) --no-print-directory node-path-install

## `npm install path/to/node` into a fresh project builds the addon with
## cargo on install (node/scripts/install.js) and the package loads. Forced
## here (an addon is already present) with the dev profile, which reuses the
## build above.
NPM_PROJECT := $(CARGO_TARGET_DIR)/npm-path-install
node-path-install:
	rm -rf $(NPM_PROJECT) && mkdir -p $(NPM_PROJECT)
	cd $(NPM_PROJECT) && npm init -y > /dev/null && \
		HONKER_NODE_FORCE_BUILD=1 HONKER_BUILD_PROFILE=dev npm install --no-audit --no-fund $(CURDIR)/node && \
		node -e "const h = require('honker'); const db = h.open('app.db'); const id = db.queue('q').enqueueSync({ ok: true }); \
			if (db.queue('q').claimOneSync('w').id !== id) throw new Error('no job'); db.close(); \
			if (!require('node:fs').existsSync(h.extensionPath())) throw new Error('no extension'); console.log('ok npm install from a path')" && \
		npx --no-install honker queues app.db --json | grep -q '"name": *"q"' && echo 'ok npx honker'

## Node benchmark: a release build of the addon, beside better-sqlite3.
bench-node: node-deps node-ts
	cd node && $(NAPI_BUILD) --release
	node bench/node_bench.mjs

## honker on PostgreSQL against pg-boss 10 and graphile-worker 0.17 on the
## same private server (bench/postgres, figures in bench/README.md).
bench-pg: node-deps node-ts
	cd node && $(NAPI_BUILD) --release
	cd bench/postgres && npm ci --silent --no-audit --no-fund
	@url=$$(scripts/pg.sh start $(PG_DIR)) && \
		UV_THREADPOOL_SIZE=16 node bench/postgres/bench.mjs "$$url" $(or $(JOBS),2000); \
		status=$$?; scripts/pg.sh stop $(PG_DIR); exit $$status

## The web dashboard (`honker serve`) in a real headless browser: Debian's
## Chromium, driven by playwright-core (pinned in cli/tests/browser).
browser-deps:
	@# Debian's Chromium, or a Chrome the machine already has (GitHub's runners).
	@command -v chromium >/dev/null || command -v google-chrome >/dev/null || \
		[ -x "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	cd cli/tests/browser && npm install --no-audit --no-fund

dashboard-test: browser-deps node-test
	cargo build --locked -p honker-cli
	node --check cli/assets/app.js && node --check cli/tests/browser/dashboard.test.mjs
	cd cli/tests/browser && HONKER_BIN=$(OUT)/debug/honker node --test --test-timeout=120000 dashboard.test.mjs

## The dashboard's screenshots in docs/screenshots (the browser test, saving them).
screenshots: browser-deps node-ts
	cargo build --locked -p honker-cli
	cd cli/tests/browser && HONKER_BIN=$(OUT)/debug/honker HONKER_SCREENSHOTS=$(CURDIR)/docs/screenshots node --test --test-timeout=120000 dashboard.test.mjs

## PostgreSQL: a private cluster in the build directory (scripts/pg.sh
## installs Debian's PostgreSQL when missing), started for the tests and
## stopped after them, whatever they did: the backend's own tests (the
## conformance suite, the functions, several processes), then the parity
## vectors of the Rust, Python and Node runners on PostgreSQL, and of the
## SQL runner: psycopg calling honker's PL/pgSQL functions; the
## cross-language suite (its SQL roles are psql); the examples.
PG_DIR := $(CARGO_TARGET_DIR)/pg
pg-test: deps ext python-test node-test
	$(VENV)/bin/pip install -q --disable-pip-version-check "psycopg[binary]==3.3.9"
	cd examples/postgres && npm ci --silent --no-audit --no-fund
	$(VENV)/bin/ruff check examples/postgres && $(VENV)/bin/ruff format --check examples/postgres
	cargo build --locked -p honker-postgres --tests -p honker-cross -p honker-cli
	@url=$$(scripts/pg.sh start $(PG_DIR)) && \
		HONKER_PG_URL="$$url" cargo test --locked -p honker-postgres -- --ignored && \
		HONKER_PG_URL="$$url" cargo test --locked -p honker --test postgres -- --ignored && \
		HONKER_PG_URL="$$url" cargo test --locked -p honker-cli --test cli -- --ignored copy_moves && \
		HONKER_VECTORS_POSTGRES="$$url" cargo test --locked -p honker --test vectors && \
		HONKER_VECTORS_POSTGRES="$$url" $(VENV)/bin/python tests/runners/vectors.py && \
		HONKER_VECTORS_POSTGRES="$$url" node tests/runners/vectors.mjs && \
		HONKER_PG_URL="$$url" $(VENV)/bin/python tests/runners/vectors_pg.py && \
		$(VENV)/bin/python tests/cross/run.py --node --rust $(OUT)/debug/honker-cross --cli $(OUT)/debug/honker \
			--ext $(EXT) --postgres "$$url" && \
		$(VENV)/bin/python examples/postgres/enqueue_psycopg.py "$$url" && \
		node examples/postgres/enqueue_node_postgres.mjs "$$url"; \
		status=$$?; scripts/pg.sh stop $(PG_DIR); exit $$status

## Every example runs in CI (docs are tests).
examples:
	cargo run --quiet --locked -p honker --example demo > /dev/null
	cargo run --quiet --locked -p honker --features tokio --example async_worker > /dev/null

## make bench: release-build benchmarks with a raw-SQLite baseline (see bench/README.md).
bench:
	cargo run --release --locked -p honker-bench --bin honker-bench
	cargo run --release --locked -p honker-bench --bin wake

## WAL size over time under sustained load from several processes (ARGS:
## --procs 4 --secs 20 --idle 3).
bench-wal:
	cargo run --release --locked -p honker-bench --bin wal -- $(ARGS)

## Cross-language wake: a Rust process notifies, a Python and a Node
## listener wait (release builds of both packages), beside a Rust listener
## and a 1 ms poller measured in the same run.
bench-wake-cross: deps ext node-deps node-ts
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check maturin==1.16.0
	cd python && HONKER_EXT_PREBUILT=$(EXT) VIRTUAL_ENV=$(VENV) PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/maturin develop -q --release
	cd node && $(NAPI_BUILD) --release
	cargo run --release --locked -p honker-bench --bin wake -- --python $(VENV)/bin/python --node node $(ARGS)

## Python benchmark (release build of the package into .venv).
bench-python: deps ext
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check maturin==1.16.0
	cd python && HONKER_EXT_PREBUILT=$(EXT) VIRTUAL_ENV=$(VENV) PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/maturin develop -q --release
	$(VENV)/bin/python bench/python_bench.py

## Runs CI the way CI does: a fresh clone of HEAD.
ci-local:
	rm -rf /tmp/honker-ci && git clone -q . /tmp/honker-ci && cd /tmp/honker-ci && bash .ci/run
