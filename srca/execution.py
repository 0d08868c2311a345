"""Running a program the model wrote (program-of-thought, the ``pot`` method), in a child process
with limits.

The program is the last fenced ```python block of a sample (:func:`extract_program`). It runs
with this process's interpreter and packages (``python -s``: no user site; ``PYTHONPATH`` kept
where set, nothing else of the environment) in a fresh temporary folder, its standard input
closed, in a session of its own, under resource limits (:class:`ExecLimits`: address space,
CPU seconds, file size, no core files) and a wall clock timeout after which its whole process
group is killed. Its answer is the last non-empty line it printed (:func:`program_answer`).
The pot methods fork each program from a warm interpreter instead (:mod:`srca.warm_exec`), under
the same limits; this cold run is its fallback.

This is a guard against mistakes, not a security boundary: the child runs as the same user and
can reach the network and the filesystem. Run the ``pot`` method only on a machine (or in a
container) where model-written code may run; the service refuses it unless its operator sets
``SRCA_ALLOW_CODE=1`` (:data:`ALLOW_ENV`).
"""
from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ALLOW_ENV = "SRCA_ALLOW_CODE"
_PYTHON_TAGS = ("python", "py", "python3")
# where a program sample stops: Qwen's coder models write a ```python block, then ```output and
# the output they expect (tool-integrated reasoning's format), then go on reasoning about an
# output they made up, often until the token limit
PROGRAM_STOP = ("```output",)
_BOXED = re.compile(r"\\boxed\{(.*)\}\s*$", re.S)
MAX_ANSWER_CHARS = 200


@dataclass(frozen=True)
class ExecLimits:
    """Limits of one program run. ``timeout_s``: wall clock; ``cpu_s``: CPU time (RLIMIT_CPU);
    ``memory_mb``: address space (RLIMIT_AS); ``output_bytes``: what is kept of each stream;
    ``file_mb``: the largest file it may write (RLIMIT_FSIZE)."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 2048
    output_bytes: int = 65536
    file_mb: int = 1

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb", "output_bytes", "file_mb"):
            v = getattr(self, name)
            kinds = (int, float) if name == "timeout_s" else (int,)
            if isinstance(v, bool) or not isinstance(v, kinds):
                raise TypeError(f"ExecLimits.{name}: a number{'' if name == 'timeout_s' else ' (int)'}, got {v!r}")
            if not v > 0:
                raise ValueError(f"ExecLimits.{name}: must be > 0, got {v!r}")
        if self.timeout_s > 600:
            raise ValueError(f"ExecLimits.timeout_s: at most 600, got {self.timeout_s!r}")


@dataclass(frozen=True)
class ExecResult:
    """What a program run gave: its output (cut to the limit), exit status (None: killed at the
    timeout) and whether the timeout ended it."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The closed fenced blocks of ``text`` as ``(tag, body)``, read line by line: a line that
    starts with three backticks opens a block (its tag the rest of the line, lower case) or
    closes the open one; a block still open at the end (a sample cut by its token limit) is
    none. Each body is dedented (a block inside a list item is indented with it)."""
    out: list[tuple[str, str]] = []
    tag: str | None = None
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        head = line.strip()
        if not head.startswith("```"):
            if tag is not None:
                body.append(line)
            continue
        if tag is None:
            tag, body = head[3:].strip().lower(), []
        else:
            out.append((tag, textwrap.dedent("".join(body))))
            tag = None
            rest = head[3:].strip()
            if rest:  # a tagged fence in an open block closes it and opens the next (a model that
                tag, body = rest.lower(), []  # writes ```output without closing its code first)
    return out


def extract_program(text: str) -> str | None:
    """The program of ``text``: its last closed block tagged ``python`` (or ``py``,
    ``python3``), else its last untagged one, or None. Blocks of other tags (``output``, the
    interpreter output Qwen's coder models write after their code) are not programs."""
    if not isinstance(text, str):
        raise TypeError(f"extract_program: text must be a str, got {type(text).__name__}")
    blocks = [(t, b) for t, b in fenced_blocks(text) if b.strip()]
    tagged = [b for t, b in blocks if t in _PYTHON_TAGS]
    if tagged:
        return tagged[-1]
    bare = [b for t, b in blocks if not t]
    return bare[-1] if bare else None


def program_of(text: str) -> str | None:
    """The program a sample's ``text`` gives (None: it wrote none): its last fenced block
    (:func:`extract_program`), where that never calls ``print`` and ends in an expression, with
    that expression printed, as a notebook cell shows it (models write ``result`` or ``8`` as
    the last line of a block without printing it)."""
    code = extract_program(text)
    if code is None:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code  # it fails as it is, and says why
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    if any(isinstance(n, ast.Name) and n.id == "print" for n in ast.walk(tree)):
        return code
    last = tree.body[-1]
    lines = code.splitlines(keepends=True)
    head = "".join(lines[:last.lineno - 1]) + lines[last.lineno - 1][:last.col_offset]
    return head + f"print({ast.get_source_segment(code, last.value)})\n"


_INTEGRAL_FLOAT = re.compile(r"-?\d+\.0+")
# "Median: 14.0", "The smallest value of |m - n| is 3": a label of words, then the value
_LABEL = re.compile(r":\s+|\s+is:?\s+")
_WORD = re.compile(r"[A-Za-z]{2}")
MAX_LABELLED_CHARS = 60


def program_answer(result: ExecResult) -> str | None:
    """The answer a run printed: its last non-empty line read by :func:`read_printed`; None when
    it failed or printed nothing."""
    if not result.ok:
        return None
    lines = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
    return read_printed(lines[-1]) if lines else None


def read_printed(line: str) -> str | None:
    """The answer in one printed line: ``$`` and an enclosing ``\\boxed{}`` taken off; after a
    label of words (``Median: 14.0``, ``The answer is 5``) only the value, where it is short; a
    float of integral value as the integer (Python prints 72.0 where a chain of thought writes
    72); Python's or SymPy's syntax as LaTeX (``5*r**5`` as ``5 r^{5}``:
    :func:`srca.pyexpr.to_latex`). None for an empty line or one longer than
    :data:`MAX_ANSWER_CHARS`."""
    ans = line.strip().strip("$ ").strip()
    m = _BOXED.search(ans)
    if m:
        ans = m.group(1).strip()
    parts = _LABEL.split(ans)
    if len(parts) > 1 and _WORD.search(parts[0]):
        value = parts[-1].strip().rstrip(".").strip()
        if 0 < len(value) <= MAX_LABELLED_CHARS:
            ans = value
    if _INTEGRAL_FLOAT.fullmatch(ans):
        ans = ans.split(".")[0]
    if not ans or len(ans) > MAX_ANSWER_CHARS:
        return None
    from .pyexpr import to_latex

    return to_latex(ans) or ans


# sets the limits in the child, then execs the program: no ``preexec_fn``, which is unsafe in a
# process with threads (the engines' and the event loop's)
_LAUNCH = ("import os, resource, sys\n"
           "m, c, f = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])\n"
           "resource.setrlimit(resource.RLIMIT_AS, (m, m))\n"
           "resource.setrlimit(resource.RLIMIT_CPU, (c, c + 1))\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (f, f))\n"
           "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
           "os.execv(sys.executable, [sys.executable, '-s', sys.argv[4]])\n")


def clean_env() -> dict[str, str]:
    """The whole environment a program gets: ``PATH``, ``PYTHONPATH`` where set (the packages
    this process sees, sympy among them), a locale, a fixed hash seed and one thread for the
    numeric libraries."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def run_program(code: str, limits: ExecLimits | None = None) -> ExecResult:
    """Run ``code`` with ``python -s`` in a temporary folder under ``limits`` (blocking; see the
    module's note on what this guards against)."""
    if not isinstance(code, str):
        raise TypeError(f"run_program: code must be a str, got {type(code).__name__}")
    limits = limits or ExecLimits()
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="srca-pot-") as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        argv = [sys.executable, "-s", "-c", _LAUNCH, str(limits.memory_mb * 1024 * 1024), str(limits.cpu_s),
                str(limits.file_mb * 1024 * 1024), path]
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
    cut = limits.output_bytes
    return ExecResult(stdout=out[-cut:].decode("utf-8", "replace"), stderr=err[-cut:].decode("utf-8", "replace"),
                      returncode=None if timed_out else proc.returncode, timed_out=timed_out)


_POOL: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The threads that run programs (one child process each, so at most one program per CPU
    core runs at a time); made on first use."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="srca-pot")
    return _POOL


def allowed() -> bool:
    """Whether the operator allowed model-written code to run (``SRCA_ALLOW_CODE=1``)."""
    return os.environ.get(ALLOW_ENV, "").strip() == "1"
