# sessionward entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
CARGO ?= cargo
VENV ?= .venv
PYTHON ?= python3

.PHONY: help demo test test-rust memcheck miri test-python lint bench fuzz-smoke clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

demo: ## The main job: simulate an org's day on the embedded default and write a report
	$(CARGO) run --release -p sessionward-harness -- --out reports/latest

test: lint test-rust memcheck miri test-python fuzz-smoke ## Every check: fmt, clippy, Rust + doc tests, memcheck, Miri, Python tests + stubtest, fuzz smoke

lint: ## cargo fmt --check (the fuzz targets too) and clippy with warnings as errors
	$(CARGO) fmt --all --check
	rustfmt --check --edition 2021 fuzz/fuzz_targets/*.rs
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: ## All Rust unit, integration, property, stress and doc tests
	$(CARGO) test --workspace

# cargo runs test binaries through CARGO_TARGET_<HOST>_RUNNER when it is set.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
RUNNER_VAR := CARGO_TARGET_$(shell echo '$(HOST_TRIPLE)' | tr 'a-z.-' 'A-Z__')_RUNNER
MEMCHECK := valgrind --error-exitcode=99 --quiet

# The stress test is left out: valgrind runs threads one at a time, which stretches it to
# minutes and towards its deadlock timeout (it passes, run by hand).
memcheck: ## The core's unit, engine and model tests under valgrind memcheck (the unsafe code of the core's raw module at full size)
	$(RUNNER_VAR)="$(MEMCHECK)" $(CARGO) test -p sessionward-core --lib --test engine
	$(RUNNER_VAR)="$(MEMCHECK)" $(CARGO) test -p sessionward-tests --test model

# Miri interprets the tests of the core's `unsafe` code (the `raw` module) and stops on
# undefined behaviour: out-of-bounds or misaligned access, use after free,
# aliasing violations, data races, invalid values. Twice for the CRC and the paired SHA-256:
# built for the baseline CPU (which falls back to crc32fast and sha2) and with PCLMULQDQ and
# the SHA extensions on (Miri emulates the folding and the interleaved rounds). The forking
# test is skipped under Miri, which cannot fork; `make memcheck` runs it.
MIRI_TARGET_DIR := target/miri-extensions
MIRI_EXTENSIONS := +pclmulqdq,+sha,+ssse3,+sse4.1

miri: ## The core's raw-module tests under Miri (installs the nightly miri component)
	rustup component add --toolchain nightly miri rust-src
	$(CARGO) +nightly miri setup
	$(CARGO) +nightly miri test -p sessionward-core --lib -- raw::
	RUSTFLAGS="-C target-feature=$(MIRI_EXTENSIONS)" CARGO_TARGET_DIR=$(MIRI_TARGET_DIR) \
		$(CARGO) +nightly miri test -p sessionward-core --lib -- raw::crc raw::sha256

test-python: ## Build the Python package into .venv, run stubtest, mypy --strict and pytest
	scripts/test-python.sh

bench: ## Criterion benchmarks against the baselines (minutes; not part of `make test`)
	$(CARGO) bench -p sessionward-bench

FUZZ_TARGETS := token addresses settings operations store_rows
FUZZ_SECONDS ?= 20

fuzz-smoke: ## Every cargo-fuzz target for FUZZ_SECONDS each (needs the nightly toolchain)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/fuzz-corpus/$$target; \
		echo "fuzz-smoke: $$target for $(FUZZ_SECONDS)s"; \
		if (cd fuzz && $(CARGO) +nightly fuzz run $$target target/fuzz-corpus/$$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 > target/fuzz-$$target.log 2>&1); then \
			grep -E '^Done [0-9]+ runs' fuzz/target/fuzz-$$target.log; \
		else \
			tail -n 40 fuzz/target/fuzz-$$target.log; echo "fuzz-smoke: $$target FAILED"; exit 1; \
		fi; \
	done

clean: ## Remove build outputs
	$(CARGO) clean
	rm -rf $(VENV) reports
