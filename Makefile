# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv with the machine's python3 when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	sh tools/install-litert.sh $(BIN)/pip
	touch $@ $(VENV)/.core-installed

demo: $(VENV)/.core-installed
	$(BIN)/imgcls train digits --model svm --out runs/demo-digits --overwrite
	$(BIN)/imgcls predict runs/demo-digits --top-k 3 --limit 5 digits
	$(BIN)/imgcls explain runs/demo-digits --errors 4 --quiet
	@echo
	@echo "Report: $(CURDIR)/runs/demo-digits/report.html"
	@echo "Explanations of its worst errors: $(CURDIR)/runs/demo-digits/explain/explain.html"

test: $(VENV)/.dev-installed
	@sh tools/ensure-debian-package.sh /usr/bin/chromium chromium "the web page's browser test"
	@sh tools/ensure-debian-package.sh '/usr/lib/postgresql/*/bin/initdb' postgresql "the PostgreSQL shared-study test"
	@sh tools/vendor-web-runtime.sh src/imgcls/deploy/exporting/web/vendor
	$(BIN)/python -m pytest -m "not gpu" -q --durations=15

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.dev-installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/elpv_classical.py
	$(BIN)/python benchmarks/elpv_check.py
	$(BIN)/python benchmarks/elpv_deep.py
	$(BIN)/python benchmarks/finetune_speed.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/serve_load.py --run benchmarks/out/elpv-export-no-tta/model.onnx --requests 50 \
	    --image "$$($(BIN)/python -c 'import elpv_dataset, os; print(os.path.dirname(elpv_dataset.__file__))')/data/images/cell0001.png"
	$(BIN)/python benchmarks/ray_predict.py
	$(BIN)/python benchmarks/explain_elpv.py
	$(BIN)/python benchmarks/audit_elpv.py

clean:
	rm -rf runs .pytest_cache
