"""Head-of-line blocking: how long a one-text request waits behind a maximum-size request, with and without fair
scheduling, on real model directories (the `make demo` models by default).

    python bench/serve_fairness.py [MODELS_DIR] [--texts 100] [--chars 10000]

Both rows run in this process on the same models. The baseline is one unit per request and task
(``chunk_chars`` larger than any request: what the server did before units were interleaved); the other row is the
server's default. The big request is ``--texts`` texts of ``--chars`` characters with ``task_type: all``; the small
request is sent 1 s after it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from loraroute.serve.api import create_app
from loraroute.serve.config import ServeConfig
from loraroute.serve.discovery import discover
from loraroute.serve.unified import UnifiedClassifier

WORDS = [
    "please",
    "review",
    "the",
    "attached",
    "contract",
    "and",
    "tell",
    "me",
    "which",
    "clauses",
    "a",
    "tenant",
    "should",
    "worry",
    "about",
]


def long_text(chars: int, seed: int) -> str:
    words, n = [], 0
    while n < chars - 12:
        word = WORDS[(seed + len(words)) % len(WORDS)]
        words.append(word)
        n += len(word) + 1
    return " ".join(words)[:chars]


async def measure(classifier, config: ServeConfig, big: list[str]) -> tuple[float, float]:
    app = create_app(classifier, None, config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            t0 = time.perf_counter()
            big_call = asyncio.create_task(
                client.post("/api/v1/classify/batch", json={"texts": big, "task_type": "all"})
            )
            await asyncio.sleep(1.0)
            t1 = time.perf_counter()
            small = await client.post(
                "/api/v1/classify/batch", json={"texts": ["What is the derivative of x^3?"], "task_type": "all"}
            )
            small_s = time.perf_counter() - t1
            response = await big_call
            big_s = time.perf_counter() - t0
    assert small.status_code == 200 and response.status_code == 200, (small.text[:200], response.text[:200])
    return big_s, small_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="?", default="models")
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--chars", type=int, default=10_000)
    args = parser.parse_args()
    found = discover(args.models)
    classifier = UnifiedClassifier.load(found.chosen)
    big = [long_text(args.chars, i) for i in range(args.texts)]
    rows = []
    for name, chunk in (("baseline: one unit per request and task", 10**9), ("fair scheduling (default)", None)):
        config = ServeConfig(
            max_batch_texts=max(100, args.texts), max_text_chars=max(10_000, args.chars), request_timeout_s=600
        )
        if chunk is not None:
            config.chunk_chars = chunk
        big_s, small_s = asyncio.run(measure(classifier, config, big))
        rows.append((name, config.chunk_chars, big_s, small_s))
    print(
        f"models: {', '.join(p.name for p in found.chosen.values())}; big request: {args.texts} x {args.chars} "
        f"characters, task_type all; small request sent 1 s later\n"
    )
    print("| scheduling | chunk_chars | big request (s) | one-text request (s) |")
    print("|---|---|---|---|")
    for name, chunk, big_s, small_s in rows:
        print(f"| {name} | {chunk} | {big_s:.1f} | {small_s:.2f} |")


if __name__ == "__main__":
    main()
