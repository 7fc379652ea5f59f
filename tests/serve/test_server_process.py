"""The real thing: `loraroute serve` as its own process on a free loopback port, called over HTTP."""

import pytest

from tests.serve.conftest import INTENT_PROBES, call, copy_model, running_server

pytestmark = pytest.mark.slow


def test_the_serve_command_answers_batches_over_http(trained_tree, tmp_path):
    models = tmp_path / "models"
    copy_model(trained_tree["intent_bert"], models / "lora_intent_classifier_bert_r4_model")
    with running_server(models, tmp_path / "server.log", "--max-batch-texts", "8") as (base, _):
        status, body, _ = call(
            base + "/api/v1/classify/batch",
            {"texts": INTENT_PROBES, "task_type": "all", "options": {"return_probabilities": True}},
        )
        assert status == 200 and body["total_count"] == 3
        assert all(set(r["intent"]["probabilities"]) == {"biology", "law", "math"} for r in body["results"])
        assert body["unavailable_tasks"] == ["pii", "security"]
        status, body, _ = call(base + "/api/v1/classify/batch", {"texts": ["x"] * 9})
        assert status == 413 and body["error"]["code"] == "INVALID_INPUT"
        assert "lora_intent_classifier_bert_r4_model" in (tmp_path / "server.log").read_text()  # discovery table
