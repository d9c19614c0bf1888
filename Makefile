# The README's two commands live here: `make demo` and `make test`.
#
# torch is installed first, on its own, so that pip never pulls a multi-GB CUDA build on a
# CPU machine. Have a GPU? Install your own torch into the venv first (it is kept), or pass
# TORCH_INDEX=https://download.pytorch.org/whl/cu124. CPU machine without a local torch wheel:
# TORCH_INDEX=https://download.pytorch.org/whl/cpu.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# Optional extras the tests exercise against the real engines (Ray, Milvus Lite, Seismic, peft).
EXTRAS ?= test,seismic,milvus,ray,lora
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q

.PHONY: install demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

install: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e ".[$(EXTRAS)]" -e ./plugins/prosper-example

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/prosper demo

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info prosper-demo
