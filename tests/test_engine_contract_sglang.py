"""The Engine contract suite (``engine_contract.py``) on the SGLang backends.

* ``http-fake`` (CPU, always): :class:`SGLangServerEngine` against the fake SGLang server of
  ``fake_sglang_server.py`` driving the contract's stand-in model, so the whole HTTP mapping
  (meta_info, stop strings, logprobs, seeds, cached tokens) is checked without a GPU.
* ``sglang`` (GPU): :class:`SGLangEngine` in process.
* ``sglang-http`` (GPU): :class:`SGLangServerEngine` against ``python -m sglang.launch_server``
  started here (or the server at ``$SRCA_SGLANG_URL``).

GPU params need CUDA and an importable ``sglang`` and real weights: ``$SRCA_SGLANG_MODEL``
(default ``/tmp/q15hf``, see ``../shared/gpu/README.md``). With ``SRCA_SGLANG_DUMMY=1`` they run
on dummy weights (``load_format="dummy"``, default model ``/tmp/sglmodel``); the tests that
need a model that can count are then skipped.
"""
from __future__ import annotations

import asyncio
import os

import pytest

from engine_contract import *  # noqa: F401,F403  (the contract tests, collected here)
from fake_sglang_server import Server, State, make_app
from srca.engines.base import GenRequest
from srca.engines.sglang_http import SGLangServerEngine

DUMMY = os.environ.get("SRCA_SGLANG_DUMMY") == "1"
MODEL = os.environ.get("SRCA_SGLANG_MODEL", "/tmp/sglmodel" if DUMMY else "/tmp/q15hf")
NEEDS_REAL_MODEL = ("test_stop_strings", "test_mixed_batch", "test_stop_modes_agree")  # a random model does not count
SERVER_ARGS = dict(attention_backend="triton", sampling_backend="pytorch", grammar_backend="none",
                   disable_cuda_graph=True, mem_fraction_static=0.5)


def _gpu_ready() -> None:
    try:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs CUDA")
    except ImportError:
        pytest.skip("needs torch with CUDA")
    try:
        import sglang  # noqa: F401
    except ImportError:
        pytest.skip("needs sglang")
    if not os.path.exists(os.path.join(MODEL, "config.json")):
        pytest.skip(f"no model folder at {MODEL} (set SRCA_SGLANG_MODEL, or SRCA_SGLANG_DUMMY=1)")


def _http_fake():
    from test_engine_contract import _script  # the contract's stand-in model

    srv = Server(make_app(State(script=_script))).__enter__()
    eng = SGLangServerEngine(srv.url, backoff_s=0.01)
    return eng, lambda: srv.__exit__(None, None, None)


_CONTRACT_SHIM = '''"""sglang.launch_server stood in for: the fake SGLang server driving the contract's model."""
import sys

import uvicorn

from fake_sglang_server import State, make_app
from test_engine_contract import _script

argv = sys.argv[1:]
uvicorn.run(make_app(State(script=_script)), host="127.0.0.1", port=int(argv[argv.index("--port") + 1]),
            log_level="warning")
'''


def _servers_fake():
    """``LaunchedServersEngine`` on CPU: the engine starts two stand-in ``sglang.launch_server``
    processes itself (srca.engines.sglang_launch's whole path) and stops them on close."""
    import shutil
    import tempfile

    from srca.engines.sglang_launch import LaunchedServersEngine

    d = tempfile.mkdtemp(prefix="srca-shim-")
    os.makedirs(os.path.join(d, "sglang"))
    open(os.path.join(d, "sglang", "__init__.py"), "w").close()
    with open(os.path.join(d, "sglang", "launch_server.py"), "w") as f:
        f.write(_CONTRACT_SHIM)
    here = os.path.dirname(os.path.abspath(__file__))
    with pytest.MonkeyPatch.context() as mp:  # the servers' environment
        mp.setenv("PYTHONPATH", os.pathsep.join([d, here, os.path.dirname(here)]))
        eng = LaunchedServersEngine("stand-in", replicas=2, decode_graph_max_bs=None, prefill_graph=None,
                                    start_timeout_s=60, backoff_s=0.01)
    assert len(eng.urls) == 2 and len(eng.servers.procs) == 2
    return eng, lambda: shutil.rmtree(d, ignore_errors=True)


def _inproc():
    _gpu_ready()
    from srca.engines.sglang_inproc import SGLangEngine

    extra = {"load_format": "dummy"} if DUMMY else {}
    eng = SGLangEngine(MODEL, deterministic=True, **SERVER_ARGS, **extra)
    return eng, None


def _launched_server():
    url = os.environ.get("SRCA_SGLANG_URL")
    if url:
        return SGLangServerEngine(url), None
    _gpu_ready()
    from srca.engines.sglang_launch import ServerGroup, ServerLaunch

    flags = ["--enable-deterministic-inference", "--log-level", "warning"]
    for k, v in SERVER_ARGS.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag] if v is True else [flag, str(v)]
    if DUMMY:
        flags += ["--load-format", "dummy"]
    group = ServerGroup(ServerLaunch(model=MODEL, decode_graph_max_bs=None, prefill_graph=None, gc_threshold=None,
                                     extra_args=tuple(flags), start_timeout_s=300))
    return SGLangServerEngine(group.start()[0]), group.stop


ENGINES = [
    pytest.param(_http_fake, id="http-fake"),
    pytest.param(_servers_fake, id="sglang-servers-fake"),
    pytest.param(_launched_server, id="sglang-http", marks=pytest.mark.gpu),
    pytest.param(_inproc, id="sglang", marks=pytest.mark.gpu),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    eng, stop = request.param()
    yield eng
    try:
        asyncio.run(eng.close())
    finally:
        if stop is not None:
            stop()


@pytest.fixture(autouse=True)
def _skip_model_dependent(request):
    if DUMMY and request.node.originalname in NEEDS_REAL_MODEL and "http-fake" not in request.node.name:
        pytest.skip("needs a model that counts (dummy weights)")


def test_stop_modes_agree(engine):
    """Stop strings sent as ``stop_token_ids`` (the default) or as strings give the same
    greedy results, the step delimiter and probe stops of the search included."""
    from engine_contract import COUNT

    prompts = [COUNT, "Solve step by step. What is 12 * 7 + 5?\n\n", "List three primes, one per line:\n"]
    stops = [("\n\n",), ("}\n", "}$", "\n\n"), (", 1", "\n")]

    def reqs():
        return [GenRequest(prompt=p, max_new_tokens=48, stop=s) for p in prompts for s in stops]

    saved = engine.stop_mode
    try:
        engine.stop_mode = "tokens"
        by_tokens = asyncio.run(engine.generate(reqs()))
        engine.stop_mode = "strings"
        by_strings = asyncio.run(engine.generate(reqs()))
    finally:
        engine.stop_mode = saved
    got = [[(r.text, r.token_ids, r.finish_reason, r.stop_str) for r in rs] for rs in by_tokens]
    assert got == [[(r.text, r.token_ids, r.finish_reason, r.stop_str) for r in rs] for rs in by_strings]
    assert any(r.stop_str is not None for (r,) in by_tokens)
