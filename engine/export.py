"""`sdtui export`: a campaign's per-round and per-problem metrics as JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json

from engine.errors import UserError
from engine.store import Store, display_status


def campaign_report(store: Store, cid: int) -> dict:
    """Everything an analysis needs, from the database alone (no recomputation)."""
    c = store.campaign(cid)
    if c is None:
        raise UserError(f"no campaign {cid} in this workspace; `sdtui status` lists them")
    problems = {p.task_id: split for p, split in store.problems(cid)}
    per_problem: dict[str, dict] = {t: {"task_id": t, "split": s, "rounds": {}} for t, s in problems.items()}
    alloc = {(a["round"], a["task_id"], a["kind"]): a["n"] for a in store.allocations(cid)}
    for row in store.problem_stats(cid):
        key = (row["round"], row["task_id"])
        per_problem[row["task_id"]]["rounds"][row["round"]] = {
            "n": row["n"], "c": row["c"], "bucket": row["bucket"], "diversity": row["diversity"],
            # hinted re-samples (not in n, c), the best partial credit, the budget the round planned
            "hint_n": row["hint_n"], "hint_c": row["hint_c"], "credit": row["credit"],
            "allocated": alloc.get((*key, "sample")), "hint_allocated": alloc.get((*key, "hint"))}
    rounds = store.rounds(cid)
    for r in rounds:
        if r["metrics"] and "train" in r["metrics"] and "left_unsolved" not in r["metrics"]:
            # campaigns from before schema 3: the same count from the stored per-problem rows
            r["metrics"]["left_unsolved"] = _left_unsolved(per_problem.values(), r["round"])
    return {
        "campaign": {"id": cid, "name": c["name"], "status": display_status(c), "round": c["round"],
                     "created": c["created"], "config": c["config"]},
        "rounds": [{"round": r["round"], "stage": r["stage"], "started": r["started"], "finished": r["finished"],
                    "timings": r["timings"], "metrics": r["metrics"]} for r in rounds],
        "problems": list(per_problem.values()),
        "by_round_0_bucket": by_round_0_bucket(list(per_problem.values()), _measured(rounds)),
    }


def _measured(rounds: list[dict]) -> list[int]:
    """The rounds whose metrics stage ran (the train stage writes its figures there earlier)."""
    return [r["round"] for r in rounds if r.get("metrics") and "train" in r["metrics"]]


def _counts(problems, split: str, rnd: int) -> dict[str, tuple[int, int]]:
    """task_id -> (n, c) of one split's problems in one round, from the per-problem rows."""
    return {p["task_id"]: (p["rounds"][rnd]["n"], p["rounds"][rnd]["c"])
            for p in problems if p["split"] == split and rnd in p["rounds"]}


def _left_unsolved(problems, rnd: int) -> dict:
    """Problems unsolved at round 0 that round `rnd` solved, per split (as the engine's metrics)."""
    out: dict = {"train": 0, "heldout": 0, "of": {"train": 0, "heldout": 0}}
    for p in problems:
        r0, now = p["rounds"].get(0), p["rounds"].get(rnd)
        if r0 is not None and r0["c"] == 0:
            out["of"][p["split"]] += 1
            out[p["split"]] += bool(now and now["c"] > 0)
    return out


def by_round_0_bucket(problems, rounds: list[int], split: str = "train") -> dict[str, dict]:
    """Where the gains concentrate: the problems of `split` grouped by their round-0 bucket, with the
    mean share passing (c/n) per round and the bucket each moved to (round 0 -> each later round).
    From the stored per-problem counts alone."""
    from engine.metrics import BUCKETS

    out: dict[str, dict] = {}
    for b in BUCKETS:
        group = [p for p in problems if p["split"] == split and 0 in p["rounds"] and p["rounds"][0]["bucket"] == b]
        share = {r: [p["rounds"][r]["c"] / p["rounds"][r]["n"] for p in group if r in p["rounds"] and p["rounds"][r]["n"]]
                 for r in rounds}
        moved = {r: {to: sum(1 for p in group if r in p["rounds"] and p["rounds"][r]["bucket"] == to) for to in BUCKETS}
                 for r in rounds[1:]}
        out[b] = {"problems": len(group), "mean_share": {r: (sum(v) / len(v) if v else None) for r, v in share.items()},
                  "to": moved}
    return out


def paired_changes(problems, rounds: list[int], ks: list[str]) -> dict:
    """split -> pass@k -> round -> (change from round 0, lo, hi): the paired bootstrap of
    engine.metrics.paired_change_ci over each split's problems."""
    from engine.metrics import paired_change_ci

    out: dict = {}
    for split in ("train", "heldout"):
        counts = {r: _counts(problems, split, r) for r in rounds}
        out[split] = {k: {r: paired_change_ci(counts[rounds[0]], counts[r], int(k.removeprefix("pass@")))
                          for r in rounds[1:]} for k in ks}
    return out


def _change_head(ks: list[str]) -> list[str]:
    """Column names of a change table: each pass@k on train, then held out."""
    return [f"{k} {'held-out' if split == 'heldout' else split}" for k in ks for split in ("train", "heldout")]


def _change_cells(table: dict, ks: list[str], rnd: int) -> list[str]:
    """One round's cells of a `paired_changes` table, in `_change_head` order."""
    return [_change(table[split][k][rnd]) for k in ks for split in ("train", "heldout")]


def _paired_changes(problems, rounds: list[int], ks: list[str]) -> list[str]:
    if len(rounds) < 2:
        return []
    table = paired_changes(problems, rounds, ks)
    head = _change_head(ks)
    lines = ["", "## Change from round 0 (paired bootstrap over problems, 95%)", "",
             "| round | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]
    for r in rounds[1:]:
        lines.append(f"| {r} | " + " | ".join(_change_cells(table, ks, r)) + " |")
    return lines


def _from_round_0(problems, rounds: list[int]) -> list[str]:
    if len(rounds) < 2:
        return []
    table = by_round_0_bucket(problems, rounds)
    last = rounds[-1]
    lines = ["", "## Gains by round-0 bucket (train; mean share of samples passing)", "",
             "| bucket at r0 | problems | " + " | ".join(f"r{r}" for r in rounds) + f" | change r0 -> r{last} |",
             "|" + "---|" * (len(rounds) + 3)]
    for b, row in table.items():
        if not row["problems"]:
            continue
        shares = [row["mean_share"][r] for r in rounds]
        change = shares[-1] - shares[0] if shares[0] is not None and shares[-1] is not None else None
        lines.append(f"| {b} | {row['problems']} | " + " | ".join(_fmt(v) for v in shares) +
                     f" | {'-' if change is None else f'{change:+.3f}'} |")
    lines += ["", f"## Transitions round 0 -> r (train; rows: bucket at r0, columns: bucket at r)", "",
              "| r0 bucket | " + " | ".join(f"r{r}: unsolved / barely / often / always" for r in rounds[1:]) + " |",
              "|" + "---|" * len(rounds)]
    for b, row in table.items():
        if row["problems"]:
            lines.append(f"| {b} | " + " | ".join(" / ".join(str(row["to"][r][to]) for to in row["to"][r])
                                                   for r in rounds[1:]) + " |")
    return lines


def export(store: Store, cid: int, fmt: str) -> str:
    """One campaign's report in a format (json, csv, md)."""
    report = campaign_report(store, cid)
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "md":
        return _markdown(report)
    raise UserError(f"unknown export format {fmt!r}: use json, csv or md")


def export_many(store: Store, cids: list[int], fmt: str) -> str:
    """Several campaigns: json = a list of reports; md = one comparison table (round by round, the
    pass@k with their intervals, solved, gauge, collapse state), the paired changes (from round 0,
    against the first campaign, by the first campaign's round-0 buckets), then each campaign's own tables;
    csv = the per-problem rows with a campaign column."""
    if len(cids) == 1:
        return export(store, cids[0], fmt)
    reports = [campaign_report(store, cid) for cid in cids]
    if fmt == "json":
        return json.dumps(reports, indent=2) + "\n"
    if fmt == "csv":
        parts = [_csv(r).splitlines() for r in reports]
        lines = ["campaign," + parts[0][0]] + [f"{r['campaign']['id']},{line}" for r, p in zip(reports, parts) for line in p[1:]]
        return "\n".join(lines) + "\n"
    if fmt == "md":
        return _comparison(reports) + "\n" + "\n".join(_markdown(r) for r in reports)
    raise UserError(f"unknown export format {fmt!r}: use json, csv or md")


def _pass_keys(rounds: list[dict]) -> list[str]:
    """The pass@k keys the rounds' metrics hold, in order of first appearance."""
    ks: list[str] = []
    for r in rounds:
        for k in ((r.get("metrics") or {}).get("train") or {}):
            if k.startswith("pass@") and k not in ks:
                ks.append(k)
    return ks


def _pass_cells(m: dict, ks: list[str]) -> list[str]:
    """A round's pass@k cells, train then held-out for each k, with their intervals."""
    return [_with_ci(m[side], k) for k in ks for side in ("train", "heldout")]


def _comparison(reports: list[dict]) -> str:
    ks = _pass_keys([r for rep in reports for r in rep["rounds"]])
    head = ["campaign", "round"] + [f"{k} {side}" for k in ks for side in ("train", "held-out")] + [
        "solved", "r0-unsolved solved (train)", "hinted passed", "gauge", "collapse"]
    lines = ["# Comparison: " + ", ".join(f"#{r['campaign']['id']} {r['campaign']['name']}" for r in reports), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rep in reports:
        for r in rep["rounds"]:
            m = r.get("metrics")
            if not m or "train" not in m:
                continue
            cells = [f"#{rep['campaign']['id']} {rep['campaign']['name']}", str(r["round"])] + _pass_cells(m, ks)
            cells += [_fmt(sum(m["solved"].values())), _left(m), _hinted(m), _fmt(m["gauge"]["value"]),
                      m["collapse"]["state"]]
            lines.append("| " + " | ".join(cells) + " |")
    head = _change_head(ks)
    lines += ["", "Change from round 0 to the last measured round (paired bootstrap over problems, 95%):", "",
              "| campaign | round | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 2)]
    for rep in reports:
        rounds = _measured(rep["rounds"])
        if len(rounds) < 2:
            continue
        table = paired_changes(rep["problems"], [rounds[0], rounds[-1]], ks)
        cells = _change_cells(table, ks, rounds[-1])
        lines.append(f"| #{rep['campaign']['id']} {rep['campaign']['name']} | {rounds[-1]} | " + " | ".join(cells) + " |")
    lines += _versus_first(reports, ks, head)
    lines += _by_first_buckets(reports)
    return "\n".join(lines) + "\n"


def _versus_first(reports: list[dict], ks: list[str], head: list[str]) -> list[str]:
    """Each campaign minus the first campaign, paired by problem (the same problems), at every round
    both have measured after round 0 (round 0 alone for a campaign that has no other): a campaign
    still running is compared at its rounds, never one round against another."""
    from engine.metrics import paired_change_ci

    ref = reports[0]
    ref_rounds = set(_measured(ref["rounds"]))
    lines = ["", f"Minus #{ref['campaign']['id']} {ref['campaign']['name']} at the same round, paired by problem "
             "(campaigns on the same problems, each round both measured; 95%):", "",
             "| campaign | round | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 2)]
    for rep in reports[1:]:
        common = sorted(ref_rounds & set(_measured(rep["rounds"])))
        for rnd in [r for r in common if r > 0] or common:
            counts = {side: [_counts(r["problems"], side, rnd) for r in (ref, rep)] for side in ("train", "heldout")}
            cells = [_change(paired_change_ci(*counts[side], int(k.removeprefix("pass@"))))
                     for k in ks for side in ("train", "heldout")]
            lines.append(f"| #{rep['campaign']['id']} {rep['campaign']['name']} | {rnd} | " + " | ".join(cells) + " |")
    return lines


def _by_first_buckets(reports: list[dict]) -> list[str]:
    """Every campaign's measured rounds, grouped by the first campaign's round-0 bucket of each train
    problem: the change in mean share passing from that round 0, paired over the bucket's problems.
    Why one grouping for all: a problem counted barely solved at round 0 was partly unlucky, and a
    second draw of the same model (another seed, no training) scores it higher; that redraw's row
    is the regression to the mean that a trained round's gain must be read against."""
    from engine.metrics import BUCKETS, paired_change_ci

    ref = reports[0]
    if 0 not in _measured(ref["rounds"]):
        return []
    r0 = {p["task_id"]: p["rounds"][0] for p in ref["problems"] if p["split"] == "train" and 0 in p["rounds"]}
    before = _counts(ref["problems"], "train", 0)
    groups = {b: {t: before[t] for t, s in r0.items() if s["bucket"] == b} for b in BUCKETS}
    groups = {b: g for b, g in groups.items() if g}
    name = f"#{ref['campaign']['id']} {ref['campaign']['name']}"
    lines = ["", f"Change in mean share passing from {name}'s round 0, by its round-0 bucket (train problems, "
             "paired bootstrap over each bucket's problems, 95%):", "",
             "| campaign | round | " + " | ".join(f"{b} ({len(g)})" for b, g in groups.items()) + " |",
             "|" + "---|" * (len(groups) + 2)]
    for rep in reports:
        for rnd in _measured(rep["rounds"]):
            after = _counts(rep["problems"], "train", rnd)
            if (rep is ref and rnd == 0) or not set(after) & set(r0):
                continue
            cells = [_change(paired_change_ci(g, after, 1)) for g in groups.values()]
            lines.append(f"| #{rep['campaign']['id']} {rep['campaign']['name']} | {rnd} | " + " | ".join(cells) + " |")
    return lines


def _change(v: tuple[float, float, float] | None) -> str:
    return "-" if v is None else f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"


def _left(m: dict) -> str:
    """`2/11`: train problems unsolved at round 0 that this round solved (unhinted), of all of them."""
    left = m.get("left_unsolved")
    return f"{left['train']}/{left['of']['train']}" if left else "-"


def _hinted(m: dict) -> str:
    """`3/40 (2)`: hinted re-samples passed / sampled (problems with a pass)."""
    h = m.get("hints")
    return f"{h['passed']}/{h['samples']} ({h['problems_passed']})" if h else "-"


def _csv(report: dict) -> str:
    """One row per problem and round: the per-problem pass counts."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["task_id", "split", "round", "n", "c", "bucket", "structural", "lexical", "credit", "hint_n", "hint_c"])
    for p in report["problems"]:
        for rnd, s in sorted(p["rounds"].items()):
            d = s.get("diversity") or {}
            w.writerow([p["task_id"], p["split"], rnd, s["n"], s["c"], s["bucket"],
                        d.get("structural"), d.get("lexical"), s.get("credit"), s.get("hint_n"), s.get("hint_c")])
    return out.getvalue()


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _with_ci(summary: dict, k: str) -> str:
    """`0.267 [0.120, 0.430]`: the value and its 95% bootstrap interval over problems, when stored."""
    ci = (summary.get("ci") or {}).get(k)
    return _fmt(summary.get(k)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _markdown(report: dict) -> str:
    c = report["campaign"]
    lines = [f"# Campaign {c['id']}: {c['name']} ({c['status']})", ""]
    rounds = [r for r in report["rounds"] if r["metrics"] and "train" in r["metrics"]]
    if rounds:
        ks = _pass_keys(rounds)
        head = ["round"] + [f"{k} {side}" for k in ks for side in ("train", "held-out")] + [
            "solved", "unsolvable", "gauge", "collapse"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rounds:
            m = r["metrics"]
            cells = [str(r["round"])] + _pass_cells(m, ks)
            cells += [_fmt(sum(m["solved"].values())), _fmt(sum(m["unsolvable"].values())),
                      _fmt(m["gauge"]["value"]), m["collapse"]["state"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "## Buckets (train problems)", "", "| round | unsolved | barely | often | always |", "|---|---|---|---|---|"]
        for r in rounds:
            b = r["metrics"]["train"].get("buckets", {})
            lines.append(f"| {r['round']} | " + " | ".join(str(b.get(k, 0)) for k in ("unsolved", "barely", "often", "always")) + " |")
        for r in rounds[1:]:
            t = (r["metrics"].get("transitions") or {}).get("train")
            if not t:
                continue
            lines += ["", f"## Transitions round {r['round'] - 1} -> {r['round']} (train; rows: from, columns: to)", "",
                      "| from \\ to | unsolved | barely | often | always |", "|---|---|---|---|---|"]
            for src in ("unsolved", "barely", "often", "always"):
                lines.append(f"| {src} | " + " | ".join(str(t.get(src, {}).get(dst, 0)) for dst in ("unsolved", "barely", "often", "always")) + " |")
        lines += _paired_changes(report["problems"], [r["round"] for r in rounds], ks)
        lines += _from_round_0(report["problems"], [r["round"] for r in rounds])
        if any(r["metrics"].get("left_unsolved") for r in rounds):
            lines += ["", "## The unsolvable set and hints (train problems)", "",
                      "| round | r0-unsolved now solved | hinted re-samples passed (problems) | train samples | adaptive |",
                      "|---|---|---|---|---|"]
            for r in rounds:
                m = r["metrics"]
                b = m.get("budget") or {}
                lines.append(f"| {r['round']} | {_left(m)} | {_hinted(m)} | {_fmt(b.get('train_samples'))} | "
                             f"{'yes' if b.get('adaptive') else 'no'} |")
        lines += ["", "## Diversity (campaign means)", ""]
        # the metric values; `n_*` (how many problems each mean is over) stay in the JSON export
        names = [k for k in rounds[0]["metrics"]["diversity"] if not k.startswith("n_")]
        lines += ["| round | " + " | ".join(names) + " | gauge |", "|" + "---|" * (len(names) + 2)]
        for r in rounds:
            d = r["metrics"]["diversity"]
            lines.append(f"| {r['round']} | " + " | ".join(_fmt(d.get(k)) for k in names) + f" | {_fmt(r['metrics']['gauge']['value'])} |")
        stages = [s for s in ("filter", "train", "sample", "verify", "hint", "metrics")
                  if s != "hint" or any("hint" in r["timings"] for r in report["rounds"])]
        lines += ["", "## Time per stage (s)", "", "| round | " + " | ".join(stages) + " |", "|" + "---|" * (len(stages) + 1)]
        for r in report["rounds"]:
            lines.append(f"| {r['round']} | " + " | ".join(_fmt(r["timings"].get(s)) for s in stages) + " |")
    lines += ["", "## Per-problem pass counts (c/n; +Nh: N hinted re-samples passed)", ""]
    n_rounds = max((len(p["rounds"]) for p in report["problems"]), default=0)
    lines += ["| task | split | " + " | ".join(f"r{i}" for i in range(n_rounds)) + " |", "|" + "---|" * (n_rounds + 2)]
    for p in report["problems"]:
        cells = [_count_cell(p["rounds"][i]) if i in p["rounds"] else "-" for i in range(n_rounds)]
        lines.append(f"| {p['task_id']} | {p['split']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _count_cell(s: dict) -> str:
    return f"{s['c']}/{s['n']}" + (f" +{s['hint_c']}h" if s.get("hint_c") else "")
