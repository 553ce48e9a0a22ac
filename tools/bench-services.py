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


def time_restore(reaper, snapcr, svc, images, port, stats):
    t0 = time.monotonic()
    inst = S.restore(reaper, snapcr, images, port, stats=stats)
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
    restores, stages = [], {s: [] for s in STAGES}
    for i in range(n):
        progress(f"{svc.name}: restore {i + 1}/{n}")
        ms, st = time_restore(reaper, snapcr, svc, images, port, os.path.join(workdir, "stats.json"))
        restores.append(ms)
        for s in STAGES:
            stages[s].append(st["stages_ms"].get(s, 0.0))
    shutil.rmtree(images, ignore_errors=True)
    cold_med, restore_med = statistics.median(cold), statistics.median(restores)
    return {
        "service": svc.name,
        "runs": n,
        "cold_start_ms": cold,
        "restore_ms": restores,
        "cold_start_median_ms": cold_med,
        "restore_median_ms": restore_med,
        "cut_percent": 100.0 * (1 - restore_med / cold_med),
        "speedup": cold_med / restore_med,
        "restore_stage_median_ms": {s: statistics.median(v) for s, v in stages.items()},
        "prepare_ms": prepare_ms,
        "dump_stage_ms": dump_stats.get("stages_ms", {}),
        "image_bytes": image_bytes,
    }


def svg_chart(results):
    """Horizontal bars: cold start and restore median per service, with values."""
    width, left, bar, gap = 760, 120, 18, 14
    top = 40
    height = top + len(results) * (2 * bar + gap + 10) + 40
    scale = (width - left - 120) / max(r["cold_start_median_ms"] for r in results)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">Time to first HTTP 200 (median of '
           f'{results[0]["runs"]} runs)</text>']
    y = top
    for r in results:
        out.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{r["service"]}</text>')
        for label, key, color in (("cold", "cold_start_median_ms", "#c0504d"), ("restore", "restore_median_ms",
                                                                              "#4f81bd")):
            w = max(1.0, r[key] * scale)
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
            out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar - 4}">{label} {r[key]:.0f} ms</text>')
            y += bar + 2
        out.append(f'<text x="{left}" y="{y + 12}" font-size="11" fill="#555">{r["cut_percent"]:.1f}% less, '
                   f'{r["speedup"]:.1f}x faster</text>')
        y += gap + 12
    out.append(f'<text x="{left}" y="{height - 12}" font-size="11" fill="#555">red: cold start; blue: snapcr '
               f'restore; bars to scale</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(results):
    lines = ["| service | cold start (ms) | restore (ms) | cut | " + " | ".join(STAGES) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(STAGES)]
    for r in results:
        st = r["restore_stage_median_ms"]
        lines.append(f'| {r["service"]} | {r["cold_start_median_ms"]:.0f} | {r["restore_median_ms"]:.0f} | '
                     f'{r["cut_percent"]:.1f}% | ' + " | ".join(f"{st[s]:.1f}" for s in STAGES) + " |")
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
