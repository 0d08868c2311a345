import gzip
import json

from srca.eval.records import read_records


def test_stored_gzip_results_read_like_plain_ones(tmp_path):
    recs = [{"unique_id": f"u{i}", "method": "cot", "n": 1, "correct": i % 2 == 0} for i in range(3)]
    body = "".join(json.dumps(r) + "\n" for r in recs).encode()
    (tmp_path / "a.jsonl").write_bytes(body)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(body))
    assert read_records(tmp_path / "a.jsonl.gz") == read_records(tmp_path / "a.jsonl") == recs
