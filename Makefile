# sessionward entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
VENV ?= .venv
PYTHON ?= python3

.PHONY: help demo test test-rust test-python lint bench fuzz-smoke clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

demo: ## The main job: simulate an org's day on the embedded default and write a report
	$(CARGO) run --release -p sessionward-core --example quickstart

test: lint test-rust ## Every check: fmt, clippy -D warnings, all Rust tests and doc tests

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: ## All Rust unit, integration, property, stress and doc tests
	$(CARGO) test --workspace

bench: ## Criterion benchmarks against the baselines (minutes; not part of `make test`)
	$(CARGO) bench -p sessionward-bench

clean: ## Remove build outputs
	$(CARGO) clean
	rm -rf $(VENV) reports
