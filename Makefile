# Top-level build: BVLC Caffe from source with this project's patches and layers.
#
#   make demo         the main job: build, then train + evaluate the small ROIAlign Faster R-CNN
#   make              system packages (once), .venv, fetch + patch Caffe, build lib, tools, pycaffe
#   make test         build the C++ tests, run them, then pytest
#   make lint         ruff on the Python, Caffe's cpp_lint.py on caffe_layers/
#   make cuda-check   compile the project's CUDA sources with nvcc (no GPU needed), register report
#   make bench-roi    RoI layer speed against onnxruntime (table + output/bench/roi_speed.json)
#   make bench-detect ROIPooling vs ROIAlign detection accuracy, 3 seeds (output/bench/detect/);
#                     BENCH_ARGS="--dataset multiscale": single-level ROIAlign vs FPN
#   make bench-mask   Mask R-CNN: ROIAlign vs ROIPooling vs FPN, and box-only, 3 seeds
#                     (output/bench/mask/)
#   make bench-real   small real dataset (tree crowns from PyPI): today's recipe vs augmented +
#                     BatchNorm, 3 seeds (output/bench/small_real/)
#   make clean        remove the build trees (keeps the fetched source and .venv)
#   make distclean    remove build/ and .venv entirely
#
# Switches (see Makefile.config): CPU_ONLY, ROI_LAYERS_CPU_ONLY, ROI_NATIVE, CUDA_ARCH, USE_NCCL,
# CAFFE_SRC.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(ROOT)/build
VENV := $(ROOT)/.venv
SYSTEM_PYTHON ?= $(shell command -v /usr/bin/python3 || command -v python3)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

include $(ROOT)/Makefile.config

ifeq ($(CPU_ONLY), 1)
  VARIANT := cpu
else ifeq ($(ROI_LAYERS_CPU_ONLY), 1)
  VARIANT := cuda-roicpu
else
  VARIANT := cuda
endif
ifeq ($(ROI_NATIVE), 1)
  VARIANT := $(VARIANT)-native
endif
TREE := $(BUILD)/$(VARIANT)
SRC := $(BUILD)/src/caffe
CAFFE_MAKE = $(MAKE) -C $(TREE) -j$(JOBS) CONFIG_FILE=$(ROOT)/Makefile.config \
	VENV=$(VENV) CPU_ONLY=$(CPU_ONLY) ROI_LAYERS_CPU_ONLY=$(ROI_LAYERS_CPU_ONLY) \
	ROI_NATIVE=$(ROI_NATIVE)

# C++ tests: ours (every test_*.cpp under caffe_layers/) plus the BVLC tests that cover what
# the patches touch. Each is built as its own small binary, not Caffe's 100-file test_all.
OUR_TESTS := $(notdir $(basename $(wildcard $(ROOT)/caffe_layers/src/caffe/test/test_*.cpp)))
BVLC_TESTS := test_net test_layer_factory test_upgrade_proto test_pooling_layer \
	test_inner_product_layer test_gradient_based_solver test_solver test_neuron_layer \
	test_math_functions test_syncedmem test_softmax_layer test_softmax_with_loss_layer \
	test_euclidean_loss_layer test_reshape_layer test_batch_norm_layer test_accuracy_layer
TEST_BINS = $(addprefix $(TREE)/.build_release/test/,$(addsuffix .testbin,$(OUR_TESTS) $(BVLC_TESTS)))

.PHONY: all deps venv fetch tree caffe env test test-cpp test-py cuda-check clean distclean lint \
	demo models bench-roi bench-detect bench-mask bench-real

all: caffe env

deps:
	@bash $(ROOT)/scripts/install_deps.sh

venv: $(VENV)/.installed
$(VENV)/.installed: $(ROOT)/python/requirements.txt $(ROOT)/python/pyproject.toml | deps
	@echo "[make] Python packages -> $(VENV)"
	@test -x $(VENV)/bin/python || $(SYSTEM_PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	@$(VENV)/bin/python -m pip install -q -r $(ROOT)/python/requirements.txt
	@$(VENV)/bin/python -m pip install -q -e $(ROOT)/python
	@if [ "$(CPU_ONLY)" != 1 ] && [ ! -e "$(CUDA_DIR)/lib64/libcublas.so" ]; then \
		echo "[make] $(CUDA_DIR) has no cuBLAS: installing nvidia-cublas / nvidia-curand wheels"; \
		$(VENV)/bin/python -m pip install -q nvidia-cublas nvidia-curand; fi
	@touch $@

fetch: $(SRC)/.fetched
$(SRC)/.fetched: | deps
	@BUILD_DIR=$(BUILD)/src bash $(ROOT)/scripts/fetch_caffe.sh

# The patches and the links to caffe_layers/ are checked on every make (cheap, idempotent).
tree: fetch
	@bash $(ROOT)/scripts/prepare_tree.sh $(SRC) $(TREE)

# Caffe's Makefile rebuilds pycaffe's _caffe.so only when _caffe.cpp changes, not when
# caffe.proto does; a _caffe.so older than caffe.pb.h has another LayerParameter layout and
# corrupts the heap when a net is freed. So a stale one is removed first.
PYCAFFE_SO := $(TREE)/python/caffe/_caffe.so
PROTO_H := $(TREE)/.build_release/src/caffe/proto/caffe.pb.h
caffe: tree venv
	@echo "[make] building Caffe ($(VARIANT)) in $(TREE)"
	@$(CAFFE_MAKE) proto
	@if [ -f $(PYCAFFE_SO) ] && [ $(PROTO_H) -nt $(PYCAFFE_SO) ]; then \
		echo "[make] caffe.proto changed: rebuilding pycaffe"; rm -f $(PYCAFFE_SO); fi
	@$(CAFFE_MAKE) lib tools pycaffe

# Each variant has its own env.sh (CAFFE_VARIANT, CAFFE_ROOT, PATH, PYTHONPATH); build/env.sh
# sources the one of the variant this make built, and is rewritten on every make.
ENV_SH := $(TREE)/env.sh
env: $(ENV_SH)
	@bash $(ROOT)/scripts/write_env.sh current $(BUILD)/env.sh $(VARIANT) $(ENV_SH)
	@echo "[make] done ($(VARIANT)): source build/env.sh, then 'python -c \"import caffe\"' or 'caffe --version'"
$(ENV_SH): $(ROOT)/Makefile $(ROOT)/scripts/write_env.sh | caffe
	@bash $(ROOT)/scripts/write_env.sh variant $@ $(VARIANT) $(ROOT) $(TREE) $(VENV)

# The main job: synthetic data, training, evaluation, pictures (output/demo/).
demo: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.tools.run_demo $(DEMO_ARGS)

# Benchmarks (docs/BENCHMARKS.md): tables on stdout, JSON and pictures in output/bench/.
bench-roi: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.bench.roi_speed $(BENCH_ARGS)

bench-detect: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.bench.detect $(BENCH_ARGS)

bench-mask: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.bench.mask $(BENCH_ARGS)

bench-real: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.bench.small_real $(BENCH_ARGS)

# Regenerate the small model's prototxts (models/small/<variant>/) from rcnn/models.py.
models: all
	@. $(ENV_SH) && cd $(ROOT) && python -m rcnn.models models/small

test: test-cpp test-py

test-cpp: caffe env
	@$(CAFFE_MAKE) $(TEST_BINS:$(TREE)/%=%)
	@set -e; for t in $(TEST_BINS); do \
		echo "[make] running $$(basename $$t)"; \
		(cd $(TREE) && $$t $(GTEST_ARGS)); \
	done

test-py: caffe env
	@. $(ENV_SH) && cd $(ROOT) && python -m pytest -q tests $(PYTEST_ARGS)

# Python with ruff; C++ under caffe_layers/ with Caffe's own scripts/cpp_lint.py (Google style as
# Caffe applies it), at ruff's line length of 100.
lint: venv fetch
	@$(VENV)/bin/ruff check $(ROOT)/python $(ROOT)/tests $(ROOT)/scripts
	@cd $(ROOT) && out=$$(find caffe_layers -type f \( -name '*.hpp' -o -name '*.cpp' \
		-o -name '*.cu' -o -name '*.cuh' \) | sort | xargs $(VENV)/bin/python -W ignore \
		$(SRC)/scripts/cpp_lint.py --linelength=100 2>&1); rc=$$?; \
		echo "$$out" | grep -v '^Done processing'; exit $$rc

# Compile every .cu under caffe_layers/ with nvcc for CUDA_ARCH, whether or not Caffe itself is
# built with CUDA, and report each kernel's registers (nvcc -Xptxas -v) per architecture.
cuda-check: tree venv
	@bash $(ROOT)/scripts/cuda_check.sh $(BUILD)/cuda-check $(SRC) "$(CUDA_DIR)" "$(CUDA_ARCH)" "$(VENV)"

clean:
	rm -rf $(BUILD)/cpu $(BUILD)/cuda $(BUILD)/cuda-roicpu $(BUILD)/*-native $(BUILD)/cuda-check \
		$(BUILD)/env.sh

distclean:
	rm -rf $(BUILD) $(VENV)
