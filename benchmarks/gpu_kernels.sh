#!/usr/bin/env bash
# Run on the GPU machine from the repository root: kernel tests (GPU marker on), then the benchmark.
# Needs the SGLang bundle staged per ../shared/gpu/README.md (FlashInfer in /tmp/site); without it the
# FlashInfer column is skipped. Logs and JSON go to $OUT (if set) and benchmarks/results/.
set -x
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT" benchmarks/results
# srca.kernels maps to kernels/ (pyproject package-dir). Rather than importing the full srca package
# (its __init__ pulls the engines and their dependencies), expose a bare shim package "srca" whose
# path is the shim first (holding kernels -> ./kernels) and then ./srca.
SHIM=/tmp/srca_shim; rm -rf "$SHIM"; mkdir -p "$SHIM/srca"
ln -s "$(pwd)/kernels" "$SHIM/srca/kernels"
printf '__path__ = [%s, %s]\n' "'$SHIM/srca'" "'$(pwd)/srca'" > "$SHIM/srca/__init__.py"
export PYTHONPATH="$SHIM:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$OUT/gpu.txt"
python3 -c "import flashinfer; print('flashinfer', flashinfer.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"
python3 -c "import srca.kernels as k; print('srca.kernels from', k.__file__)" 2>&1 | tee -a "$OUT/gpu.txt"
python3 -P -m pytest tests/test_kernels.py -q -rs -p no:cacheprovider -m "gpu or not gpu" --durations=10 \
  2>&1 | tee "$OUT/test_kernels.log"
echo "pytest exit: ${PIPESTATUS[0]}" | tee -a "$OUT/test_kernels.log"
timeout 540 python3 benchmarks/sampling.py --out benchmarks/results/sampling.json 2>&1 | tee "$OUT/sampling_bench.log"
echo "bench exit: ${PIPESTATUS[0]}"
