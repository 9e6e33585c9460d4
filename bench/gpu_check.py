"""The GPU check: one short run of every part of the GPU path, figures into one folder.

Run through ``bench/gpu_check.sh OUT_DIR`` (which makes the core importable on a bare GPU image),
not directly. Parts, in order, each in its own process group under its own time limit:

    machine    GPU name, memory, driver; torch / CUDA / cuDNN versions
    tests      pytest tests/gpu (core imports only), with what each test recorded
    train      bench/train_bench.py: samples/s, R3, TFLOP/s / bf16 peak, H2D / pinned probe,
               loader wait, for the Shi-sized CRNN and the default model at batch 64, 256, 1024
    score      bench/score_bench.py: the scoring job / the bare forward pass
    pipeline   bench/time_to_accuracy.py: the default pipeline trained from its shards, seconds
               to test sequence accuracy >= 0.95

The part limits add up to 4 minutes. OUT_DIR gets at most 6 files: gpu_check.json (rewritten
after every part, so it survives a failing one; ``--only`` merges into it), gpu_check.log (every
part's output) and one table per part that prints one (tests.txt, train.txt, score.txt,
pipeline.txt). ``--quick`` shrinks every part to a plumbing check (``--device cpu --quick`` runs
in well under a minute).
Exit status: 0 when every part ran and met its limits, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

MACHINE = r"""
import json, os, platform, shutil, subprocess, sys
import torch
cuda = torch.cuda.is_available()
info = {"python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "cuda_available": cuda, "cpu_cores": os.cpu_count()}
if cuda:
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
                bf16=torch.cuda.is_bf16_supported(), gpus=torch.cuda.device_count())
    if shutil.which("nvidia-smi"):
        q = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        info["driver"] = subprocess.run(q, capture_output=True, text=True).stdout.split()[0]
gpu = f"{info['gpu']}, {info['gpu_memory_gib']} GiB, driver {info.get('driver', '?')}" if cuda \
    else f"no GPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
info["line"] = (f"{gpu}; torch {info['torch']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}, "
                f"Python {info['python']}")
print(info["line"])
json.dump(info, open(sys.argv[1], "w"))
if sys.argv[2] == "cuda" and not cuda:
    sys.exit("--device cuda: torch sees no CUDA device")
"""


@dataclass
class Part:
    name: str
    limit_s: int  # at full size; --quick parts are far inside it
    table: bool  # its stdout is a table worth its own file
    command: Callable[[argparse.Namespace, Path], list[str]]
    short_exit: int | None = None  # the exit status meaning "ran, missed its limit"


def _machine(args: argparse.Namespace, tmp: Path) -> list[str]:
    return [sys.executable, "-c", MACHINE, str(tmp / "machine.json"), args.device]


def _tests(args: argparse.Namespace, tmp: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider"]
    cmd += [f"--junitxml={tmp / 'tests.xml'}", "-o", "junit_family=xunit1"]
    return cmd + (["-k", "autocast or channels_last"] if args.quick else [])


def _train(args: argparse.Namespace, tmp: Path) -> list[str]:
    cmd = [sys.executable, "bench/train_bench.py", "--device", args.device, "--skip-r4"]
    cmd += ["--skip-loader", "--out", str(tmp / "train.json")]
    if args.quick:
        quick = ["--rows", "128", "--models", "default", "--steps", "2", "--repeats", "1"]
        return [*cmd, *quick, "--report-only"]  # a plumbing check: figures, no verdict
    return [*cmd, "--rows", "16384", "--batch-sizes", "64", "256", "1024"]


def _score(args: argparse.Namespace, tmp: Path) -> list[str]:
    cmd = [sys.executable, "bench/score_bench.py", "--device", args.device, "--no-cli"]
    cmd += ["--out", str(tmp / "score.json")]
    return cmd + (["--rows", "256", "--repeats", "1", "--report-only"] if args.quick else [])


def _pipeline(args: argparse.Namespace, tmp: Path) -> list[str]:
    cmd = [sys.executable, "bench/time_to_accuracy.py", "--device", args.device]
    cmd += ["--out", str(tmp / "pipeline.json")]
    if args.quick:  # a plumbing check: far too small for the real target
        lines = "data.lines={train: 64, val: 32, test: 32}"
        return [*cmd, "--target", "0", "--set", "training.epochs=1", "--set", lines]
    return cmd


PARTS = [
    Part("machine", 15, False, _machine),
    Part("tests", 100, True, _tests),
    Part("train", 60, True, _train, short_exit=1),
    Part("score", 25, True, _score, short_exit=1),
    Part("pipeline", 40, True, _pipeline, short_exit=1),
]


def run_part(part: Part, args: argparse.Namespace, tmp: Path, log: Any) -> dict[str, Any]:
    """Run one part in its own process group; returns its status, time and figures."""
    cmd = part.command(args, tmp)
    log.write(f"\n===== {part.name} (limit {part.limit_s} s): {' '.join(cmd[:4])} ...\n")
    log.flush()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # torchrun, loader workers: the whole group goes on a timeout
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=part.limit_s)
        status = "ok" if proc.returncode == 0 else "failed"
        if proc.returncode == part.short_exit:
            status = "short"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = "timeout"
    seconds = time.perf_counter() - started
    log.write(output)
    log.write(f"----- {part.name}: {status} in {seconds:.1f} s (exit {proc.returncode})\n")
    log.flush()
    if part.table:
        table = [line for line in output.splitlines() if not line.startswith("written:")]
        (args.out / f"{part.name}.txt").write_text("\n".join(table[-80:]) + "\n")
    result: dict[str, Any] = {"status": status, "seconds": round(seconds, 1)}
    result["limit_s"], result["exit"] = part.limit_s, proc.returncode
    figures = FIGURES.get(part.name, _json_figures)(part.name, tmp)
    if figures is not None:
        result["figures"] = figures
    if status != "ok":
        result["tail"] = output.strip().splitlines()[-6:]
    return result


def _json_figures(name: str, tmp: Path) -> Any:
    path = tmp / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _test_figures(name: str, tmp: Path) -> Any:
    """Per test: outcome, seconds and the properties it recorded (from pytest's JUnit XML)."""
    path = tmp / "tests.xml"
    if not path.is_file():
        return None
    tests = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcome = "failed" if failed else "skipped" if case.find("skipped") is not None else "ok"
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests[case.get("name")] = {"outcome": outcome, "seconds": float(case.get("time", 0))}
        tests[case.get("name")].update(props)
    return tests


FIGURES: dict[str, Callable[[str, Path], Any]] = {"tests": _test_figures}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the JSON, the log and the tables")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the plumbing")
    names = [p.name for p in PARTS]
    parser.add_argument("--only", nargs="+", choices=names, metavar="PART", help=", ".join(names))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "gpu_check.json"
    report = json.loads(report_path.read_text()) if args.only and report_path.is_file() else {}
    report.update(device=args.device, quick=args.quick, parts=report.get("parts", {}))
    chosen = [p for p in PARTS if not args.only or p.name in args.only]
    with (
        tempfile.TemporaryDirectory(prefix="crnn-gpu-check-") as tmp,
        open(args.out / "gpu_check.log", "a" if args.only else "w") as log,
    ):
        for part in chosen:
            result = run_part(part, args, Path(tmp), log)
            report["parts"][part.name] = result
            if part.name == "machine" and "figures" in result:
                report["machine"] = result["figures"]["line"]
            report_path.write_text(json.dumps(report, indent=2, default=str))
            print(f"{part.name:<9} {result['status']:<8} {result['seconds']:>6.1f} s", flush=True)
    if "machine" in report:
        print(report["machine"])
    bad = [n for n, r in report["parts"].items() if r["status"] != "ok"]
    print(f"written: {report_path}; " + (f"not ok: {', '.join(bad)}" if bad else "all parts ok"))
    return 1 if any(p.name in bad for p in chosen) else 0


if __name__ == "__main__":
    sys.exit(main())
