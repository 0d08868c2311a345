"""SGLang's custom logit processor for srca's loop stops (``SGLangEngine(loop_stops=True)``).

Imported only where SGLang is: the class derives from SGLang's ``CustomLogitProcessor``, which
serializes it by reference (dill), so SGLang's scheduler process imports this module to run it.
The work is :func:`srca.engines.sglang_common.force_loop_stops` (no SGLang there, tested on the
CPU); :func:`srca.engines.sglang_common.to_result` reports the stopped samples.
"""
from __future__ import annotations

from typing import Any

from sglang.srt.sampling.custom_logit_processor import CustomLogitProcessor

from .sglang_common import force_loop_stops


class LoopStopProcessor(CustomLogitProcessor):
    """Forces EOS as the next token of every sample whose rule says it is in a loop now."""

    def __call__(self, logits: Any, custom_param_list: list[dict[str, Any]] | None = None) -> Any:
        return force_loop_stops(logits, custom_param_list or [])
