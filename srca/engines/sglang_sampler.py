"""srca's sampling kernel as SGLang's sampler: ``sampling_backend="srca"``.

SGLang's own sampler (0.5.17, ``sglang.srt.layers.sampler.Sampler.forward``) divides the logits
by the temperatures in place, turns them into probabilities with a softmax over the vocabulary,
copies those back into the logits, and then draws with FlashInfer's top-k / top-p kernel: four
passes over a ``[batch, vocab]`` tensor a decode step. :func:`srca.kernels.sample` draws from
the logits themselves in one read, with the temperature folded in (``kernels/README.md``).

How it plugs in (no patching): SGLang loads the entry points of the group ``sglang.srt.plugins``
in every process it starts (``sglang.srt.plugins.load_plugins``: the engine's process and each
scheduler); srca declares :func:`register` there (``pyproject.toml``), which registers the
backend name ``"srca"`` with ``register_sampler_backend``. ``SGLangEngine(...,
sampling_backend="srca")`` then runs it; it is installed with srca, so the engine checks that the
entry point is visible (:func:`check_installed`) before starting SGLang.

Which batches the kernel draws (:func:`kernel_draws`): every batch with a sampled row, unless
a feature the kernel does not implement is on (min-p, per-request seeds under deterministic
inference, sampling masks, custom logit processors, RL on-policy logprobs, the Ascend backend);
those batches, and batches that are all greedy (an argmax), go to SGLang's own sampler with
FlashInfer (``FALLBACK``). With ``return_logprob`` the step still needs the log-probabilities of
every row: ``log_softmax`` of the tempered logits (SGLang's own values: ``log(softmax)``), and the
kernel draws from the same tempered logits.

RNG: a Philox counter per process, keyed by SGLang's ``random_seed`` and a call counter, so the
ranks of a tensor-parallel group draw the same tokens from the same logits.

Measured on one H200 (kernels/README.md, "Does it pay end to end?"): 8% less GPU kernel time in
the sampler profile, no faster end to end (raw engine 1.003x FlashInfer's wall, majority@16
1.027x); so it is opt-in and SGLang's FlashInfer sampler stays the default.

``SRCA_SAMPLER_SWITCH=<file>`` (for A/B benchmarks on one engine): the sampler reads the file
(at most every 0.2 s) and uses SGLang's own sampler while it holds ``flashinfer``.
"""
from __future__ import annotations

import os
import time
from typing import Any

BACKEND = "srca"
FALLBACK = "flashinfer"
ENTRY_POINT_GROUP = "sglang.srt.plugins"
SWITCH_ENV = "SRCA_SAMPLER_SWITCH"


def register() -> None:
    """The ``sglang.srt.plugins`` entry point: make ``sampling_backend="srca"`` known to SGLang,
    start the garbage-collection probe when ``SRCA_GC_LOG`` is set (:mod:`.gc_probe`), set the
    collector's thresholds when ``SRCA_SGLANG_GC_THRESHOLD`` is, and start the stack sampler when
    ``SRCA_STACKS`` is (:mod:`.stack_probe`)."""
    from sglang.srt.layers.sampler import register_sampler_backend

    from srca.engines import gc_probe, stack_probe

    gc_probe.install_from_env()
    gc_probe.threshold_from_env()
    stack_probe.install_from_env()
    register_sampler_backend(BACKEND, make_sampler)


def check_installed() -> None:
    """Raise a clear error if SGLang's scheduler processes would not find the plugin (srca run
    from a source tree without ``pip install``: entry points come from installed metadata)."""
    from importlib.metadata import entry_points

    if not any(ep.value.startswith(__name__ + ":") for ep in entry_points(group=ENTRY_POINT_GROUP)):
        raise RuntimeError(f"sampling_backend={BACKEND!r} needs srca installed (pip install -e . or a wheel): "
                           f"SGLang finds the sampler through the entry point group {ENTRY_POINT_GROUP!r}")
    allowed = os.environ.get("SGLANG_PLUGINS")
    if allowed and "srca" not in {x.strip() for x in allowed.split(",")}:
        raise RuntimeError(f"SGLANG_PLUGINS={allowed!r} leaves out srca's plugin; add 'srca' to it")


def kernel_draws(sampler: Any, info: Any, return_logprob: bool, original_logprob: bool = False) -> bool:
    """Whether the kernel draws this batch (else SGLang's own sampler does). ``sampler``: the
    SGLang ``Sampler`` (its mode flags); ``info``: the batch's ``SamplingBatchInfo``."""
    if info.is_all_greedy or info.need_min_p_sampling or info.sampling_seed is not None:
        return False
    if info.has_custom_logit_processor or any(info.return_sampling_masks or []):
        return False
    if sampler.rl_on_policy_target is not None or sampler.use_ascend_backend:
        return False
    if return_logprob and (original_logprob or sampler.enable_deterministic):
        return False
    return True


class Switch:
    """The A/B switch file (``SRCA_SAMPLER_SWITCH``): True while the kernel should draw."""

    def __init__(self, path: str | None, period_s: float = 0.2) -> None:
        self.path = path
        self.period_s = period_s
        self._next = 0.0
        self._on = True

    def on(self) -> bool:
        if not self.path:
            return True
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.period_s
            try:
                with open(self.path) as f:
                    self._on = f.read().strip() != FALLBACK
            except OSError:
                self._on = True
        return self._on


def draw(logits, info, seed: int, offset: int, return_logprob: bool):
    """The kernel's step: (tokens [B] int64, logprobs [B, V] or None). Invalid rows (no finite
    logit, which SGLang's NaN check before this should leave none of) draw token 0."""
    from ..kernels import sample

    top_k, top_p = info.top_ks, info.top_ps
    if return_logprob:
        logits = logits.div_(info.temperatures)
        logprobs = logits.log_softmax(dim=-1)
        tokens = sample(logits, 1.0, top_k, top_p, seed=seed, offset=offset)
    else:
        logprobs = None
        tokens = sample(logits, info.temperatures.view(-1), top_k, top_p, seed=seed, offset=offset)
    return tokens.clamp_(min=0), logprobs


def make_sampler():
    """SGLang's sampler factory for ``"srca"`` (runs in the scheduler process)."""
    from sglang.srt.layers import sampler as sglang_sampler
    from sglang.srt.runtime_context import get_exec, get_server_args

    class SrcaSampler(sglang_sampler.Sampler):
        def __init__(self) -> None:
            super().__init__()
            args = get_server_args()
            self.seed = int(getattr(args, "random_seed", 0) or 0) % (1 << 31)
            self.calls = 0
            self.switch = Switch(os.environ.get(SWITCH_ENV))

        def forward(self, logits_output, sampling_info, return_logprob, top_logprobs_nums, token_ids_logprobs,
                    positions):
            if not (self.switch.on() and kernel_draws(self, sampling_info, return_logprob,
                                                      sglang_sampler.SGLANG_RETURN_ORIGINAL_LOGPROB)):
                return super().forward(logits_output, sampling_info, return_logprob, top_logprobs_nums,
                                       token_ids_logprobs, positions)
            logits = self._preprocess_logits(logits_output.next_token_logits, sampling_info)
            self.calls += 1
            tokens, logprobs = draw(logits, sampling_info, self.seed, self.calls, return_logprob)
            if return_logprob:
                self.output_logprob_processor.compute_logprobs(
                    logprobs, top_logprobs_nums, token_ids_logprobs, tokens).write_output_to(logits_output)
            self._sync_token_ids_across_tp(tokens, sampling_info)
            return tokens

        def _sample_from_probs(self, probs, sampling_info, positions, simple_sampling_case):
            # SGLang's own path reads the backend name to pick FlashInfer; it is "srca" here
            with get_exec().kernel.override(sampling_backend=FALLBACK):
                return super()._sample_from_probs(probs, sampling_info, positions, simple_sampling_case)

    return SrcaSampler()
