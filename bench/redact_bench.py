"""What masking secrets costs a long line: every log line and printed string goes through
:func:`crnn.secrets.redact`, so a 10 MB ``description`` in a pipelines file is masked whole. Three
10 MB lines that made the old masking quadratic (one word; URIs whose password never meets an
"@"; many URIs with userinfo and credential query parameters), each masked once, timed in this
run; the secret planted at each line's end must come out masked.

    python bench/redact_bench.py [--mb 10]

Limit: the slowest line masks in at most 1 s. Exits 1 when it does not, or when a secret is left.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from crnn.secrets import MASK, redact

LIMIT_S = 1.0
SECRET = "pw-Zq81xKv9"
TAIL = f" then postgresql://mlflow:{SECRET}@db:5432/mlflow?token={SECRET}"


def long_lines(size: int) -> dict[str, str]:
    """Lines of about ``size`` characters, each ending in a URI that holds :data:`SECRET`."""
    shapes = {
        "one word": "a",
        "no @ after a password": "https://user:" + "p" * 997 + " ",
        "many URIs": "see https://u:pw1234@host/x?token=abcdef&a=1 ",
    }
    return {name: unit * (size // len(unit)) + TAIL for name, unit in shapes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "redact.json"))
    args = parser.parse_args()
    figures: dict[str, float] = {}
    leaks = []
    for name, line in long_lines(int(args.mb * 1e6)).items():
        started = time.perf_counter()
        masked = redact(line)
        figures[name] = time.perf_counter() - started
        if SECRET in masked or not masked.endswith(f"mlflow:{MASK}@db:5432/mlflow?token={MASK}"):
            leaks.append(name)
        print(f"{name:24s} {len(line) / 1e6:6.1f} MB  {figures[name]:7.3f} s")
    worst = max(figures.values())
    print(f"slowest                  {worst:7.3f} s   (limit {LIMIT_S} s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": figures, "slowest_s": worst, "limit_s": LIMIT_S, "mb": args.mb}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    if leaks:
        print(f"LEAK: the secret was left in: {', '.join(leaks)}")
    if worst > LIMIT_S:
        print(f"SHORT: masking a {args.mb:g} MB line took {worst:.2f} s > {LIMIT_S} s")
    return 1 if leaks or worst > LIMIT_S else 0


if __name__ == "__main__":
    sys.exit(main())
