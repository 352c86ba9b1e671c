#!/usr/bin/env python3
"""Helpers of scripts/compare.sh: parse load-generator output into result rows, and turn
the rows into medians (CSV), a Markdown table and the data files the charts are drawn from.

  compare_report.py wrk WORK_US MODEL CONNS RUN < wrk-output      prints one row
  compare_report.py ab  WORK_US MODEL CONNS RUN N < ab-output     prints one row
  compare_report.py report ROWS CSV WORKDIR WORK_US...            writes CSV (medians), and in
                                                                  WORKDIR the chart data
                                                                  (WORK_US.dat) and table.md;
                                                                  prints the table

A row (tab-separated): work_us model scenario conns run req_per_s p50_ms p99_ms done
socket_errors rss_kib_per_conn, with "nan" where a field does not apply.
"""
import csv
import os
import re
import statistics
import sys

MODELS = ["counterd", "threads_mutex", "threads_manager", "go-mutex", "go-channel"]
NAN = float("nan")


def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def row(*fields):
    print("\t".join(str(f) for f in fields))


def parse_wrk(work, model, conns, run):
    out = sys.stdin.read()
    what = f"{model} wrk -c{conns} --work-us {work}"
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"{what}: {non2xx.group(1)} non-2xx answers\n{out}")
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        done = int(re.search(r"(\d+) requests in", out).group(1))
    except AttributeError:
        sys.exit(f"{what}: cannot read wrk's output\n{out}")
    lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    nerr = sum(int(n) for n in errors.groups()) if errors else 0
    row(work, model, "wrk", conns, run, rps, lat.get("50", NAN), lat.get("99", NAN), done, nerr, NAN)


def parse_ab(work, model, conns, run, n):
    out = sys.stdin.read()
    what = f"{model} ab -c{conns} --work-us {work}"
    field = lambda name: re.search(name + r":\s+([\d.]+)", out)
    if (not field("Complete requests") or int(field("Complete requests").group(1)) != int(n)
            or int(field("Failed requests").group(1)) != 0 or "Non-2xx responses" in out):
        sys.exit(f"{what}: not every request succeeded\n{out}")
    rps = float(field("Requests per second").group(1))
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\d+)", out, re.M))
    row(work, model, "ab", conns, run, rps, float(pct["50"]), float(pct["99"]), n, 0, NAN)


def median(xs):
    xs = [x for x in xs if x == x]  # drop nan
    return statistics.median(xs) if xs else NAN


def report(rows_path, csv_path, workdir, works):
    groups = {}
    runs = set()
    for f in csv.reader(open(rows_path), delimiter="\t"):
        work, model, scenario, conns, run = int(f[0]), f[1], f[2], int(f[3]), int(f[4])
        vals = [float(x) for x in f[5:]]
        groups.setdefault((work, scenario, conns, model), []).append(vals)
        runs.add(run)
    med = {k: [median(col) for col in zip(*v)] for k, v in groups.items()}

    # Medians, one line per (work, scenario, connections, model).
    with open(csv_path, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["work_us", "scenario", "conns", "model", "req_per_s", "p50_ms", "p99_ms",
                    "socket_errors", "rss_kib_per_conn", "runs"])
        for (work, scenario, conns, model), (rps, p50, p99, _done, err, rss) in sorted(
                med.items(), key=lambda kv: (kv[0][0], kv[0][1] != "wrk", kv[0][1], kv[0][2],
                                              MODELS.index(kv[0][3]))):
            fmt = lambda x, d: "" if x != x else f"{x:.{d}f}"
            w.writerow([work, scenario, conns, model, fmt(rps, 0), fmt(p50, 3), fmt(p99, 3),
                        fmt(err, 0), fmt(rss, 1), len(groups[(work, scenario, conns, model)])])

    # One data file per chart: conns, then req/s of each model, then p99 of each model.
    for work in works:
        conns = sorted({c for (wk, s, c, _m) in med if wk == work and s == "wrk"})
        with open(os.path.join(workdir, f"{work}.dat"), "w") as out:
            out.write("# conns " + " ".join(f"{m}_rps" for m in MODELS) + " "
                      + " ".join(f"{m}_p99_ms" for m in MODELS) + "\n")
            for c in conns:
                vals = [med.get((work, "wrk", c, m), [NAN] * 6) for m in MODELS]
                out.write(f"{c} " + " ".join(f"{v[0]:.1f}" for v in vals) + " "
                          + " ".join(f"{v[2]:.3f}" for v in vals) + "\n")

    # The tables, for the terminal and for docs/compare.md: per work setting, one of
    # throughput (with the idle memory) and one of p99 latency.
    lines = []
    for work in works:
        lines.append("")
        lines.append(f"**--work-us {work}**" + (" (no work: the cost of the model itself)"
                                                 if work == 0 else
                                                 f" ({work / 1000:g} ms of blocking sleep per request)"))
        keys = sorted({(s, c) for (wk, s, c, _m) in med if wk == work and s != "idle"},
                      key=lambda k: (k[0] != "wrk", k[1]))
        for what, col, fmt in (("req/s", 0, "{:,.0f}"), ("p99 ms", 2, "{:.2f}")):
            lines.append("")
            lines.append(f"| {what} | " + " | ".join(MODELS) + " |")
            lines.append("|---|" + "---:|" * len(MODELS))
            for scenario, c in keys:
                vals = [med.get((work, scenario, c, m)) for m in MODELS]
                n = next(int(v[3]) for v in vals if v is not None)
                label = f"wrk -t1 -c{c} (keep-alive)" if scenario == "wrk" else \
                    f"ab -n {n} -c{c} (new connection per request)"
                errs = sum(v[4] for v in vals if v is not None and v[4] == v[4])
                note = f" ({errs:.0f} socket errors)" if errs else ""
                cells = " | ".join("" if v is None else fmt.format(v[col]) for v in vals)
                lines.append(f"| {label}{note} | {cells} |")
            if col != 0:
                continue
            for c in sorted({c for (wk, s, c, _m) in med if wk == work and s == "idle"}):
                vals = [med.get((work, "idle", c, m)) for m in MODELS]
                kib = " | ".join("" if v is None else f"{v[5]:.1f} KiB" for v in vals)
                lines.append(f"| RSS per idle keep-alive connection ({c:,} open) | {kib} |")
    table = "\n".join(lines)
    print(f"medians of {len(runs)} runs; latency in ms")
    print(table)
    with open(os.path.join(workdir, "table.md"), "w") as out:
        out.write(table + "\n")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wrk":
        parse_wrk(*args)
    elif cmd == "ab":
        parse_ab(*args)
    elif cmd == "report":
        report(args[0], args[1], args[2], [int(w) for w in args[3:]])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
