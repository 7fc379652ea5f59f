from collections import Counter

from loraroute.data.mmlu import MMLU_PRO_CATEGORIES, MMLU_SUBCATEGORY, load_mmlu, subject_to_category


def test_every_mmlu_subject_maps_to_exactly_one_mmlu_pro_category():
    assert len(MMLU_SUBCATEGORY) == 57
    assert len(set(MMLU_SUBCATEGORY.values())) == 17  # MMLU's own 17 subcategories
    mapped = {subject_to_category(s) for s in MMLU_SUBCATEGORY}
    assert mapped == set(MMLU_PRO_CATEGORIES)


def test_subcategories_missing_from_mmlu_pro_become_other():
    assert subject_to_category("high school geography") == "other"
    assert subject_to_category("us_foreign_policy") == "other"
    assert subject_to_category("sociology") == "other"
    assert subject_to_category("electrical engineering") == "engineering"


def test_offline_mmlu_loads_every_subject_and_category():
    rows = load_mmlu()
    assert len(rows) == 14042  # 14,044 lines less two stray header rows
    assert {r["subject"].replace(" ", "_") for r in rows} == set(MMLU_SUBCATEGORY)
    counts = Counter(r["category"] for r in rows)
    assert set(counts) == set(MMLU_PRO_CATEGORIES)
    assert all(len(r["options"]) == 4 and r["answer"] in "ABCD" for r in rows)


def test_router_mapping_moves_only_the_documented_subjects():
    from loraroute.data.mmlu import ROUTER_OVERRIDES

    moved = {s for s in MMLU_SUBCATEGORY if subject_to_category(s, "router") != subject_to_category(s, "mmlu")}
    assert moved == set(ROUTER_OVERRIDES)
    assert {subject_to_category(s, "router") for s in MMLU_SUBCATEGORY} == set(MMLU_PRO_CATEGORIES)
    assert all(reason for _, reason in ROUTER_OVERRIDES.values())
