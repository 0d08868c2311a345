"""Scripts for the ScriptedEngine used across unit tests."""
from __future__ import annotations

import contextlib
from unittest import mock


@contextlib.contextmanager
def step_by_step():
    """srca's lineages grow one step per engine call inside this block, whatever the config
    (the step-by-step twin the whole-lineage search must equal)."""
    with mock.patch("srca.methods.lineage.goes_whole", lambda config, token_mode: False):
        yield


def stepwise(answers_by_step=None, final=None, steps_to_finish=3):
    """A script for every method. Step requests (stop at the delimiter) write
    ``Step k.<i>\\n\\n``; at ``steps_to_finish`` a path writes a boxed ``final(i)`` and ends.
    A probe (prompt ending in the cue) answers ``answers_by_step(k, tag)``, where k is the
    number of steps so far and tag the sample index of the last step. Whole-path requests
    (no stop strings) write all steps at once; CoT-decoding's first-token request gets two
    alternatives. pot's prompt (it asks for a "Python program") gets a program that prints
    ``final(i)``."""
    answers_by_step = answers_by_step or (lambda k, tag: "7")
    final = final or (lambda tag: "7")

    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        if body.endswith("\\boxed{"):
            steps = body.count("\n\n") - 1  # the cue itself follows a blank line
            last = body.rsplit("Step", 1)[-1].split(".")  # a step the budget cut may lack its ".i"
            tag = last[1].split("\n")[0] if "Step" in body and len(last) > 1 else "0"
            return f"{answers_by_step(steps, tag)}}}."
        if req.top_logprobs and req.max_new_tokens == 1:
            return ("S", -0.1, [[(ord("S"), -0.1), (ord("T"), -2.5)]])
        if "Python program" in prompt:  # pot's prompt (its samples stop at ```output): a program printing the answer
            text = f"Add them.\n```python\nprint({final(str(i))!r})\n```"
            return (text, -0.05, [[(ord(c), -0.05), (ord("x"), -3.0)] for c in text])
        if not req.stop:
            text = "".join(f"Step {k}.{i}\n\n" for k in range(1, steps_to_finish)) + f"Done \\boxed{{{final(str(i))}}}"
            top = [[(ord(c), -0.05), (ord("x"), -3.0)] for c in text]
            return (text, -0.05, top)
        k = body.count("\n\n")
        if k + 1 >= steps_to_finish:
            return f"Done {k + 1}.{i} \\boxed{{{final(str(i))}}}"
        return f"Step {k + 1}.{i}\n\nignored tail"

    return script
