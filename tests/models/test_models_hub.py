"""models/hub.py: what marks a downloaded repository as a loraroute model directory.

(resolve and download against a fake Hub: tests/test_hub.py. Not test_hub.py here: pytest refuses two test modules
of one basename without __init__.py files.)
"""

import fnmatch

from loraroute.artifacts import LORA_CONFIG
from loraroute.models.hub import MODEL_FILES, MODEL_MARKERS, is_repo_id


def test_the_model_markers_name_the_file_artifacts_writes():
    assert LORA_CONFIG in MODEL_MARKERS and "config.json" in MODEL_MARKERS


def test_every_marker_is_a_file_the_download_fetches():
    assert all(any(fnmatch.fnmatch(m, p) for p in MODEL_FILES) for m in MODEL_MARKERS)


def test_a_repo_id_is_owner_slash_name_and_never_a_path():
    assert is_repo_id("owner/lora_intent_classifier_bert_r4_model")
    assert not any(map(is_repo_id, ["./models/x", "a/b/c", "~/x", "owner/..", "name"]))
