# mlwarden: two commands on a fresh machine.
#   make demo   create .venv, install, walk the system on its embedded defaults
#   make test   the same set-up, then lint, types and the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The official SARIF 2.1.0 JSON schema, for the tests that validate our output.
SARIF_SCHEMA := .cache/sarif-schema-2.1.0.json
SARIF_SCHEMA_SHA256 := 2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8
SARIF_NPM_PACKAGE := @microsoft/jest-sarif@1.0.0-beta.0

# model-signing, the peer whose bundles ours must interoperate with (both ways), lives in
# its own environment, never in .venv. model-signing 1.1.1 needs pyopenssl beside it.
INTEROP       := .venv-interop
INTEROP_STAMP := $(INTEROP)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned exactly (==2.13.0): a range could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -e '.[sklearn,torch,onnx,keras,safetensors,gateway,data,scale,test]'
	touch $(STAMP)

$(SARIF_SCHEMA):
	mkdir -p .cache/sarif-npm
	cd .cache/sarif-npm && npm pack --silent $(SARIF_NPM_PACKAGE) >/dev/null
	tar -xzf .cache/sarif-npm/*.tgz -C .cache/sarif-npm package/lib/schemas/sarif-2.1.0-rtm.5.json
	mv .cache/sarif-npm/package/lib/schemas/sarif-2.1.0-rtm.5.json $(SARIF_SCHEMA)
	rm -rf .cache/sarif-npm
	echo "$(SARIF_SCHEMA_SHA256)  $(SARIF_SCHEMA)" | sha256sum --check --quiet

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/python -m pip install --quiet 'model-signing==1.1.1' pyopenssl
	touch $(INTEROP_STAMP)

demo: $(STAMP)
	KERAS_BACKEND=torch $(BIN)/mlwarden demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(SARIF_SCHEMA) $(INTEROP_STAMP)
	KERAS_BACKEND=torch $(BIN)/pytest -q -n 2 --dist loadfile

test: demo lint typecheck unit

bench: $(STAMP) $(INTEROP_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	bash bench/setup_peers.sh
	bash bench/setup_art.sh
	$(BIN)/python bench/scan_compare.py
	$(BIN)/python bench/large_files.py
	$(BIN)/python bench/sign_verify.py
	$(BIN)/python bench/gateway_load.py
	$(BIN)/python bench/data_screen.py
	$(BIN)/python bench/data_pii.py
	$(BIN)/python bench/audit_append.py
	$(BIN)/python bench/budgets_consume.py
	$(BIN)/python bench/identity_authz.py
	$(BIN)/python bench/detect_streams.py
	$(BIN)/python bench/detect_adversarial.py
	$(BIN)/python bench/detect_overhead.py
	$(BIN)/python bench/assess_vs_art.py
	$(BIN)/python bench/assess_endpoints.py
	$(BIN)/python bench/update_check.py
	$(BIN)/python bench/fl_robust.py

clean:
	rm -rf $(VENV) $(INTEROP) bench/.venv-peers bench/.venv-art bench/.work .cache .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
