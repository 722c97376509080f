#!/usr/bin/env bash
# .venv-pydvl: pyDVL (LGPL, the peer of bench/valuation.py) and scikit-learn in a venv of their
# own; pyDVL 0.10 pins numpy < 2, which the main .venv must not get.
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .venv-pydvl/bin/python || python3 -m venv .venv-pydvl
.venv-pydvl/bin/python -m pip install -q --disable-pip-version-check "pyDVL==0.10.0" scikit-learn
