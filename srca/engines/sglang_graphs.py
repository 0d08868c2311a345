"""Decode CUDA graphs for the batch sizes a search runs at (no SGLang import here).

SGLang 0.5.17 captures decode CUDA graphs only up to a running batch of 256 requests on one GPU
of 90 to 160 GB with tp < 4 (an H200: ``ServerArgs._handle_gpu_memory_settings``); a decode step
of a larger batch runs eager. On one H200 with the 1.5B model that is the cliff the real-workload
runs show: 3.5 to 6 ms a step with a graph at 100 to 256 running requests, 33 to 44 ms eager at
280 to 490, and 41 ms at 1,024 with 9.6 ms of it on the GPU (``benchmarks/results/
real_workload_h200_waves.json.gz``: the jobs' ``decode_series``, ``sampler_profile``). A batch of
16 samples per problem passes 256 as soon as 17 problems are in flight, so the SGLang engines
this project starts capture decode graphs up to ``DECODE_GRAPH_MAX_BS`` running requests
(SGLang clamps the list to its request pool) on GPUs of 60 GB or more, 1,024 on 35 to 60 GB,
and leave SGLang's default on smaller ones (:func:`auto_max_bs`: the graphs' buffers grow with
the batch, about 2.7 GB up to 4,096 for the 1.5B model, and SGLang reserves 2 MB per batch slot
when it sizes its memory itself; only the H200 tier is measured). Measured on one H200
(benchmarks/RUNS.md, "Fourth run"):
every decode step then ran on a graph; the raw engine 2.2x faster (26.5 s against 57.4 s for 200
problems x 16 samples), the sampling methods 1.4x to 1.7x; DVTS, bound by its engine calls,
unchanged; decode graph capture 7.6 s instead of 6.2 s.

Prefill CUDA graphs (SGLang 0.5.17 captures them by default, "breakable", 58 token counts) are
left off (:data:`PREFILL_GRAPH`): their capture took 26 to 86 s of a 96 to 154 s engine start on
one H200, and a run without them (benchmarks/RUNS.md, "Seventh run") started in 52.6 s with the raw engine
and the searches no slower than in any run with them (raw 23.2 s, the fastest of seven runs; no
same-run A/B). Under DVTS, whose small extend batches run eager, they made it slower on one H100
(77.9 s against 62.8 s, a decode iteration 72.5 ms against 61.3; "Eighteenth run", one engine after
the other on the same machine). ``SGLangEngine(prefill_graph=None)`` keeps SGLang's default.
"""
from __future__ import annotations

import subprocess
from typing import Any, Iterable

# SGLang's max_running_requests on one H200 with the 1.5B model (its own default there).
DECODE_GRAPH_MAX_BS = 4096
AUTO = "auto"
# what an eval's default concurrency assumes an SGLang server batches when it says nothing (the
# ceiling above, an H100's or H200's): EngineInfo.concurrent_sequences of SGLangServerEngine; the
# in-process engine knows its own (the resolved ceiling, or SMALL_GPU_SEQUENCES under SGLang's
# default graphs). Too many solves in flight only queue in SGLang; too few leave the GPU idle
SERVER_SEQUENCES = DECODE_GRAPH_MAX_BS
SMALL_GPU_SEQUENCES = 256

# SGLang's cuda_graph_backend_prefill for the engines this project starts (None: SGLang's default)
PREFILL_GRAPH = "disabled"
PREFILL_GRAPHS = ("full", "breakable", "tc_piecewise", "disabled")

# The graph options of SGLang's ServerArgs, new names (0.5.17) and old ones (before the decode /
# prefill split). A caller who sets any of these keeps SGLang's behaviour for them.
_GRAPH_FIELDS = ("cuda_graph_bs_decode", "cuda_graph_max_bs_decode", "cuda_graph_bs", "cuda_graph_max_bs",
                 "cuda_graph_config", "disable_cuda_graph", "disable_decode_cuda_graph",
                 "cuda_graph_backend_decode")


def decode_graph_sizes(max_bs: int) -> list[int]:
    """Batch sizes to capture: SGLang's own list up to 512 (1, 2, 4, 8, 12, then 16 to 256 by 8,
    272 to 496 by 16, 512), then coarser (640, 768, 896, 1024, then by 256 to 2048, by 512
    beyond): a batch runs in the next captured size up, padded; padding a step by up to a
    quarter costs far less than running it eager. Always ends at ``max_bs``."""
    if type(max_bs) is not int or max_bs < 1:
        raise ValueError(f"decode graph max batch size must be a positive int, got {max_bs!r}")
    sizes = [1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16), 512,
             640, 768, 896, 1024, *range(1280, 2049, 256), *range(2560, max_bs + 1, 512)]
    out = [s for s in sizes if s < max_bs]
    return out + [max_bs]


def gpu_memory_mb() -> float | None:
    """The smallest GPU's memory in MiB as ``nvidia-smi`` reports it (as SGLang sizes its own
    defaults), or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    vals = []
    for line in out.stdout.splitlines():
        try:
            vals.append(float(line.strip()))
        except ValueError:
            continue
    return min(vals) if out.returncode == 0 and vals else None


def auto_max_bs(gpu_mb: float | None) -> int | None:
    """The decode-graph ceiling for a GPU of ``gpu_mb`` MiB: 4,096 from 60 GB (an H100 or H200),
    1,024 from 35 GB, else None (SGLang's own default, 8 to 32 there)."""
    if gpu_mb is None:
        return None
    if gpu_mb >= 60 * 1024:
        return DECODE_GRAPH_MAX_BS
    if gpu_mb >= 35 * 1024:
        return 1024
    return None


def resolve_max_bs(value: int | str | None) -> int | None:
    """``decode_graph_max_bs`` as given: ``"auto"`` (:func:`auto_max_bs` of this host's GPUs), a
    positive int, or None (SGLang's default). Raises ValueError otherwise."""
    if value == AUTO:
        return auto_max_bs(gpu_memory_mb())
    if value is None:
        return None
    decode_graph_sizes(value)  # the int check
    return value


def decode_graph_args(max_bs: int | None, fields: Iterable[str], given: dict[str, Any]) -> dict[str, Any]:
    """SGLang server args that capture decode graphs up to ``max_bs`` (None: SGLang's default).

    ``fields``: the names ``sglang``'s ``ServerArgs`` has (the new names win); ``given``: the
    caller's own server args: any graph option there, or a smaller ``max_running_requests``
    (the list then stops at it), is respected. Returns the args to add ({} for none)."""
    if max_bs is None:
        return {}
    if any(given.get(k) not in (None, False) for k in _GRAPH_FIELDS):
        return {}
    running = given.get("max_running_requests")
    if isinstance(running, int) and running > 0:
        max_bs = min(max_bs, running)
    fields = set(fields)
    for bs_name, max_name in (("cuda_graph_bs_decode", "cuda_graph_max_bs_decode"), ("cuda_graph_bs", "cuda_graph_max_bs")):
        if bs_name in fields and max_name in fields:
            return {bs_name: decode_graph_sizes(max_bs), max_name: max_bs}
    return {}


def resolve_prefill_graph(backend: str | None) -> str | None:
    """``backend`` when it is one of :data:`PREFILL_GRAPHS` or None (SGLang's default); raises
    ValueError otherwise."""
    if backend is not None and backend not in PREFILL_GRAPHS:
        raise ValueError(f"prefill graph backend must be one of {PREFILL_GRAPHS} or None, got {backend!r}")
    return backend


def prefill_graph_args(backend: str | None, fields: Iterable[str], given: dict[str, Any]) -> dict[str, Any]:
    """SGLang server args for prefill CUDA graphs: ``cuda_graph_backend_prefill = backend``
    unless ``backend`` is None, the installed SGLang has no such field, or the caller's own
    server args set it (or turn every graph off). Raises ValueError for an unknown backend."""
    if resolve_prefill_graph(backend) is None:
        return {}
    if "cuda_graph_backend_prefill" not in set(fields) or given.get("cuda_graph_backend_prefill") is not None \
            or given.get("disable_cuda_graph"):
        return {}
    return {"cuda_graph_backend_prefill": backend}


def server_arg_fields() -> set[str]:
    """The field names of the installed SGLang's ServerArgs (imports sglang)."""
    import dataclasses

    from sglang.srt.server_args import ServerArgs

    return {f.name for f in dataclasses.fields(ServerArgs)}


def cli_flags(args: dict[str, Any]) -> list[str]:
    """``decode_graph_args``'s result as ``sglang.launch_server`` flags (``--cuda-graph-bs-decode
    1 2 4 ... --cuda-graph-max-bs-decode 4096``)."""
    out: list[str] = []
    for k, v in args.items():
        out.append("--" + k.replace("_", "-"))
        out += [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m srca.engines.sglang_graphs [MAX_BS]``: the flags for ``sglang.launch_server``
    that set CUDA graphs as the SGLang engines do: decode graphs up to MAX_BS (by default
    :func:`auto_max_bs` of this host's GPUs; none where that leaves SGLang's default) and the
    prefill graph backend (:data:`PREFILL_GRAPH`). Needs SGLang, for its argument names."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    try:
        max_bs = resolve_max_bs(int(args[0]) if args else AUTO)
    except ValueError as e:
        print(f"srca.engines.sglang_graphs: MAX_BS: {e}", file=sys.stderr)
        return 2
    try:
        fields = server_arg_fields()
    except ImportError as e:
        print(f"srca.engines.sglang_graphs: needs SGLang installed ({e})", file=sys.stderr)
        return 1
    # no GPU seen, or a small one: SGLang's own decode graphs (max_bs None: no decode flags)
    flags = cli_flags({**decode_graph_args(max_bs, fields, {}), **prefill_graph_args(PREFILL_GRAPH, fields, {})})
    if flags:
        print(" ".join(flags))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
