"""Models on the Hugging Face Hub, with huggingface_hub's network calls replaced by fakes that act like the Hub:
push uploads a model directory, a repo id works wherever a model directory does, pull places a model for serving."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.utils import filter_repo_objects

from loraroute import hub
from loraroute.cli import main
from loraroute.inference import Predictor
from loraroute.models.hub import MODEL_FILES, ONNX_FILES, resolve
from tests.conftest import write_intent_jsonl
from tests.serve.conftest import INTENT_PROBES, train_tiny_intent

NAME = "lora_intent_classifier_bert_r4_model"


@pytest.fixture(scope="module")
def intent_dir(tiny_encoder, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub-intent")
    return train_tiny_intent(tiny_encoder("bert"), write_intent_jsonl(root / "intent.jsonl"), root / "models", "bert")


@pytest.fixture
def model_copy(intent_dir, tmp_path) -> Path:
    return Path(shutil.copytree(intent_dir, tmp_path / "local" / NAME))


class FakeHub:
    """Repositories (repo id -> source directory) served the way snapshot_download serves them: the files that
    match allow_patterns, as symbolic links from a snapshot directory into a blob store, under a cache root."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.repos: dict[str, Path] = {}
        self.calls: list[dict] = []

    def snapshot_download(self, repo_id, *, revision=None, allow_patterns=None, **kwargs):
        self.calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns, **kwargs})
        if repo_id not in self.repos:
            err = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # its __init__ wants an HTTP response
            Exception.__init__(err, f"404 Client Error: Repository Not Found for url: .../{repo_id}")
            raise err
        source = self.repos[repo_id]
        snapshot = self.cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / (revision or "main")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = path.relative_to(source).as_posix()
            if allow_patterns and not any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                continue
            blob = self.cache / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, blob)
            (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / rel).unlink(missing_ok=True)
            (snapshot / rel).symlink_to(blob)
        return str(snapshot)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    fake = FakeHub(tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


class FakeApi:
    """HfApi stand-in that records every call; uploads list the files upload_folder would send."""

    instances: list[FakeApi] = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: list[str] = []
        FakeApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        root = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        self.uploaded = list(
            filter_repo_objects(
                files, allow_patterns=kwargs.get("allow_patterns"), ignore_patterns=kwargs.get("ignore_patterns")
            )
        )


@pytest.fixture
def fake_api(monkeypatch):
    FakeApi.instances = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


# --- resolve: a directory or a repo id ------------------------------------------------------------------------
def test_an_existing_directory_is_used_as_it_is_without_asking_the_hub(model_copy, fake_hub):
    assert resolve(model_copy) == model_copy
    assert resolve(str(model_copy)) == model_copy
    assert fake_hub.calls == []


def test_a_repo_id_is_fetched_into_the_cache_with_only_the_files_loraroute_reads(intent_dir, fake_hub):
    fake_hub.repos["owner/" + NAME] = intent_dir
    path = resolve("owner/" + NAME, revision="v1")
    assert path.is_relative_to(fake_hub.cache) and (path / "model.safetensors").is_symlink()
    (call,) = fake_hub.calls
    assert call["repo_id"] == "owner/" + NAME and call["revision"] == "v1"
    assert call["allow_patterns"] == MODEL_FILES
    assert (path / "adapter" / "adapter_model.safetensors").exists() and (path / "lora_config.json").exists()
    assert not list(path.glob("*.png")), "plots are not fetched"
    resolve("owner/" + NAME, onnx=True)
    assert fake_hub.calls[-1]["allow_patterns"] == MODEL_FILES + ONNX_FILES


def test_neither_a_directory_nor_a_repo_id_is_an_error_naming_the_argument(tmp_path, fake_hub):
    for ref in (str(tmp_path / "missing"), "./models/lora_x", "a/b/c"):
        with pytest.raises(FileNotFoundError, match=f"model {ref}: no such model directory"):
            resolve(ref)
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        resolve(Path("owner/name"))  # a Path is always local
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        resolve(tmp_path / "file.txt")
    assert fake_hub.calls == []


def test_a_repo_that_is_not_on_the_hub_is_a_clear_error(fake_hub):
    with pytest.raises(FileNotFoundError, match="owner/nothing: no such local directory, and no such repository"):
        resolve("owner/nothing")


def test_a_repo_without_model_files_is_refused(tmp_path, fake_hub):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("hello")
    fake_hub.repos["owner/notes"] = tmp_path / "notes"
    with pytest.raises(ValueError, match="not a model directory written by loraroute"):
        resolve("owner/notes")


def test_predictor_load_takes_a_repo_id_and_answers_as_the_local_directory(intent_dir, fake_hub):
    fake_hub.repos["owner/" + NAME] = intent_dir
    remote = Predictor.load("owner/" + NAME).predict(INTENT_PROBES)
    local = Predictor.load(intent_dir).predict(INTENT_PROBES)
    assert [r["label"] for r in remote] == [r["label"] for r in local]
    assert [r["confidence"] for r in remote] == pytest.approx([r["confidence"] for r in local], abs=1e-6)
    adapter = Predictor.load("owner/" + NAME, use_adapter=True).predict(INTENT_PROBES)
    assert [r["label"] for r in adapter] == [r["label"] for r in local]


def test_cli_predict_takes_a_repo_id(intent_dir, fake_hub, capsys):
    fake_hub.repos["owner/" + NAME] = intent_dir
    assert (
        main(["predict", "--model", "owner/" + NAME, "--revision", "v2", "--no-probabilities", INTENT_PROBES[0]]) == 0
    )
    row = json.loads(capsys.readouterr().out.strip())
    assert row["text"] == INTENT_PROBES[0] and row["label"] in {"math", "law", "biology"}
    assert fake_hub.calls[0]["revision"] == "v2"


def test_cli_verify_takes_a_repo_id_and_writes_no_report_into_the_cache(intent_dir, fake_hub, monkeypatch, capsys):
    import loraroute.export.verify as verify

    seen = {}

    def fake_verify(model_dir, extra_texts=None, write=True):
        seen.update(model_dir=Path(model_dir), write=write)
        return {"passed": True}

    monkeypatch.setattr(verify, "verify_model", fake_verify)
    monkeypatch.setattr(verify, "format_report", lambda report: "ok")
    fake_hub.repos["owner/" + NAME] = intent_dir
    assert main(["verify", "owner/" + NAME]) == 0
    assert seen["model_dir"].is_relative_to(fake_hub.cache) and seen["write"] is False
    assert fake_hub.calls[-1]["allow_patterns"] == MODEL_FILES + ONNX_FILES  # verify checks ONNX too
    assert main(["verify", str(intent_dir)]) == 0
    assert seen == {"model_dir": intent_dir, "write": True}


def test_serve_with_a_repo_id_as_models_dir_says_to_pull_it_first(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="first run: loraroute pull owner/some-model --models-dir models"):
        hub.check_models_dir("owner/some-model")
    hub.check_models_dir(tmp_path)  # a directory is fine
    assert main(["serve", "--models-dir", "owner/some-model"]) != 0
    assert "owner/some-model" in capsys.readouterr().err


# --- push -------------------------------------------------------------------------------------------------------
def test_push_creates_the_repo_and_uploads_the_model_without_temporary_files(model_copy, fake_api):
    (model_copy / "onnx").mkdir()
    (model_copy / "onnx" / "model.onnx").write_bytes(b"graph")
    (model_copy / "onnx" / ".tmp-model-abc123.onnx").write_bytes(b"half")  # an interrupted export
    (model_copy / "verify_report.json").write_text("{}")
    (model_copy / "pytorch_model.bin").write_bytes(b"pickle")
    url = hub.push(model_copy, "owner/" + NAME)
    (api,) = fake_api.instances
    assert api.token is None  # huggingface_hub reads HF_TOKEN or the saved login itself
    assert url == f"https://huggingface.co/owner/{NAME}"
    names = [name for name, _ in api.calls]
    assert names == ["create_repo", "upload_folder"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create == {"repo_id": "owner/" + NAME, "private": None, "repo_type": "model", "exist_ok": True}
    assert upload["repo_id"] == "owner/" + NAME and upload["folder_path"] == str(model_copy)
    assert upload["revision"] is None and NAME in upload["commit_message"]
    for kept in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "lora_config.json",
        "label_mapping.json",
        "README.md",
        "eval_report.json",
        "training_config.yaml",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "onnx/model.onnx",
        "confusion_matrix.png",
    ):
        assert kept in api.uploaded, kept
    for left_out in ("onnx/.tmp-model-abc123.onnx", "verify_report.json", "pytorch_model.bin"):
        assert left_out not in api.uploaded, left_out


def test_push_private_to_a_branch_creates_a_private_repo_and_the_branch(model_copy, fake_api):
    hub.push(model_copy, "owner/" + NAME, private=True, revision="dev", commit_message="first")
    (api,) = fake_api.instances
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1]["private"] is True
    assert api.calls[1][1] == {"repo_id": "owner/" + NAME, "branch": "dev", "repo_type": "model", "exist_ok": True}
    assert api.calls[2][1]["revision"] == "dev" and api.calls[2][1]["commit_message"] == "first"


def test_push_puts_the_repo_id_into_loraroute_s_card_but_keeps_an_edited_card(model_copy, fake_api):
    hub.push(model_copy, "owner/" + NAME)
    card = (model_copy / "README.md").read_text()
    assert f"loraroute predict --model owner/{NAME}" in card and f"loraroute pull owner/{NAME}" in card
    assert ModelCard(card).data.model_name == NAME
    edited = card.replace("## Data", "## Data\n\nHand-written notes.")
    (model_copy / "README.md").write_text(edited)
    hub.push(model_copy, "other/" + NAME)
    assert (model_copy / "README.md").read_text() == edited


def test_push_gives_an_old_card_without_hub_metadata_a_new_one(model_copy, fake_api):
    (model_copy / "README.md").write_text(f"# .tmp-{NAME}-123-abc\n\nA LoRA-tuned model.\n")
    hub.push(model_copy, "owner/" + NAME)
    card = ModelCard.load(model_copy / "README.md")
    assert card.data.library_name == "transformers" and card.text.lstrip().startswith(f"# {NAME}\n")


def test_push_refuses_what_is_not_a_loraroute_model_or_not_a_repo_id(model_copy, tmp_path, fake_api):
    with pytest.raises(ValueError, match="not a model directory written by loraroute"):
        hub.push(tmp_path, "owner/name")
    with pytest.raises(ValueError, match="not a hub repo id"):
        hub.push(model_copy, "no-owner")
    with pytest.raises(FileNotFoundError):
        hub.push(tmp_path / "missing", "owner/name")
    assert all(api.calls == [] for api in fake_api.instances)


def test_cli_push_parses_and_calls_push(model_copy, fake_api, capsys):
    assert main(["push", str(model_copy), "owner/" + NAME, "--private", "--revision", "dev"]) == 0
    assert f"https://huggingface.co/owner/{NAME} (branch dev)" in capsys.readouterr().out
    (api,) = fake_api.instances
    assert api.calls[0][1]["private"] is True and api.calls[-1][1]["revision"] == "dev"


# --- pull ---------------------------------------------------------------------------------------------------------
def test_pull_places_a_hub_model_under_its_lora_name_where_serve_finds_it(intent_dir, fake_hub, tmp_path):
    from loraroute.serve.discovery import discover

    fake_hub.repos["owner/my-intent-router"] = intent_dir  # a repo name that is not a lora_* name: the card's is used
    models = tmp_path / "models"
    path = hub.pull("owner/my-intent-router", models)
    assert path == models / NAME
    assert not any(p.is_symlink() for p in path.rglob("*")), "files, not links into the Hub cache"
    assert (path / "model.safetensors").read_bytes() == (intent_dir / "model.safetensors").read_bytes()
    assert all(p.stat().st_mode & 0o004 for p in path.rglob("*")), "readable by a router running as another user"
    assert discover(models).chosen["intent"] == path
    assert (
        Predictor.load(path).predict(INTENT_PROBES[:1])[0]["label"]
        == Predictor.load(intent_dir).predict(INTENT_PROBES[:1])[0]["label"]
    )


def test_pull_name_comes_from_the_repo_name_when_it_is_a_lora_name_and_from_lora_config_without_a_card(
    intent_dir, fake_hub, tmp_path
):
    fake_hub.repos["owner/lora_intent_classifier_custom_model"] = intent_dir
    assert (
        hub.pull("owner/lora_intent_classifier_custom_model", tmp_path / "a").name
        == "lora_intent_classifier_custom_model"
    )
    bare = Path(shutil.copytree(intent_dir, tmp_path / "bare"))
    (bare / "README.md").unlink()
    fake_hub.repos["owner/bare"] = bare
    assert hub.pull("owner/bare", tmp_path / "b").name == NAME  # as training names it: training_config.yaml
    assert (
        hub.pull("owner/bare", tmp_path / "c", name="lora_intent_classifier_mine_model").name
        == "lora_intent_classifier_mine_model"
    )


def test_cli_pull_prints_the_model_directory(intent_dir, fake_hub, tmp_path, capsys):
    fake_hub.repos["owner/" + NAME] = intent_dir
    assert main(["pull", "owner/" + NAME, "--models-dir", str(tmp_path / "models")]) == 0
    assert str(tmp_path / "models" / NAME) in capsys.readouterr().out
    assert main(["pull", "owner/absent", "--models-dir", str(tmp_path / "models")]) != 0
