#!/usr/bin/env python3
"""Cold start against restore for the real services of tests/services: for each, N cold starts and
N restores of one snapshot (made by `snapcr prepare`), each timed from the start of the command
(the service's own, or `snapcr restore`) to its first HTTP 200 answer, with the restore's stages
(snapcr --stats). Writes the results as JSON and a bar chart as SVG, and prints a table.

usage: bench-services.py [-B BUILD_DIR] [-n N] [-o OUT_DIR] [SERVICE...]"""
import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "services"))
import services as S  # noqa: E402

STAGES = ("read", "fork", "premap", "fill", "restorer")
# Restores timed: copying every page into fresh memory, and mapping the page files copy-on-write.
MODES = (("restore", ()), ("restore --map-pages", ("--map-pages",)))


def progress(msg):
    end = "\r" if sys.stderr.isatty() else "\n"
    print(f"  {msg:<70}", end=end, file=sys.stderr, flush=True)


def time_cold(reaper, svc, workdir, port):
    t0 = time.monotonic()
    inst = S.start_cold(reaper, svc, workdir, port, os.path.join(workdir, f"{svc.name}-cold.log"))
    try:
        body = S.wait_http_200(inst.url, t0 + svc.init_timeout, alive=lambda: S.pid_alive(inst.pid))
    finally:
        inst.stop()
    svc.expect(body)
    return (time.monotonic() - t0) * 1000


def time_restore(reaper, snapcr, svc, images, port, stats, extra):
    t0 = time.monotonic()
    inst = S.restore(reaper, snapcr, images, port, stats=stats, extra=extra)
    try:
        body = S.wait_http_200(inst.url, t0 + 60, alive=lambda: S.pid_alive(inst.pid))
    finally:
        inst.stop()
    svc.expect(body)
    with open(stats) as f:
        st = json.load(f)
    return (time.monotonic() - t0) * 1000, st


def bench(reaper, snapcr, svc, workdir, port, n):
    svc.build(workdir)
    cold = []
    for i in range(n):
        progress(f"{svc.name}: cold start {i + 1}/{n}")
        cold.append(time_cold(reaper, svc, workdir, port))
    progress(f"{svc.name}: snapcr prepare")
    images = os.path.join(workdir, f"{svc.name}-images")
    t0 = time.monotonic()
    S.prepare(reaper, snapcr, svc, workdir, port, images, os.path.join(workdir, f"{svc.name}.log"), warmups=3,
              extra=("--stats", os.path.join(workdir, "dump-stats.json")))
    prepare_ms = (time.monotonic() - t0) * 1000
    with open(os.path.join(workdir, "dump-stats.json")) as f:
        dump_stats = json.load(f)
    image_bytes = sum(os.path.getsize(os.path.join(images, f)) for f in os.listdir(images))
    cold_med = statistics.median(cold)
    res = {
        "service": svc.name,
        "runs": n,
        "cold_start_ms": cold,
        "cold_start_median_ms": cold_med,
        "prepare_ms": prepare_ms,
        "dump_stage_ms": dump_stats.get("stages_ms", {}),
        "image_bytes": image_bytes,
    }
    for mode, extra in MODES:
        restores, stages = [], {s: [] for s in STAGES}
        for i in range(n):
            progress(f"{svc.name}: {mode} {i + 1}/{n}")
            ms, st = time_restore(reaper, snapcr, svc, images, port, os.path.join(workdir, "stats.json"), extra)
            restores.append(ms)
            for s in STAGES:
                stages[s].append(st["stages_ms"].get(s, 0.0))
        med = statistics.median(restores)
        res[mode] = {
            "ms": restores,
            "median_ms": med,
            "cut_percent": 100.0 * (1 - med / cold_med),
            "speedup": cold_med / med,
            "stage_median_ms": {s: statistics.median(v) for s, v in stages.items()},
        }
    shutil.rmtree(images, ignore_errors=True)
    return res


def svg_chart(results):
    """Horizontal bars: cold start and each restore mode's median per service, with values."""
    width, left, bar, gap, top = 800, 120, 18, 14, 40
    series = [("cold start", "#c0504d")] + list(zip([m for m, _ in MODES], ("#4f81bd", "#9bbb59")))
    height = top + len(results) * (len(series) * (bar + 2) + gap + 12) + 40
    scale = (width - left - 260) / max(r["cold_start_median_ms"] for r in results)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">Command start to first HTTP 200, median of '
           f'{results[0]["runs"]} runs</text>']
    y = top
    for r in results:
        out.append(f'<text x="{left - 8}" y="{y + (len(series) * (bar + 2)) // 2 + 4}" text-anchor="end">'
                   f'{r["service"]}</text>')
        for label, color in series:
            ms = r["cold_start_median_ms"] if label == "cold start" else r[label]["median_ms"]
            note = "" if label == "cold start" else f' ({r[label]["cut_percent"]:.1f}% less)'
            w = max(1.0, ms * scale)
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
            out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar - 4}">{label}: {ms:.0f} ms{note}</text>')
            y += bar + 2
        y += gap + 12
    legend = ", ".join(f"{label}" for label, _ in series)
    out.append(f'<text x="{left}" y="{height - 12}" font-size="11" fill="#555">bars to scale: {legend}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(results):
    lines = ["| service | cold start | restore | cut | restore --map-pages | cut | stages of restore (read / fork / "
             "premap / fill / restorer) | with --map-pages |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        a, b = r["restore"], r["restore --map-pages"]
        st = " / ".join(f'{a["stage_median_ms"][s]:.1f}' for s in STAGES)
        sm = " / ".join(f'{b["stage_median_ms"][s]:.1f}' for s in STAGES)
        lines.append(f'| {r["service"]} | {r["cold_start_median_ms"]:.0f} | {a["median_ms"]:.0f} | '
                     f'{a["cut_percent"]:.1f}% | {b["median_ms"]:.0f} | {b["cut_percent"]:.1f}% | {st} | {sm} |')
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-B", "--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "build", "bench-services"))
    ap.add_argument("services", nargs="*", default=list(S.SERVICES))
    args = ap.parse_args()
    snapcr = S.snapcr_path(os.path.abspath(args.build))
    reaper = S.Reaper()
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="snap-bench-")
    results = []
    rng = random.Random(os.getpid())
    try:
        for i, name in enumerate(args.services):
            port = S.free_port(rng)
            results.append(bench(reaper, snapcr, S.SERVICES[name], workdir, port, args.runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(" " * 72, end="\r", file=sys.stderr)
    meta = {"kernel": os.uname().release, "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": meta, "results": results}, f, indent=1)
    with open(os.path.join(args.out, "chart.svg"), "w") as f:
        f.write(svg_chart(results))
    print(table(results))
    print(f"\nwritten: {args.out}/results.json, {args.out}/chart.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
