"""benchmarks/gpu_real.sh's JIT caches: a carried FlashInfer cache must not be rebuilt, and
save-jit sends what fits.

FlashInfer compiles its kernels with ninja (gcc-style depfiles, a build log). A cache carried to a
fresh machine holds objects older than that machine's freshly installed sources, so ninja rebuilt
them all (the eleventh GPU run: 147 s of nvcc with the same command hashes). This builds a small
C library the same way, carries the build folder to a "fresh install" (sources newer than the
objects), checks that ninja would rebuild it, then that ``gpu_real.sh backdate-jit`` makes ninja
take it as current.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_ninja = pytest.mark.skipif(not (shutil.which("ninja") and shutil.which("gcc")), reason="needs ninja and gcc")

BUILD = """ninja_required_version = 1.3
cflags = -isystem {site}/flashinfer/data/include
rule compile
  command = gcc $cflags -MMD -MF $out.d -fPIC -c $in -o $out
  depfile = $out.d
  deps = gcc
rule link
  command = gcc -shared $in -o $out
build kern.o: compile {site}/flashinfer/data/csrc/kern.c
build kern.so: link kern.o
default kern.so
"""


def _install(site: Path) -> None:
    """The session's install: FlashInfer's sources, dated now."""
    (site / "flashinfer/data/include").mkdir(parents=True, exist_ok=True)
    (site / "flashinfer/data/csrc").mkdir(parents=True, exist_ok=True)
    (site / "flashinfer/data/include/kern.h").write_text("static inline int twice(int x) { return 2 * x; }\n")
    (site / "flashinfer/data/csrc/kern.c").write_text('#include "kern.h"\nint kern(int x) { return twice(x); }\n')
    (site / "flashinfer/__init__.py").write_text("")


def _ninja_dry(build: Path) -> str:
    out = subprocess.run(["ninja", "-n", "-C", str(build)], capture_output=True, text=True, check=True)
    return out.stdout


@needs_ninja
def test_backdated_sources_keep_a_carried_cache(tmp_path):
    site, build = tmp_path / "site", tmp_path / "cache/cached_ops/kern"
    _install(site)
    build.mkdir(parents=True)
    (build / "build.ninja").write_text(BUILD.format(site=site))
    subprocess.run(["ninja", "-C", str(build)], capture_output=True, check=True)
    assert "no work to do" in _ninja_dry(build)
    # the cache is carried (tar keeps its dates); the next machine installs the sources afresh
    old = time.time() - 3600
    for f in build.iterdir():
        os.utime(f, (old, old))
    time.sleep(0.01)
    _install(site)
    assert "no work to do" not in _ninja_dry(build)  # what the eleventh run paid for
    env = {**os.environ, "JIT_SITE": str(site), "RW_DIR": str(tmp_path / "rw")}
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_real.sh"), "backdate-jit"], env=env,
                         capture_output=True, text=True, check=True)
    assert "1 folders" in out.stdout
    assert "no work to do" in _ninja_dry(build)
    assert (site / "flashinfer/__init__.py").stat().st_mtime > old  # Python files keep their dates (pyc)


def test_save_jit_sends_the_driver_cache_only_while_it_fits(tmp_path):
    """save-jit: Triton's and FlashInfer's caches always; the CUDA driver's ComputeCache beside
    them while the file stays under 40 MiB, else the file goes without it."""
    import tarfile

    home, out = tmp_path / "home", tmp_path / "out"
    (home / ".triton/cache/k").mkdir(parents=True)
    (home / ".triton/cache/k/kernel.cubin").write_bytes(b"cubin")
    (home / ".nv/ComputeCache/a").mkdir(parents=True)
    (home / ".nv/ComputeCache/a/small").write_bytes(b"ptx jit")
    out.mkdir()
    env = {**os.environ, "HOME": str(home), "OUT": str(out), "RW_DIR": str(tmp_path / "rw")}

    def names() -> set[str]:
        subprocess.run(["bash", str(ROOT / "benchmarks/gpu_real.sh"), "save-jit"], env=env, check=True,
                       capture_output=True, text=True)
        with tarfile.open(out / "jit-cache.tgz") as t:
            return {m.name for m in t.getmembers() if m.isfile()}

    assert names() == {".triton/cache/k/kernel.cubin", ".nv/ComputeCache/a/small"}
    (home / ".nv/ComputeCache/a/big").write_bytes(os.urandom(41 * 1024 * 1024))  # does not compress
    assert names() == {".triton/cache/k/kernel.cubin"}
