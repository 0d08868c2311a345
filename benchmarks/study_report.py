"""Issue 16's study table: eval CLI result lines and sample-bank replays, side by side, per half.

    python benchmarks/study_report.py --bank BANK_DIR --evals benchmarks/results/math500_h200 \
        benchmarks/results/srca_study_h200/evals --out benchmarks/results/srca_study_h200/study.json \
        --plot benchmarks/results/srca_study_h200/accuracy_vs_tokens.png

Two kinds of rows, never mixed in one comparison:

* **cli**: ``srca eval`` result lines (``*.jsonl`` / ``*.jsonl.gz``; one file per method and n),
  compared, problem by problem, with the CLI ``majority`` at n = 16 of the *same folder* (the
  same run), or of the first folder that has one;
* **bank**: policies replayed over the sample bank (:mod:`srca.eval.bank`; the replay is the online
  search token for token, a test checks it), compared with majority voting over the same samples.

For every row and half (``tune`` / ``test`` by a hash of ``unique_id``; ``all``): accuracy with its
95% interval, mean generated tokens per problem (probes included), the token ratio and the paired
wins and losses against majority@16. The plot draws accuracy against tokens, majority's curve
from the bank (n = 1 .. K) and the CLI runs, for the test half.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from bank_replay import score  # noqa: E402

from srca.eval.bank import Policy, bank_files, half, read_bank  # noqa: E402
from srca.eval.variants import config_for  # noqa: E402
from srca.eval.report import ci95, save_figure  # noqa: E402

HALVES = ("tune", "test", "all")
# bank rows: name -> SearchConfig variant whose policy is replayed
BANK_POLICIES = ["srca", "srca-nowaves", "srca-stepwise", "srca-settle", "srca-consensus", "srca-uniform", "srca-keep90", "srca-nockpt"]


def read_lines(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(x) for x in f if x.strip()]


def cli_runs(folders: list[str], paper_tree: list[str]) -> list[dict]:
    """One run per result file: {folder, method, n, by_uid: {uid: (correct, tokens)}}. In the
    folders of ``paper_tree`` (runs from before the lineage default), ``srca`` is the paper's
    tree and is named ``srca-paper``."""
    runs = []
    for folder in folders:
        old = os.path.normpath(folder) in {os.path.normpath(x) for x in paper_tree}
        files = sorted(glob.glob(os.path.join(folder, "*.jsonl*")))
        for path in files:
            lines = [x for x in read_lines(path) if "correct" in x and "usage" in x]
            if not lines:
                continue
            runs.append({"folder": folder, "file": os.path.basename(path), "method": "srca-paper" if old and lines[0]["method"] == "srca" else lines[0]["method"],
                         "n": lines[0]["n"],
                         "by_uid": {x["unique_id"]: (bool(x["correct"]), x["usage"]["generated_tokens"]) for x in lines}})
    return runs


def row(name: str, source: str, n: int, per: dict[str, tuple[bool, float]], ref: dict[str, tuple[bool, float]] | None,
        uids: list[str]) -> dict | None:
    """Accuracy, tokens and paired record against ``ref`` over the problems of ``uids`` both hold."""
    uids = [u for u in uids if u in per and (ref is None or u in ref)]
    if not uids:
        return None
    k = sum(per[u][0] for u in uids)
    acc = k / len(uids)
    toks = sum(per[u][1] for u in uids) / len(uids)
    out = {"method": name, "source": source, "n": n, "problems": len(uids), "accuracy": round(100 * acc, 2),
           "ci95": [round(100 * max(0.0, acc - ci95(acc, len(uids))), 1),
                    round(100 * min(1.0, acc + ci95(acc, len(uids))), 1)],
           "tokens": round(toks, 1)}
    if ref is not None:
        rt = sum(ref[u][1] for u in uids) / len(uids)
        out["token_ratio"] = round(toks / rt, 3) if rt else None
        out["wins"] = sum(1 for u in uids if per[u][0] and not ref[u][0])
        out["losses"] = sum(1 for u in uids if ref[u][0] and not per[u][0])
    return out


def bank_per(lines: list[dict], policy: Policy | None, n: int) -> dict[str, tuple[bool, float]]:
    """{uid: (correct, tokens)} of a replayed policy (None: majority) on the first n samples."""
    out = {}
    for ln in lines:
        r = score([ln], policy, n, 1)
        out[ln["unique_id"]] = (bool(r["correct"][0]), r["tokens"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", default=None, help="bank folder (chunk_*.jsonl.gz)")
    ap.add_argument("--evals", nargs="*", default=[], help="folders of eval result lines")
    ap.add_argument("--paper-tree", nargs="*", default=[], help="eval folders whose 'srca' is the paper's tree")
    ap.add_argument("--bank-n", default="4,8,16", help="budgets of the bank's SRCA rows")
    ap.add_argument("--split-salt", default="", help="split the problems by hash(unique_id + salt) instead")
    ap.add_argument("--tuned-on", default=None, help="file of the unique_ids the rules were picked on (one a line): "
                    "they are the tune half, every other problem the test half")
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()
    tuned = None
    if a.tuned_on:
        with open(a.tuned_on) as f:
            tuned = {x.strip() for x in f if x.strip()}

    def in_half(uid: str, h: str) -> bool:
        if h == "all":
            return True
        return ("tune" if uid in tuned else "test") == h if tuned is not None else half(uid, a.split_salt) == h

    rows: list[dict] = []
    curves: dict[str, list[tuple[float, float]]] = {}
    uids_all: list[str] = []
    if a.bank:
        lines = read_bank(bank_files(a.bank))
        k = min(len(ln["samples"]) for ln in lines)
        uids_all = [ln["unique_id"] for ln in lines]
        maj = {n: bank_per(lines, None, n) for n in sorted({1, 2, 4, 8, 16, k} | {int(x) for x in a.bank_n.split(",")})
               if n <= k}
        ref_n = 16 if 16 in maj else max(maj)
        for name in BANK_POLICIES:
            for n in [int(x) for x in a.bank_n.split(",")]:
                pol = Policy.from_config(config_for(name, n))
                per = bank_per(lines, pol, n)
                for h in HALVES:
                    u = [x for x in uids_all if in_half(x, h)]
                    r = row(name, "bank", n, per, maj[ref_n], u)
                    if r:
                        rows.append({"half": h, **r, "vs": f"bank majority@{ref_n}"})
                    if r and h == "test":
                        curves.setdefault(f"{name} (bank)", []).append((r["tokens"], r["accuracy"]))
        for n, per in maj.items():
            for h in HALVES:
                u = [x for x in uids_all if in_half(x, h)]
                r = row("majority", "bank", n, per, maj[ref_n], u)
                if not r:
                    continue
                rows.append({"half": h, **r, "vs": f"bank majority@{ref_n}"})
                if h == "test":
                    curves.setdefault("majority (bank)", []).append((r["tokens"], r["accuracy"]))
    runs = cli_runs(a.evals, a.paper_tree)
    for run in runs:
        same = [r for r in runs if r["folder"] == run["folder"] and r["method"] == "majority" and r["n"] == 16]
        ref = same or [r for r in runs if r["method"] == "majority" and r["n"] == 16]
        # and against majority at the same n of the same run, where there is one (the budget-matched pairing)
        at_n = [r for r in runs if r["folder"] == run["folder"] and r["method"] == "majority" and r["n"] == run["n"]
                and run["method"] != "majority"]
        uids = uids_all or sorted(run["by_uid"])
        for h in HALVES:
            u = [x for x in uids if in_half(x, h)]
            r = row(run["method"], f"cli:{os.path.basename(run['folder'].rstrip('/'))}", run["n"], run["by_uid"],
                    ref[0]["by_uid"] if ref else None, u)
            if r:
                if at_n:
                    m = at_n[0]["by_uid"]
                    both = [x for x in u if x in m and x in run["by_uid"]]
                    r["wins_at_n"] = sum(1 for x in both if run["by_uid"][x][0] and not m[x][0])
                    r["losses_at_n"] = sum(1 for x in both if m[x][0] and not run["by_uid"][x][0])
                rows.append({"half": h, **r, "vs": f"cli majority@16 ({os.path.basename(ref[0]['folder'].rstrip('/'))})"
                             if ref else None})
                if h == "test":
                    tag = "" if len(a.evals) < 2 else " " + os.path.basename(run["folder"].rstrip("/"))
                    curves.setdefault(f"{run['method']} (cli{tag})", []).append((r["tokens"], r["accuracy"]))

    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"bank": a.bank, "evals": a.evals, "rows": rows}, f, indent=1)
    for h in HALVES:
        print(f"\n### {h} half\n" if h != "all" else "\n### all problems\n")
        print("| method | source | n | problems | accuracy % | 95% CI | tokens | x majority@16 tokens | vs majority@16 "
              "| vs majority@n (same run) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in sorted((r for r in rows if r["half"] == h), key=lambda r: (r["source"], r["method"], r["n"])):
            wl = f"+{r['wins']}/-{r['losses']}" if "wins" in r else ""
            wl_n = f"+{r['wins_at_n']}/-{r['losses_at_n']}" if "wins_at_n" in r else ""
            print(f"| {r['method']} | {r['source']} | {r['n']} | {r['problems']} | {r['accuracy']:.1f} | "
                  f"{r['ci95'][0]}-{r['ci95'][1]} | {r['tokens']:.0f} | {r.get('token_ratio', '')} | {wl} | {wl_n} |")
    print(f"\nwrote {a.out}")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 6))
        colors = plt.get_cmap("tab20").colors
        for i, (name, pts) in enumerate(sorted(curves.items())):
            pts = sorted(pts)
            cli = "(cli" in name  # CLI runs dashed with squares, bank replays solid with dots
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ("--s" if cli else "-o") if len(pts) > 1 else "s",
                    label=name, color=colors[i % len(colors)],
                    lw=3 if name.startswith(("majority", "srca (")) else 1.2)
        ax.set_xscale("log")
        ax.set_xlabel("mean generated tokens per problem (probes included)")
        ax.set_ylabel("accuracy % (MATH-500, held-out half)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, a.plot)
        print(f"wrote {a.plot}")


if __name__ == "__main__":
    main()
