# Two commands a user needs: `make demo` (the main job on the embedded default) and `make test`.
# `make setup` builds .venv once and re-runs only when requirements or installed files change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

# The venv is a ROS 2 prefix: its share/ holds the ament index marker and this package's share files, and
# lib/dla_perception/ every executable (as colcon installs them), so ament_index_python and launch_ros find
# dla_perception once AMENT_PREFIX_PATH includes the venv.
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))
# Keep test runs on this machine. ROS_AUTOMATIC_DISCOVERY_RANGE replaces Jazzy's deprecated
# ROS_LOCALHOST_ONLY (which rcl warns about on every start); Humble ignores it.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

INSTALLED_FILES := Makefile package.xml setup.py setup.cfg requirements/*.txt scripts/install_share_files.py \
	$(shell find launch config models resource -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: setup test lint demo clean

setup: $(STAMP)

$(STAMP): $(INSTALLED_FILES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dla_perception needs Python 3.10+, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	rm -rf build/wheel
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w build/wheel .
	$(BIN)/python scripts/install_share_files.py build/wheel/dla_perception-*.whl $(VENV)
	touch $@

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/dla-perception demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
