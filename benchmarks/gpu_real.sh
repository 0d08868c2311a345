#!/bin/bash
# Start or poll benchmarks/real_workload.py on the GPU machine (after SGLang, math-verify and the
# model are staged: ../shared/gpu/README.md, benchmarks/README.md). Like gpu_study.sh it runs from
# a private copy of the checkout, so the tree the device tool re-sends on every call never changes
# under the running job.
#   bash benchmarks/gpu_real.sh start [real_workload.py args]   # in the background (setsid)
#   bash benchmarks/gpu_real.sh poll                            # log tail; JSON, result lines, log to $OUT
#   RW_DIR=/tmp/rw_http bash benchmarks/gpu_real.sh start --server ...   # a second run beside the first's files
#                                                               # (RW_DIR on its poll too; default /tmp/real_workload)
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
. "$SRC/benchmarks/gpu_copy.sh"
RUN=/tmp/rw-run
W=${RW_DIR:-/tmp/real_workload}
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$W"
case "${1:-poll}" in
  start)
    shift
    copy_checkout "$SRC" "$RUN" "$W/pip.log"
    cd "$RUN" && setsid nohup python3 benchmarks/real_workload.py --model /tmp/q15hf --data "$RUN/.gpu-data/math500.jsonl" \
      --work-dir "$W" --out "$W/real_workload.json" "$@" > "$W/run.out" 2>&1 < /dev/null &
    echo "started (pid $!)";;
  poll)
    grep -a '^#' "$W/run.out" 2>/dev/null | tail -n 12; tail -c 2000 "$W/run.out" 2>/dev/null | tr '\r' '\n' | grep -av '^#' | tail -n 3
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    if [ -n "${OUT:-}" ]; then
      (cd "$W" && tar -czf "$OUT/rw.tgz" --exclude='*.tmp' run.out real_workload.json ./*.jsonl sglang.log 2>/dev/null)
      ls -la "$OUT"
    fi;;
esac
