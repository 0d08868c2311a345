"""benchmarks/_common.write_result: one JSON per benchmark run, gzipped where the path says so."""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from _common import write_result  # noqa: E402


def test_a_result_is_plain_json_or_gzipped_json_by_its_name(tmp_path, capsys):
    args = argparse.Namespace(n=16, out="x")
    write_result(str(tmp_path / "a.json"), "demo", args, rows=[1, 2])
    write_result(str(tmp_path / "sub" / "b.json.gz"), "demo", args, rows=[1, 2])
    plain = json.loads((tmp_path / "a.json").read_text())
    with gzip.open(tmp_path / "sub" / "b.json.gz", "rt") as f:
        packed = json.load(f)
    for res in (plain, packed):
        assert res["benchmark"] == "demo" and res["args"] == {"n": 16, "out": "x"} and res["rows"] == [1, 2]
        assert "cores" in res["machine"] and res["time"]
    assert (tmp_path / "sub" / "b.json.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert f"# wrote {tmp_path / 'sub' / 'b.json.gz'}" in capsys.readouterr().out
