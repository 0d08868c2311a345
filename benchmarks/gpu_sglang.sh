#!/bin/bash
# SGLang engines on the GPU machine: GPU tests, then the controller-vs-reference fan-out benchmark.
# Run from the checkout root after the SGLang bundle is staged (../shared/gpu/README.md):
#
#   bash benchmarks/gpu_sglang.sh            # tests + benchmark (about 8 minutes)
#   bash benchmarks/gpu_sglang.sh tests      # only the GPU tests (about 4 minutes)
#   bash benchmarks/gpu_sglang.sh bench      # only benchmarks/engine_fanout.py (about 5 minutes, 9 with dp)
#
# Model: dummy Llama-3.2-1B-shaped weights at /tmp/sglmodel; when /tmp/q15hf (real
# Qwen2.5-Coder-1.5B) is staged the contract suite uses it and runs every test.
# pytest and pytest-asyncio are not part of the SGLang bundle: when the GPU machine lacks them,
# send a folder .gpu-wheels/ with their wheels (see the end of this file) and they are
# installed from it into /tmp/site. Logs and JSON go to $OUT (or /tmp/srca-out).
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
OUT=${OUT:-/tmp/srca-out}
mkdir -p "$OUT" benchmarks/results
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=python3
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
DP=$(( NGPU >= 2 ? 2 : 1 ))
rc=0
echo "== srca SGLang GPU run: stage=$STAGE gpus=$NGPU dp=$DP out=$OUT"
$PY -c "import sglang, sys; print('sglang', sglang.__version__, 'python', sys.version.split()[0])" || { echo "sglang not importable: stage the bundle first"; exit 2; }

if [ "$STAGE" = all ] || [ "$STAGE" = tests ]; then
  if ! $PY -c "import pytest, pytest_asyncio" 2>/dev/null; then
    if ls .gpu-wheels/*.whl >/dev/null 2>&1; then
      $PY -m pip install -q --no-deps --no-index --target /tmp/site .gpu-wheels/*.whl || rc=1
    else
      echo "pytest/pytest-asyncio missing and no .gpu-wheels/ sent: skipping tests"; STAGE_SKIP=1
    fi
  fi
  if [ -z "${STAGE_SKIP:-}" ]; then
    # installed, so SGLang's processes find srca's sampler plugin (its entry point); else that test skips
    $PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/pip_install.log" 2>&1 \
      || echo "pip install -e . failed ($OUT/pip_install.log): the sampler backend test will skip"
    if [ -f /tmp/q15hf/config.json ]; then export SRCA_SGLANG_MODEL=/tmp/q15hf; else export SRCA_SGLANG_DUMMY=1; fi
    t0=$(date +%s)
    timeout 420 $PY -m pytest -q -rs -p no:cacheprovider -o addopts="" tests/test_sglang_gpu.py \
      tests/test_engine_contract_sglang.py 2>&1 | tee "$OUT/gpu_tests.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    echo "== tests: $(( $(date +%s) - t0 )) s"
  fi
fi

if [ "$STAGE" = all ] || [ "$STAGE" = bench ]; then
  t0=$(date +%s)
  CUDA_VISIBLE_DEVICES=0 timeout 420 $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite ratios \
    --out "$OUT/engine_fanout_ratios.json" 2>&1 | tee "$OUT/engine_fanout_ratios.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  if [ "$DP" -gt 1 ]; then
    DPS=2; [ "$NGPU" -ge 4 ] && DPS=2,4
    timeout 420 $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite dp --dp "$DPS" --problems 128 \
      --out "$OUT/engine_fanout_dp.json" 2>&1 | tee "$OUT/engine_fanout_dp.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  fi
  echo "== bench: $(( $(date +%s) - t0 )) s"
fi
echo "== done rc=$rc"
exit $rc

# Wheels for the tests (built here, sent as .gpu-wheels/; pure Python):
#   python3 -m pip download -q --no-deps -d .gpu-wheels pytest pytest-asyncio pluggy iniconfig
# sglang.launch_server (the HTTP tests) also imports packages the shared bundle does not carry;
# on 2026-11-21 these were needed (Python 3.12, manylinux x86_64 wheels):
#   jsonschema jsonschema-specifications referencing rpds-py soundfile cffi pycparser python-multipart
# and the evaluation needs math-verify latex2sympy2_extended antlr4-python3-runtime==4.13.2.
