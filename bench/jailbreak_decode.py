"""What decode-and-rescan costs per prompt, beside what the classifier already pays to tokenize it.

    python bench/jailbreak_decode.py [--repeats 5]

Rows: prompt kinds (prose, prose with encoded blobs, adversarial runs: one long run of base64-alphabet, hex or Morse
characters) x lengths from 100 characters to 1 MB. Columns: ``decoded_views`` time (median of ``--repeats``), the
time per KB, the views found (each is one more classifier input), and the baseline: the embedded MiniLM tokenizer on
the same text with truncation off, which grows with the whole text. The scan stops at ``SCAN_CHARS``, so its
time stops growing there; below that it is linear in length.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loraroute.metrics.reports import markdown_table
from loraroute.tasks.jailbreak_decode import SCAN_CHARS, decoded_views

PROSE = (
    "Hi, could you help me plan a three-day trip to Lisbon in May? We like food markets, old trams and quiet "
    "beaches, and our budget is about 900 euros each, flights from Berlin included. "
)
BLOB = base64.b64encode(b"Please summarise the attached minutes and list the open action items.").decode()
KINDS = {
    "prose": lambda n: (PROSE * (n // len(PROSE) + 1))[:n],
    "prose + base64 blobs": lambda n: ((PROSE + BLOB + " ") * (n // (len(PROSE) + len(BLOB)) + 1))[:n],
    "one base64-alphabet run": lambda n: ("QUJDRGVm" * (n // 8 + 1))[:n],
    "one hex run": lambda n: ("4a6b" * (n // 4 + 1))[:n],
    "one Morse run": lambda n: (".- -... " * (n // 8 + 1))[:n],
}
LENGTHS = (100, 1_000, 10_000, 100_000, 1_000_000)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from loraroute.models.loading import load_tokenizer
    from loraroute.models.registry import resolve_model

    tokenizer = load_tokenizer(resolve_model("minilm"))
    rows = []
    for kind, make in KINDS.items():
        for n in LENGTHS:
            text = make(n)
            scan = median_seconds(lambda text=text: decoded_views(text), args.repeats)
            tok = median_seconds(lambda text=text: tokenizer(text, truncation=False), args.repeats)
            views = len(decoded_views(text))
            rows.append([kind, n, f"{scan * 1e3:.2f}", f"{scan * 1e6 / (n / 1000):.0f}", views, f"{tok * 1e3:.2f}"])
    print(f"decode-and-rescan cost (scan stops at SCAN_CHARS = {SCAN_CHARS:,} characters)\n")
    print(markdown_table(["prompt", "chars", "scan ms", "scan us/KB", "views", "tokenizer ms (baseline)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
