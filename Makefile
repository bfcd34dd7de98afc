# The one entry point for humans and CI. `make lab` and `make test` are what README.md promises.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup lab test check fast slow clean

setup:
	bash scripts/setup.sh

## Bring up the lab and show how to use it (stop it with `.venv/bin/toolforgectl lab down`).
lab: setup
	$(BIN)/toolforgectl lab up

## Everything CI runs: static checks, the fast tier, then the slow tier.
test: setup check fast slow

check:
	$(BIN)/ruff check toolforgectl tests
	$(BIN)/ruff format --check toolforgectl tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/toolforgectl lint

## Two workers, each module on one of them (its module-scoped fleet started once); tests/conftest.py
## gives each worker its own half of the lab's port range.
fast:
	$(BIN)/pytest -q -n 2 --dist loadscope

## The slow tier needs a real kube-apiserver: built once (~8 min on a fresh machine), then cached;
## and a real OpenStack control plane: installed once into its own venv (1-3 min), then cached.
slow:
	bash scripts/build-kube-apiserver.sh >/dev/null
	bash scripts/install-openstack.sh >/dev/null
	$(BIN)/pytest -q -m slow; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
