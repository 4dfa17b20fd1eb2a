# The two set-up commands of the README. Each does everything on a fresh machine by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# face-alignment depends on the GUI opencv-python; the headless build must win so cv2 imports
# without libGL. Reinstalling it after the project keeps the pair consistent.
OPENCV := opencv-python-headless==5.0.0.93
TORCH  := torch==2.13.0

.PHONY: run test test-fast install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip uninstall -q -y opencv-python || true
	$(BIN)/pip install -q --force-reinstall --no-deps $(OPENCV)
	touch $@

install install-dev: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/tdmm run --preset tiny

# The whole suite: what CI runs.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# Daily work: every test not marked slow (each slow one takes more than ~10 s).
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf .tmp runs
