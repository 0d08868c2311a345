#!/bin/bash
# Start or poll benchmarks/real_workload.py on the GPU machine (after SGLang, math-verify and the
# model are staged: ../shared/gpu/README.md, benchmarks/README.md). Like gpu_study.sh it runs from
# a private copy of the checkout, so the tree the device tool re-sends on every call never changes
# under the running job.
#   bash benchmarks/gpu_real.sh start [real_workload.py args]   # in the background (setsid)
#   bash benchmarks/gpu_real.sh poll                            # log tail; JSON, result lines, log to $OUT
#   RW_DIR=/tmp/rw_http bash benchmarks/gpu_real.sh start --server ...   # a second run beside the first's files
#                                                               # (RW_DIR on its poll too; default /tmp/real_workload)
#   bash benchmarks/gpu_real.sh chain "ARGS 1" "ARGS 2" ...      # several runs, one after another, in one
#                                                               # background job (WORK/run1, run2, ...): no
#                                                               # device time lost between them; poll as usual;
#                                                               # every run's ARGS are checked first (--check);
#                                                               # "eval ARGS" runs benchmarks/gpu_eval.py instead
#                                                               # (WORK/runN/evals, resumed from .gpu-data/evals)
#   bash benchmarks/gpu_real.sh wait [SECONDS]                  # poll every 7 s (each poll refreshes $OUT) until the
#                                                               # chain is done or SECONDS (default 540) pass, then
#                                                               # print the last poll: end every call during a chain
#                                                               # with it, so the machine is never idle past its
#                                                               # 30 s release between calls (a local wait between two
#                                                               # polls lost a machine mid-chain twice, the last on
#                                                               # 2026-12-07)
#   bash benchmarks/gpu_real.sh skip [N]                        # end the chain's current run (its engine or servers
#                                                               # first) and let the chain go on; with N only if
#                                                               # run N is the one running (a skip sent late must
#                                                               # not end the next run: it did on 2026-12-06)
#   bash benchmarks/gpu_real.sh backdate-jit                    # date FlashInfer's installed sources back, so that
#                                                               # ninja takes a cache restored by hand as current
#   bash benchmarks/gpu_real.sh save-jit                        # the kernel JIT caches (Triton, FlashInfer) to
#                                                               # $OUT/jit-cache.tgz (poll does it once by itself,
#                                                               # the first time an engine says it is ready);
#                                                               # put it in .jit-cache/ and carry that to a later
#                                                               # session: start and chain unpack it first
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
. "$SRC/benchmarks/gpu_copy.sh"
RUN=${RW_RUN:-/tmp/rw-run}  # the private copy (a test moves it)
W=${RW_DIR:-/tmp/real_workload}
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$W"
# under $HOME: Triton's and FlashInfer's compiled kernels, and torch's C++ extensions (SGLang's
# C++ radix tree, built on the first start with SGLANG_EXPERIMENTAL_CPP_RADIX_TREE=1)
JIT_DIRS=(.triton/cache .cache/flashinfer .cache/torch_extensions)
# the CUDA driver's cache of kernels it compiled from PTX: a guess at the cold decode-graph
# capture's other ~30 s (eleventh run: 75.9 s cold, 7.4 s warm, FlashInfer's norm 37.6 of them);
# sent beside the others only while the whole file stays under the limit
JIT_EXTRA=(.nv/ComputeCache)
JIT_SOURCES=(flashinfer tvm_ffi sglang/srt/mem_cache/cpp_radix_tree)  # under each $PYTHONPATH entry: what the ninja builds read
descendants() {  # every process below $1 (by parent pid), children before their children
  local c
  for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done
}
restore_jit() {  # a cold engine start compiled them for 84 of its 145 s on the ninth run's host
  local t="$SRC/.jit-cache/jit-cache.tgz"
  [ -f "$t" ] || return 0
  tar -xzf "$t" -C "$HOME" && echo "JIT caches restored from $t"
  backdate_jit_sources
}
# FlashInfer builds its kernels with ninja, which rebuilds an object whose sources are newer than
# it (and than the build log's record of it). The sources (flashinfer/data, tvm_ffi's headers)
# come with this session's install, so on a fresh machine they are always newer than a carried
# cache: the eleventh run (H100) restored the tenth's whole cache and still compiled norm (38 s,
# in the decode-graph capture) and sampling (109 s, the warm-up) again, with the same command
# hashes in .ninja_log. Dating the installed sources back to 2000 makes the cache current; the
# headers from the system and CUDA keep their image's dates (older than any cache).
backdate_jit_sources() {
  local p d n=0
  local IFS=:
  for p in ${JIT_SITE:-$PYTHONPATH}; do
    for d in "${JIT_SOURCES[@]}"; do
      [ -d "$p/$d" ] || continue
      find "$p/$d" -type f ! -name '*.py' ! -name '*.pyc' -exec touch -d '2000-01-01 00:00:00' {} +
      n=$((n + 1))
    done
  done
  echo "JIT sources dated back ($n folders)"
}
save_jit() {  # the JIT caches to $OUT/jit-cache.tgz (carry it as .jit-cache/ to a later session)
  local have=() extra=() d size
  for d in "${JIT_DIRS[@]}"; do [ -d "$HOME/$d" ] && have+=("$d"); done
  [ ${#have[@]} -gt 0 ] || { echo "no JIT caches under $HOME (${JIT_DIRS[*]})"; return 0; }
  for d in "${JIT_EXTRA[@]}"; do [ -d "$HOME/$d" ] && extra+=("$d"); done
  (cd "$HOME" && du -sh "${have[@]}" "${extra[@]}")
  tar -czf /tmp/jit-cache.tgz -C "$HOME" "${have[@]}" "${extra[@]}"
  size=$(stat -c %s /tmp/jit-cache.tgz)
  if [ "$size" -gt 41943040 ] && [ ${#extra[@]} -gt 0 ]; then
    echo "with ${extra[*]}: $size bytes, over 40 MiB: sent without it"
    tar -czf /tmp/jit-cache.tgz -C "$HOME" "${have[@]}"
    size=$(stat -c %s /tmp/jit-cache.tgz)
  else
    have+=("${extra[@]}")
  fi
  echo "JIT caches ${have[*]}: $size bytes compressed"
  if [ -n "${OUT:-}" ]; then  # a carried path must fit the device tool's 64 MiB with the checkout
    if [ "$size" -le 41943040 ]; then cp /tmp/jit-cache.tgz "$OUT/"; else echo "over 40 MiB: not sent"; fi
  fi
}
case "${1:-poll}" in
  start)
    shift
    restore_jit
    copy_checkout "$SRC" "$RUN" "$W/pip.log"
    cd "$RUN" && setsid nohup python3 benchmarks/real_workload.py --model /tmp/q15hf --data "$RUN/.gpu-data/math500.jsonl" \
      --work-dir "$W" --out "$W/real_workload.json" "$@" > "$W/run.out" 2>&1 < /dev/null &
    echo "started (pid $!)";;
  chain)
    shift
    [ $# -gt 0 ] || { echo "chain: give each run's flags as one quoted argument" >&2; exit 2; }
    copy_checkout "$SRC" "$RUN" "$W/pip.log"
    bad=0  # every run's arguments first (real_workload --check): a typo in run 4 fails now, not an hour in
    for args in "$@"; do
      # shellcheck disable=SC2086  # each run's flags are one string, split as the chain will split them
      case "$args" in
        eval\ *) (cd "$RUN" && python3 benchmarks/gpu_eval.py --data "$RUN/.gpu-data/math500.jsonl" --check ${args#eval }) || bad=1;;
        *) (cd "$RUN" && python3 benchmarks/real_workload.py --data "$RUN/.gpu-data/math500.jsonl" --check $args) || bad=1;;
      esac
    done
    [ "$bad" = 0 ] || { echo "chain: not started (a run's arguments are wrong, above)" >&2; exit 2; }
    restore_jit
    i=0
    {
      echo "cd '$RUN'"
      for args in "$@"; do
        i=$((i + 1))
        d="$W/run$i"
        echo "mkdir -p '$d'; echo \"== run$i: $args (\$(date -u +%H:%M:%S))\""
        case "$args" in
          eval\ *)  # the eval CLI's jobs (gpu_eval.py), resumed from the result lines sent in .gpu-data/evals
            echo "python3 benchmarks/gpu_eval.py --model /tmp/q15hf --data '$RUN/.gpu-data/math500.jsonl'" \
                 "--out-dir '$d/evals' --seed-dir '$RUN/.gpu-data/evals' ${args#eval } > '$d/run.out' 2>&1 < /dev/null; echo \"run$i rc=\$?\"";;
          *)
            echo "python3 benchmarks/real_workload.py --model /tmp/q15hf --data '$RUN/.gpu-data/math500.jsonl'" \
                 "--work-dir '$d' --out '$d/real_workload.json' $args > '$d/run.out' 2>&1 < /dev/null; echo \"run$i rc=\$?\"";;
        esac
      done
      echo "echo '== chain done'"
    } > "$W/chain.sh"
    setsid nohup bash "$W/chain.sh" > "$W/chain.out" 2>&1 < /dev/null &
    echo $! > "$W/chain.pid"
    echo "started $i runs (pid $!): $W/chain.out";;
  skip)  # a run that would eat the session (the sixteenth run's srca-paper): its processes below it
    # first (SGLang's scheduler, the servers: their GPU memory is free before the next run starts),
    # then the run itself; its result lines so far stay, and the chain starts the next run
    cp=$(cat "$W/chain.pid" 2>/dev/null)
    { [ -n "$cp" ] && kill -0 "$cp" 2>/dev/null; } || { echo "skip: no chain is running ($W/chain.pid)" >&2; exit 1; }
    rp=$(pgrep -P "$cp" | head -n 1)
    [ -n "$rp" ] || { echo "skip: the chain runs nothing now" >&2; exit 1; }
    if [ -n "${2:-}" ]; then
      cur=$(grep -ao '^== run[0-9]*' "$W/chain.out" 2>/dev/null | tail -n 1 | sed 's/^== run//')
      [ "$cur" = "$2" ] || { echo "skip: run $2 is not the one running (run ${cur:-?}): nothing ended" >&2; exit 1; }
    fi
    below=$(descendants "$rp")
    for p in $below; do kill -KILL "$p" 2>/dev/null; done
    for _ in $(seq 1 20); do
      alive=0; for p in $below; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break; sleep 0.5
    done
    kill -KILL "$rp" 2>/dev/null
    # a run's MPS daemon (--server-mps) left its process tree when it started: ask it to quit
    for pipe in "$W"/run*/mps/pipe; do
      [ -e "$pipe/control" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$pipe" nvidia-cuda-mps-control 2>/dev/null \
        && echo "skip: asked the MPS daemon of $pipe to quit"
    done
    echo "skip: ended run process $rp and the $(echo $below | wc -w) below it";;
  poll)
    cat "$W/chain.out" 2>/dev/null
    last=$(ls -d "$W"/run* 2>/dev/null | sort -V | tail -n 1)
    log=${last:+$last/run.out}; log=${log:-$W/run.out}
    grep -a '^#' "$log" 2>/dev/null | tail -n 12; tail -c 2000 "$log" 2>/dev/null | tr '\r' '\n' | grep -av '^#' | tail -n 3
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    # once, as soon as an engine is up: SGLangEngine's warm-up has then compiled every kernel a
    # run uses (decode graphs, FlashInfer's sampling), so the caches are whole; the tenth run's
    # manual save, taken during the first sampled request's JIT, missed FlashInfer's sampling
    if [ -n "${OUT:-}" ] && [ ! -f "$W/jit-sent" ] && grep -aqs "ready in" "$W"/run*/run.out "$W/run.out"; then
      save_jit && touch "$W/jit-sent"
    fi
    if [ -n "${OUT:-}" ]; then  # the stack samples so far, summed up per folder (a run cut short keeps them)
      for d in "$W"/stacks "$W"/run*/stacks; do
        [ -d "$d" ] || continue
        n=$(basename "$(dirname "$d")")
        python3 -c 'import json, sys; from srca.engines import stack_probe as p
json.dump(p.summarize(p.read(sys.argv[1]), 0, 9e9), open(sys.argv[2], "w"), indent=1)' "$d" "$OUT/stacks_$n.json" 2>/dev/null
      done
    fi
    if [ -n "${OUT:-}" ]; then  # everything so far (the SGLang GC logs and stack samples stay: gc/, stacks/; the JSON sums them up)
      # (nor the profiler's traces, trace/: tens of MB, summed up in the JSON's sglang_trace)
      (cd "$W" && tar -czf "$OUT/rw.tgz" --exclude='*.tmp' --exclude='./gc' --exclude='*/gc' --exclude='./stacks' --exclude='*/stacks' \
        --exclude='./trace' --exclude='*/trace' --exclude='./*.sh' --exclude='./poll.last' . 2>/dev/null)
      ls -la "$OUT"
    fi;;
  wait)
    limit=${2:-540}
    case "$limit" in ''|*[!0-9]*) echo "wait: SECONDS must be a whole number, got '$limit'" >&2; exit 2;; esac
    end=$((SECONDS + limit))
    while :; do
      # done is read before the poll, so the poll printed last holds the chain's end (read after,
      # the chain could end between the two and the last poll miss it)
      finished=0; grep -aqs '^== chain done' "$W/chain.out" && finished=1
      bash "$0" poll > "$W/poll.last" 2>&1
      [ "$finished" = 1 ] && { echo "wait: chain done"; break; }
      [ "$SECONDS" -ge "$end" ] && { echo "wait: ${limit} s passed, the chain still runs: wait again at once"; break; }
      sleep 7
    done
    cat "$W/poll.last";;
  backdate-jit)
    backdate_jit_sources;;
  save-jit)
    save_jit;;
  *)
    echo "usage: gpu_real.sh start [ARGS] | chain \"ARGS\" ... | poll | wait [SECONDS] | skip [N] | save-jit | backdate-jit" >&2; exit 2;;
esac
