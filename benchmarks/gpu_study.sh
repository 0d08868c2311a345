#!/bin/bash
# Start or poll benchmarks/gpu_study.py on the GPU machine (after SGLang, math-verify and the
# model are staged: ../shared/gpu/README.md). Runs from a private copy of the checkout so that
# the tree the device tool re-sends on every call never changes under the running job; reads
# its job queue from the live checkout's .gpu-data/queue.jsonl.
#   bash benchmarks/gpu_study.sh start [gpu_study.py args]   # in the background (setsid)
#   bash benchmarks/gpu_study.sh poll                        # status, log tail, results to $OUT
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
. "$SRC/benchmarks/gpu_copy.sh"
RUN=/tmp/srca-run
ST=/tmp/study
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$ST"
case "${1:-poll}" in
  start)
    shift
    copy_checkout "$SRC" "$RUN" "$ST/pip.log"
    cd "$RUN" && setsid nohup python3 benchmarks/gpu_study.py --model /tmp/q15hf --data "$RUN/.gpu-data/math500.jsonl" \
      --out-dir "$ST" --queue "$SRC/.gpu-data/queue.jsonl" "$@" > "$ST/log.txt" 2>&1 < /dev/null &
    echo "started (pid $!)";;
  poll)
    cat "$ST/status.jsonl" 2>/dev/null; tail -n 5 "$ST/log.txt" 2>/dev/null; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    if [ -n "${OUT:-}" ]; then
      (cd "$ST" && tar -czf "$OUT/study.tgz" --exclude='*.tmp' status.jsonl log.txt bank evals 2>/dev/null); ls -la "$OUT"
    fi;;
esac
