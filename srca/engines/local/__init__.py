"""The embedded transformers engine (CPU default, also runs on one CUDA GPU), along its request path::

    engine.LocalEngine.generate(requests)     checks the requests, encodes prompts
      └► scheduler.Scheduler                  queue; one drain task per event loop; batches of <= max_batch rows
           └► batch.BatchRunner.run            one batch, on the one worker thread:
                runner.ModelRunner.prefill       1. prefix-cache match per request (token ids)
                                                 2. prefill the uncached suffixes, grouped by length, in chunks
                sampler.first_tokens             3. first token: srca.kernels.sample_fanout per parent
                runner.ModelRunner.decode_step   4. decode every child of every request together
                  sampler.next_tokens               (sampler.sample_row, counter-based draws)
                  rows.record, rows.StopChecker     (logprobs; EOS, stop strings, max_new_tokens)
                prefix_cache.PrefixCache.insert  5. store prompt+generated KV back into the cache

Each module's docstring gives its part: batching, leaving and abort (``scheduler``); a batch's
steps, cache stores and progress (``batch``); a row's tokens, logprobs and stops (``rows``); the
KV batch layout and prefill (``runner``); the cache (``prefix_cache``); sampling (``sampler``;
seeds in :mod:`srca.seeds`, the rule in :mod:`srca.kernels.sampling_rule`).
"""
from .batch import DecodeProgress
from .engine import LocalEngine
from .prefix_cache import PrefixCache

__all__ = ["DecodeProgress", "LocalEngine", "PrefixCache"]
