"""benchmarks/loop_rules.py over a bank recorded from a scripted engine: samples that loop are
stopped where the rule says, finished ones are not, and the written bank replays."""
from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from srca.config import SearchConfig
from srca.engines.fake import ScriptedEngine
from srca.eval.bank import Policy, RecordSettings, read_bank, record_chunk, replay_lineages, unpack_ids
from srca.eval.data import Problem

ROOT = Path(__file__).resolve().parents[1]
HEAD = "".join(chr(0x4E00 + k) for k in range(150))  # 150 distinct tokens (the engine's tokens are characters)
LOOP = HEAD + "abcdefghij" * 60  # then a 10-token block over and over, past the 512-token limit


def _script(prompt, req, i):
    if req.n > 1 and i % 2 == 0:  # samples 0, 2: a loop cut at the limit
        return LOOP
    if req.n > 1:  # samples 1, 3: a short solution
        return "Add them.\n\nThe answer is \\boxed{7}."
    return "7}"  # a checkpoint probe


def _bank(tmp_path: Path) -> Path:
    probs = [Problem(unique_id=f"test/p/{k}.json", problem=f"q{k}", answer="7") for k in range(3)]
    s = RecordSettings(samples=4, topk=0, verify=False, config=SearchConfig(prompt="math", max_new_tokens=512))
    lines = asyncio.run(record_chunk(ScriptedEngine(_script), probs, s))
    d = tmp_path / "bank"
    d.mkdir()
    with gzip.open(d / "chunk_000.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(ln) + "\n" for ln in lines)
    return d


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/loop_rules.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_loops_are_stopped_where_the_rule_says(tmp_path):
    bank = _bank(tmp_path)
    (line,) = read_bank([bank / "chunk_000.jsonl.gz"])[:1]
    assert [s["finish"] for s in line["samples"]] == ["length", "stop", "length", "stop"]
    assert unpack_ids(line["samples"][0]["ids"]) == [ord(c) for c in LOOP[:512]]
    out = tmp_path / "r.json"
    r = _run(str(bank), "--n", "4", "--rule", '{"share": 0.7}', "--rule", '{"share": 0.9}', "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rules"]
    # at 256 the n-grams starting in [128, 249) repeat from 160 on (89 of 121, 0.74): share 0.7 stops
    # there; 0.9 at 288 (all of [160, 281))
    for row, p in zip(rows, (256, 288)):
        a = row["halves"]["all"]
        assert a["cut_samples"] == 6 and a["cut_stopped_share"] == 1.0 and a["cut_stopped_at_mean"] == p
        assert a["false_stops"] == 0 and a["finished_samples"] == 6
        total = 3 * (2 * 512 + 2 * line["samples"][1]["tokens"])
        assert a["tokens_saved_share"] == round(6 * (512 - p) / total, 4)
        assert a["majority@4"] == a["majority@4_with_stops"] == 1.0 and a["won"] == a["lost"] == 0
    assert "| share 0.7 from 256 | all | 100.0% of 6 | 256.0 |" in r.stdout


def test_the_written_bank_replays_with_the_stopped_samples_cut(tmp_path):
    bank = _bank(tmp_path)
    out = tmp_path / "cut"
    r = _run(str(bank), "--n", "4", "--rule", '{"share": 0.9}', "--write-bank", str(out))
    assert r.returncode == 0, r.stderr
    before = read_bank([bank / "chunk_000.jsonl.gz"])
    after = read_bank([out / "chunk_000.jsonl.gz"])
    for b, a in zip(before, after):
        assert [s["tokens"] for s in a["samples"]] == [288, b["samples"][1]["tokens"], 288, b["samples"][3]["tokens"]]
        assert a["samples"][0]["answer"] is None and a["samples"][1] == b["samples"][1]
        assert sum(st[0] for st in a["samples"][0]["steps"]) <= 288
        pol = Policy(n=4, waves=1)
        assert replay_lineages(a, [0, 1, 2, 3], pol).answer == "7"
        assert replay_lineages(a, [0, 1, 2, 3], pol).tokens < replay_lineages(b, [0, 1, 2, 3], pol).tokens


def test_bad_input_is_refused_by_name(tmp_path):
    bank = _bank(tmp_path)
    r = _run(str(bank), "--rule", '{"share": 2}')
    assert r.returncode == 2 and "--rule" in r.stderr and "LoopRule.share" in r.stderr
    r = _run(str(bank), "--rule", '{"nope": 1}')
    assert r.returncode == 2 and "--rule" in r.stderr
    r = _run(str(bank), "--write-bank", str(tmp_path / "x"))
    assert r.returncode == 2 and "--write-bank" in r.stderr
    r = _run(str(tmp_path / "nothing"))
    assert r.returncode == 2 and "bank" in r.stderr
    old = tmp_path / "old"
    old.mkdir()
    lines = read_bank([bank / "chunk_000.jsonl.gz"])
    for ln in lines:
        for s in ln["samples"]:
            del s["ids"]
    (old / "chunk_000.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    r = _run(str(old))
    assert r.returncode == 1 and "token ids" in r.stderr and os.linesep not in r.stderr.strip()


def test_the_cut_bank_is_scored_against_majority_on_the_bank_as_recorded(tmp_path):
    # bank_replay.py CUT --reference BANK: majority voting (the bar, the token ratios, the paired
    # wins and losses) is the recorded bank's; --wave-grid picks srca-margin's waves on the tune half
    bank = _bank(tmp_path)
    cut = tmp_path / "cut"
    assert _run(str(bank), "--n", "4", "--rule", '{"share": 0.9}', "--write-bank", str(cut)).returncode == 0
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "benchmarks/bank_replay.py", str(cut), "--n", "4", "--reference", str(bank),
                        "--wave-grid", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {(x["half"], x["policy"]): x for x in json.loads(out.read_text())["rows"]}
    short = read_bank([bank / "chunk_000.jsonl.gz"])[0]["samples"][1]["tokens"]
    assert rows[("all", "majority")]["tokens"] == 2 * 512 + 2 * short  # the loops ran to the limit there
    assert rows[("all", "majority")]["accuracy"] == 100.0
    pick = rows[("all", "wave-grid")]
    assert pick["settings"]["wave_margin"] > 0 and pick["settings"]["confidence"] == "mean"
    assert pick["accuracy"] == 100.0 and pick["token_ratio"] == round(pick["tokens"] / (2 * 512 + 2 * short), 3) < 1
    assert "wave-grid pick:" in r.stdout
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "chunk_000.jsonl").write_text(json.dumps(read_bank([bank / "chunk_000.jsonl.gz"])[0]) + "\n")
    bad = subprocess.run([sys.executable, "benchmarks/bank_replay.py", str(cut), "--reference", str(elsewhere)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--reference" in bad.stderr and "2 problems missing" in bad.stderr


def test_draws_of_every_sample_differ_only_in_order_when_shuffled():
    # bank_replay.py --draws K --shuffle: at n = the bank's samples each later draw is the same
    # samples in another order (the order srca's waves start them in); unshuffled, all the same
    from srca.eval.bank import subsets

    line = {"unique_id": "u", "samples": [{}] * 6}
    plain = list(subsets(line, 6, 4))
    assert plain == [list(range(6))] * 4
    shuffled = list(subsets(line, 6, 4, shuffle=True))
    assert shuffled[0] == list(range(6)) and all(sorted(d) == list(range(6)) for d in shuffled)
    assert len({tuple(d) for d in shuffled}) > 1
    assert [sorted(d) for d in subsets(line, 4, 5, shuffle=True)] == list(subsets(line, 4, 5))  # same picks


def test_a_banks_files_are_its_chunks_and_not_one_being_written(tmp_path):
    # srca.eval.bank.bank_files: every bank tool reads a folder (or one file) through it
    from srca.eval.bank import bank_files

    for name in ("chunk_001.jsonl.gz", "chunk_000.jsonl.gz", "chunk_002.jsonl", "chunk_003.jsonl.gz.tmp", "notes.txt"):
        (tmp_path / name).write_text("")
    assert bank_files(str(tmp_path)) == [str(tmp_path / f"chunk_00{k}.jsonl{'' if k == 2 else '.gz'}") for k in (0, 1, 2)]
    assert bank_files(str(tmp_path / "chunk_000.jsonl.gz")) == [str(tmp_path / "chunk_000.jsonl.gz")]
