# Interop environment for the signing tests and bench/sign_verify.py: the model-signing
# package (the peer mlwarden's bundles must verify with, both ways) lives in its own venv,
# never in .venv. model-signing 1.1.1 needs pyopenssl beside it to import.
INTEROP     := .venv-interop
INTEROP_BIN := $(INTEROP)/bin
INTEROP_STAMP := $(INTEROP)/.installed-stamp

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP)
	$(INTEROP_BIN)/python -m pip install --quiet 'model-signing==1.1.1' pyopenssl
	touch $(INTEROP_STAMP)

# `unit` needs it (tests/signing/test_interop.py fails, not skips, without it):
#   unit: $(STAMP) $(SARIF_SCHEMA) $(INTEROP_STAMP)
# `bench` runs the sign/verify comparison:
#   bench: $(STAMP) $(INTEROP_STAMP)
#   	$(BIN)/python bench/sign_verify.py
# `clean` removes it:
#   rm -rf ... $(INTEROP)
# .gitignore: .venv-interop/
