"""SGLangEngine: an in-process ``sglang.Engine`` behind the srca Engine contract.

SGLang is imported when the engine is constructed, never at module import. Scripts that build
one must guard their entry point with ``if __name__ == "__main__":`` (SGLang spawns its
scheduler processes).

How requests map onto SGLang (0.5.x):

* each ``GenRequest`` with ``n`` samples becomes ``n`` SGLang requests on the same
  ``input_ids`` (SGLang's own advice over its ``n`` parameter); the radix cache shares the prefix;
* sample ``i`` gets ``sampling_seed`` derived from ``(seed, i)``; SGLang honours it only with
  ``deterministic=True`` (server arg ``enable_deterministic_inference``, which also forces the
  pytorch sampler), otherwise sampling is not reproducible;
* stop strings go to SGLang as ``stop_token_ids`` (``stop_mode="tokens"``, the default; see
  :class:`~srca.engines.sglang_common.StopTokens`) or as ``stop`` strings (``"strings"``);
* counts come from ``meta_info``: ``prompt_tokens``, ``cached_tokens``, and
  ``generated_tokens == len(output_ids)`` (SGLang's ``completion_tokens``);
* with ``dp_size > 1`` every request of one ``GenRequest.group`` is sent to one replica with
  ``routed_dp_rank`` (see :class:`~srca.engines.sglang_common.ReplicaRouter`);
* a request that reads only its last ``logprob_tail`` log-probabilities (SRCA's tail
  confidence) is sampled without ``return_logprob`` and its tail then scored by one
  prefill-only request per sample (``tail_logprobs="rescore"``, the default; see
  :func:`~srca.engines.sglang_common.tail_rescore`): on one H200 srca@16 with ``return_logprob``
  on every decode step took 1.26x the wall of the same search scoring its tails after sampling
  (benchmarks/RUNS.md, "Second run"); the tail prefill is ``logprob_tail`` tokens per sample
  (srca asks for 128), its prefix from the radix cache. These log-probabilities are the
  model's own (temperature 1, as the local engine returns); SGLang's decode logprobs are taken
  after the temperature (``tail_logprobs="inline"`` keeps those);
* cancelling the awaiting task aborts the SGLang requests by ``rid``
  (``TokenizerManager.abort_request``; SGLang does not abort on cancellation by itself);
* ``abort(group)`` aborts the requests of one solve in flight *without* cancelling: SGLang then
  ends each with ``finish_reason`` ``abort`` and the tokens it had generated (its tokenizer
  manager answers a user abort like a finished request), so the caller gets them and counts
  them (a deadline stop, :meth:`srca.methods.context.SearchContext._abort`), as with the local
  engine.

SGLang's tokenizer manager binds itself to the first event loop that sends it a request. So
the engine runs all SGLang calls on one private loop in a background thread, and
:meth:`generate` can be awaited from any loop (``asyncio.run`` more than once, pytest, a web
service).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any, Sequence

from . import gc_probe
from .base import EngineInfo, GenRequest, GenResult
from .chat_template import apply_chat_template
from .hf_decode import hf_decoder
from .sglang_graphs import AUTO as GRAPHS_AUTO
from .sglang_graphs import (PREFILL_GRAPH, SMALL_GPU_SEQUENCES, decode_graph_args, prefill_graph_args, resolve_max_bs,
                            resolve_prefill_graph, server_arg_fields)
from .sglang_sampler import BACKEND as SAMPLER_BACKEND
from .sglang_sampler import check_installed as check_sampler_installed
from .sglang_common import (STOP_MODES, SUBMIT_WINDOW_BUSY, SUBMIT_WINDOW_MS, TAIL_LOGPROBS, InFlight, ReplicaRouter,
                            StopTokens, loop_params, new_rid, submit_gate,
                            sampling_params, tail_rescore, tail_to_score, to_result, with_tail_logprobs)

log = logging.getLogger(__name__)

WARMUP_PROMPT = "1 + 1 ="
WARMUP_TOKENS = 4
WARMUP_TEMPERATURE, WARMUP_TOP_P = 0.7, 0.95  # any T > 0 with top-p < 1 reaches FlashInfer's top-p sampling
WARMUP_TIMEOUT_S = 900.0


def _max_context(model_path: str, default: int = 32768) -> int:
    try:
        with open(os.path.join(model_path, "config.json")) as f:
            cfg = json.load(f)
        return int(cfg.get("max_position_embeddings") or default)
    except (OSError, ValueError, TypeError):
        return default


class SGLangEngine:
    """In-process SGLang.

    Args:
        model_path: Hugging Face folder (or hub name) of the model.
        tp_size, dp_size: tensor- and data-parallel sizes (``dp_size`` replicas of ``tp_size`` GPUs).
        radix_cache: keep SGLang's prefix cache (RadixAttention) on.
        attention_backend, sampling_backend: SGLang backends (``"triton"`` needs no FA3 build;
            ``sampling_backend="srca"``: srca's sampling kernel, :mod:`~srca.engines.sglang_sampler`).
        mem_fraction_static: share of GPU memory for weights + KV cache (SGLang default if None).
        load_format: e.g. ``"dummy"`` for random weights (speed work without a checkpoint).
        routing: ``"affinity"`` (default), ``"round_robin"`` or ``"sglang"`` (SGLang's own
            load balancer); only matters with ``dp_size > 1``.
        ignore_eos: never stop at EOS (benchmarks on dummy weights); SGLang then also ignores
            ``stop_token_ids``, so stop strings are sent as strings.
        stop_mode: ``"tokens"`` (stop strings as ``stop_token_ids``, no per-step detokenizing
            in the scheduler) or ``"strings"`` (SGLang's ``stop``). Same results either way.
        deterministic: honour per-request seeds (``enable_deterministic_inference``).
        tail_logprobs: ``"rescore"`` (a request with ``logprob_tail`` gets its tail scored by a
            prefill after sampling), ``"inline"`` (``return_logprob`` while decoding) or
            ``"rescore_all"`` (every logprob request scored after sampling, whole: an experiment).
        tokenizer: tokenizer folder/name if not the model's.
        decode_graph_max_bs: capture decode CUDA graphs for running batches up to this size
            (:mod:`~srca.engines.sglang_graphs`: SGLang's own default stops at 256 on an H200
            and runs larger decode steps eager, several times slower); ``"auto"`` (default):
            4,096 on GPUs of 60 GB or more, 1,024 from 35 GB, SGLang's default below; None keeps
            SGLang's default; ignored when ``server_args`` set a graph option themselves.
        prefill_graph: SGLang's ``cuda_graph_backend_prefill`` (:mod:`~srca.engines.sglang_graphs`):
            ``"disabled"`` (default: their capture took 26 to 86 s of the engine's start on one
            H200, and no run was faster with them), ``"breakable"``, ``"full"``,
            ``"tc_piecewise"``, or None for SGLang's default; ignored when ``server_args`` set it.
        freeze_gc: once the engine is up, move every object that exists then (the imports of
            torch, transformers and SGLang, the tokenizer, the stop-token table) out of Python's
            cyclic garbage collector, in this process and SGLang's own (SGLang's
            ``freeze_gc``, which its docs advise after start-up): a full collection otherwise
            walks them all and holds every thread, the engine's loop included.
        gc_threshold: the garbage collector's thresholds in this process and every SGLang
            process it starts (:data:`~srca.engines.gc_probe.DEFAULT_THRESHOLD`, ``(50000, 20,
            100)``, by default; None keeps Python's ``(700, 10, 10)``): SGLang's own
            ``gc_threshold`` reaches only this process, so the scheduler gets them from srca's
            plugin through ``SRCA_SGLANG_GC_THRESHOLD`` (set here unless the environment already
            names thresholds). At Python's, the scheduler stopped for 3.9 s and this process for
            5.9 s of a 68.3 s DVTS eval in full collections (one H100, benchmarks/RUNS.md,
            "Fifteenth run"); raised in every process of two servers, DVTS took 60.0 s against
            76.3 s at Python's in the run before, another H100 ("Seventeenth run").
        submit_window_ms: hold each call of requests that may wait (``GenRequest.may_wait``:
            the steps of beam, DVTS and the paper's tree) up to this long so that calls arriving
            close together reach SGLang's scheduler together (:class:`~srca.engines.
            sglang_common.SubmitGate`; 0: at once). 200 ms by default: it took DVTS from 130.7
            to 103.5 s on one H100 (200 MATH problems x 16; prefill batches per decode
            iteration 1.00 -> 0.46). Other requests (a vote's samples, srca's lineages, probes)
            never wait.
        submit_window_busy: the window holds a call only while at least this many samples are
            in flight on the engine (256 by default): a lone solve keeps its latency.
        warmup: once the engine is up, send one short sampled request (temperature and top-p
            as the searches sample) and wait for it, so that the kernels SGLang compiles on
            first use are compiled before the constructor returns, not inside the first
            solve (:meth:`_warm_up` says why; its time is ``warmup_s``). True by default.
        loop_stops: stop samples that repeat themselves inside SGLang (``GenRequest.loop_stop``,
            ``EngineInfo.loop_stops``): a custom logit processor (:mod:`srca.engines.sglang_loops`,
            server arg ``enable_custom_logit_processor``) forces EOS where the rule fires, so a
            search sends one request per sample instead of splitting it. Off by default: on
            SGLang 0.5.17 it doubled the search's wall against the split (twentieth run,
            benchmarks/RUNS.md: 126 s against 64 s), because SGLang's
            ``apply_custom_logit_processor`` syncs the GPU per row and step (upstream
            sgl-project/sglang#39234 removes that). Not with ``ignore_eos``.
        **server_args: passed to ``sglang.Engine`` unchanged (e.g. ``disable_cuda_graph=True``,
            ``grammar_backend="none"``, ``context_length=4096``).
    """

    def __init__(
        self,
        model_path: str,
        tp_size: int = 1,
        dp_size: int = 1,
        radix_cache: bool = True,
        attention_backend: str | None = "triton",
        sampling_backend: str | None = None,
        mem_fraction_static: float | None = None,
        load_format: str | None = None,
        routing: str = "affinity",
        ignore_eos: bool = False,
        stop_mode: str = "tokens",
        deterministic: bool = False,
        tokenizer: str | None = None,
        log_level: str = "error",
        tail_logprobs: str = "rescore",
        decode_graph_max_bs: int | str | None = GRAPHS_AUTO,
        prefill_graph: str | None = PREFILL_GRAPH,
        freeze_gc: bool = True,
        gc_threshold: Sequence[int] | str | None = gc_probe.DEFAULT_THRESHOLD,
        submit_window_ms: float = SUBMIT_WINDOW_MS,
        submit_window_busy: int = SUBMIT_WINDOW_BUSY,
        warmup: bool = True,
        loop_stops: bool = False,
        **server_args: Any,
    ) -> None:
        if tp_size < 1 or dp_size < 1:
            raise ValueError(f"SGLangEngine: tp_size and dp_size must be >= 1, got {tp_size}, {dp_size}")
        if stop_mode not in STOP_MODES:
            raise ValueError(f"SGLangEngine.stop_mode: must be one of {STOP_MODES}, got {stop_mode!r}")
        if tail_logprobs not in TAIL_LOGPROBS:
            raise ValueError(f"SGLangEngine.tail_logprobs: must be one of {TAIL_LOGPROBS}, got {tail_logprobs!r}")
        try:
            graph_max_bs = resolve_max_bs(decode_graph_max_bs)
        except ValueError:
            raise ValueError(f"SGLangEngine.decode_graph_max_bs: must be 'auto', a positive int or None, "
                             f"got {decode_graph_max_bs!r}") from None
        try:
            resolve_prefill_graph(prefill_graph)
        except ValueError as e:
            raise ValueError(f"SGLangEngine.prefill_graph: {e}") from None
        if not isinstance(loop_stops, bool):
            raise TypeError(f"SGLangEngine.loop_stops: a bool, got {loop_stops!r}")
        if loop_stops and ignore_eos:
            raise ValueError("SGLangEngine.loop_stops: not with ignore_eos (a loop stop is a forced EOS)")
        thresholds = gc_probe.check_threshold(gc_threshold, "SGLangEngine.gc_threshold")
        self.gate = submit_gate("SGLangEngine", submit_window_ms, submit_window_busy)
        self.tail_logprobs = tail_logprobs
        self.router = ReplicaRouter(dp_size, routing)
        self.ignore_eos = ignore_eos
        self.dp_size = dp_size
        try:
            import sglang  # noqa: F401  (heavy; only here)
        except ImportError as e:  # a user-caused condition: raise, don't assert
            raise ImportError("SGLangEngine needs the 'sglang' package (pip install 'srca[sglang]' on a CUDA machine)") from e
        if sampling_backend == SAMPLER_BACKEND:
            check_sampler_installed()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model_path)
        self._decode = hf_decoder(self.tokenizer)
        self.stop_mode = stop_mode
        self.stop_tokens = StopTokens(self.tokenizer)
        if stop_mode == "tokens":
            self.stop_tokens.texts()  # decode the vocabulary now, not in the first solve
        kwargs: dict[str, Any] = dict(model_path=model_path, tp_size=tp_size, dp_size=dp_size,
                                      disable_radix_cache=not radix_cache, log_level=log_level)
        if attention_backend is not None:
            kwargs["attention_backend"] = attention_backend
        if sampling_backend is not None:
            kwargs["sampling_backend"] = sampling_backend
        if mem_fraction_static is not None:
            kwargs["mem_fraction_static"] = mem_fraction_static
        if load_format is not None:
            kwargs["load_format"] = load_format
        if tokenizer is not None:
            kwargs["tokenizer_path"] = tokenizer
        if deterministic:
            kwargs["enable_deterministic_inference"] = True
        self._loop_proc: str | None = None
        if loop_stops:
            from .sglang_loops import LoopStopProcessor

            if not isinstance(self.tokenizer.eos_token_id, int):
                raise ValueError(f"SGLangEngine.loop_stops: the tokenizer of {model_path} has no EOS token")
            self._loop_proc = LoopStopProcessor.to_str()
            kwargs["enable_custom_logit_processor"] = True
        kwargs.update(server_args)
        fields = server_arg_fields()
        if thresholds is not None:
            if "gc_threshold" in fields:
                kwargs["gc_threshold"] = list(thresholds)
            gc_probe.export_threshold(thresholds)  # for the scheduler, through srca's plugin
        kwargs.update({**decode_graph_args(graph_max_bs, fields, kwargs), **prefill_graph_args(prefill_graph, fields, kwargs)})
        self.server_args = kwargs
        self.engine = sglang.Engine(**kwargs)
        self.info = EngineInfo(name="sglang", model=model_path, token_ids=True,
                               reports_cached_tokens=radix_cache, max_context=_max_context(model_path),
                               concurrent_sequences=(graph_max_bs or SMALL_GPU_SEQUENCES) * dp_size,
                               loop_stops=loop_stops)
        # One private loop for every SGLang call (see module docstring).
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="srca-sglang-loop", daemon=True)
        self._thread.start()
        self._closed = False
        self._in_flight = InFlight()  # each solve's SGLang request ids (touched on the engine loop only)
        self._samples_in_flight = 0  # samples in SGLang calls now (the submit window's busy test)
        if freeze_gc:
            self._freeze_gc()
        self.warmup_s: float | None = self._warm_up() if warmup else None

    def _warm_up(self) -> float | None:
        """One short sampled request, now; seconds it took, None if it failed (logged: an engine
        that cannot warm up still serves, the first solve pays).

        Why (one H200, SGLang 0.5.17, the 1.5B model; benchmarks/RUNS.md, "Tenth run"): on a machine whose
        kernel caches are cold (``~/.triton/cache``, ``~/.cache/flashinfer``), the first
        *sampled* request waits about 110 s while FlashInfer compiles its sampling kernels
        (SGLang's own server warm-up is greedy and does not reach them), after a start of 139 s
        of which 84 s compiled the decode graphs' Triton kernels. With both caches warm the
        start took 67 s and the first sampled request 0.1 s. The cost is paid once per machine
        (keep those folders, or ``TRITON_CACHE_DIR`` and ``FLASHINFER_WORKSPACE_BASE``, on a
        volume in containers); without the warm-up the first solve paid it, a third of the
        service's default 300 s deadline."""
        t0 = time.perf_counter()
        ids = self.encode(WARMUP_PROMPT)
        params = {"max_new_tokens": WARMUP_TOKENS, "temperature": WARMUP_TEMPERATURE, "top_p": WARMUP_TOP_P}
        # straight to SGLang: the warm-up is no solve's, so it stays out of the replicas' counters
        coro = self.engine.async_generate(input_ids=[ids, ids], sampling_params=[params, dict(params)],
                                          return_logprob=[False, False], top_logprobs_num=[0, 0],
                                          rid=[new_rid(), new_rid()])
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(WARMUP_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            log.warning("SGLangEngine: warm-up request failed (%s: %s); the first solve compiles the kernels",
                        type(e).__name__, e)
            return None
        took = time.perf_counter() - t0
        log.info("SGLangEngine: warm-up request took %.1f s", took)
        return took

    def _freeze_gc(self) -> None:
        freeze = getattr(self.engine.tokenizer_manager, "freeze_gc", None)  # SGLang >= 0.5: all its processes
        if freeze is None:
            import gc

            gc.freeze()
            return
        try:  # an optimisation: an SGLang that cannot do it still serves
            asyncio.run_coroutine_threadsafe(freeze(), self._loop).result(60)
        except Exception as e:  # noqa: BLE001
            log.warning("SGLangEngine: freeze_gc failed (%s: %s); the garbage collector stays as it was",
                        type(e).__name__, e)

    # -- tokenizer --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(ids)

    def chat_prompt(self, messages: list[dict]) -> str:
        return apply_chat_template(self.tokenizer, messages)

    # -- generation -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per-replica counters: samples sent/finished/in flight, groups held, token counts."""
        return self.router.stats()

    def window_stats(self) -> dict[str, Any]:
        """The submit window's settings and what it held so far (calls, windows opened)."""
        return self.gate.stats()

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        if self._closed:
            raise RuntimeError("SGLangEngine: generate() after close()")
        if not requests:
            return []
        fut = asyncio.run_coroutine_threadsafe(self._generate(list(requests)), self._loop)
        # Cancelling the caller cancels the wrapped future, which cancels the task on the
        # engine loop, whose handler aborts the SGLang requests.
        return await asyncio.wrap_future(fut)

    async def _generate(self, requests: list[GenRequest]) -> list[list[GenResult]]:
        if any(r.may_wait for r in requests):  # submit_window_ms: steps close together go together
            await self.gate.wait(self._samples_in_flight)
        # Expand samples and place each request on a replica.
        per_replica: dict[int | None, list[tuple[int, int]]] = {}
        for k, req in enumerate(requests):
            r = self.router.pick(req.group)
            per_replica.setdefault(r, []).extend((k, i) for i in range(req.n))
        calls = [self._call(r, requests, slots) for r, slots in per_replica.items()]
        results: list[list[GenResult | None]] = [[None] * r.n for r in requests]
        for slots, outs in zip(per_replica.values(), await asyncio.gather(*calls)):
            for (k, i), res in zip(slots, outs):
                results[k][i] = res
        return results  # type: ignore[return-value]

    async def _call(self, replica: int | None, requests: list[GenRequest], slots: list[tuple[int, int]]) -> list[GenResult]:
        ids, params, want_lp, top_n, rids, tails, procs = [], [], [], [], [], [], []
        for k, i in slots:
            req = requests[k]
            ids.append(list(req.input_ids) if req.input_ids is not None else self.encode(req.prompt or ""))
            params.append(sampling_params(req, i, ignore_eos=self.ignore_eos,
                                          stop_tokens=self.stop_tokens if self.stop_mode == "tokens" else None))
            if self._loop_proc is not None and req.loop_stop is not None:
                params[-1]["custom_params"] = loop_params(req.loop_stop, self.tokenizer.eos_token_id)
            procs.append(self._loop_proc if "custom_params" in params[-1] else None)
            tails.append(tail_to_score(req, self.tail_logprobs))
            want_lp.append(bool(req.logprobs or req.top_logprobs) and not tails[-1])
            top_n.append(0 if tails[-1] else int(req.top_logprobs))
            rids.append(new_rid())
        tokens = sum(p["max_new_tokens"] for p in params)
        routed = replica if (replica is not None and self.dp_size > 1) else None
        self.router.start(replica, len(slots), tokens)
        self._samples_in_flight += len(slots)
        results: list[GenResult] = []
        groups = [(requests[k].group, rid) for (k, _), rid in zip(slots, rids) if requests[k].group is not None]
        self._in_flight.add(groups)
        try:
            outs = await self.engine.async_generate(
                input_ids=ids, sampling_params=params, return_logprob=want_lp,
                top_logprobs_num=top_n, rid=rids, routed_dp_rank=routed,
                **({"custom_logit_processor": procs} if any(procs) else {}),
            )
            if isinstance(outs, dict):
                outs = [outs]
            if any(tails):
                tops = [int(requests[k].top_logprobs) for k, _ in slots]
                outs = await self._score_tails(ids, list(outs), tails, tops, rids, routed)
            results = [to_result(o, requests[k], decode=self.decode, loops=self.info.loop_stops)
                       for o, (k, _) in zip(outs, slots)]
            if replica is None and self.dp_size > 1:
                for o, g in zip(outs, results):
                    rank = (o.get("meta_info") or {}).get("dp_rank")
                    if isinstance(rank, int):
                        self.router.record(rank, [g])
            return results
        except BaseException:  # cancelled (or failed): free the scheduler's slots now
            self._abort(rids)
            raise
        finally:
            self.router.done(replica, len(slots), tokens, results)
            self._samples_in_flight -= len(slots)
            self._in_flight.remove(groups)

    async def _score_tails(self, ids: list[list[int]], outs: list[dict], tails: list[int], tops: list[int],
                           rids: list[str], routed: int | None) -> list[dict]:
        """Fill each sample's last ``tails[j]`` log-probabilities (and its ``tops[j]`` best
        alternatives there) from one prefill-only request per sample, on the replica that holds
        its prefix (``rids`` gets the new request ids, so a cancel aborts them too)."""
        todo = []
        for j, (o, tail) in enumerate(zip(outs, tails)):
            got = tail_rescore(ids[j], o.get("output_ids") or [], tail) if tail else None
            if got is not None:
                todo.append((j, *got))
        if not todo:
            return outs
        new = [new_rid() for _ in todo]
        rids.extend(new)
        scored = await self.engine.async_generate(
            input_ids=[full for _, full, _, _ in todo], sampling_params=[{"max_new_tokens": 0} for _ in todo],
            return_logprob=[True] * len(todo), logprob_start_len=[start for _, _, start, _ in todo],
            top_logprobs_num=[tops[j] for j, _, _, _ in todo], rid=new, routed_dp_rank=routed,
        )
        if isinstance(scored, dict):
            scored = [scored]
        for (j, _, _, k), s in zip(todo, scored):
            outs[j] = with_tail_logprobs(outs[j], s, k)
        return outs

    def abort(self, group: str) -> None:
        """End the requests of ``group`` (one solve) that are in flight; their calls return what
        was generated so far, with ``finish_reason="abort"``. Safe from any thread; a request
        SGLang has not registered yet runs on."""
        if not self._closed:
            self._loop.call_soon_threadsafe(lambda: self._abort(self._in_flight.of(group)))

    def _abort(self, rids: list[str]) -> None:
        tm = getattr(self.engine, "tokenizer_manager", None)
        if tm is None:
            return
        for rid in rids:
            try:
                tm.abort_request(rid=rid)
            except Exception as e:  # best effort while unwinding; the request may be gone
                log.debug("abort of %s failed: %s", rid, e)

    async def flush_cache(self) -> bool:
        """Empty SGLang's prefix cache (between benchmark runs; fails while requests run)."""
        # Engine.flush_cache() would use SGLang's own loop; the tokenizer manager lives on ours.
        coro = self.engine.tokenizer_manager.flush_cache()
        out = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
        return bool(getattr(out, "success", True))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.to_thread(self.engine.shutdown)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
