"""Writes that others read: complete or not there at all, and readable by all whatever the umask."""

import os

import pytest
import torch
from safetensors.torch import save_file

from loraroute.files import atomic_directory, atomic_file, make_world_readable


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def modes(root):
    """{relative path: permission bits} of ``root`` and everything under it."""
    found = {".": root.stat().st_mode & 0o777}
    found.update({str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in root.rglob("*")})
    return found


def test_a_finished_model_directory_is_readable_by_everyone_even_under_umask_077(tmp_path, umask_077):
    final = tmp_path / "models" / "lora_intent_classifier_bert_r4_model"
    with atomic_directory(final) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))  # safetensors writes 0600
        (tmp / "adapter").mkdir()
        save_file({"w": torch.zeros(2)}, str(tmp / "adapter" / "adapter_model.safetensors"))
        (tmp / "onnx").mkdir()
        (tmp / "onnx" / "model.onnx").write_bytes(b"graph")
        (tmp / "config.json").write_text("{}")
    found = modes(final)
    assert found == {name: 0o755 if (final / name).is_dir() else 0o644 for name in found}
    assert found["model.safetensors"] == 0o644 and found["adapter"] == 0o755


def test_make_world_readable_also_takes_a_single_file_and_leaves_links_alone(tmp_path, umask_077):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"graph")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    os.chmod(target, 0o600)
    make_world_readable(link)
    assert target.stat().st_mode & 0o777 == 0o600
    make_world_readable(target)
    assert target.stat().st_mode & 0o777 == 0o644


def test_an_interrupted_atomic_directory_removes_its_temporary_directory(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "m"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_directory_keeps_a_copy_another_process_finished_first(tmp_path):
    final = tmp_path / "SmolLM2-abc123"
    with atomic_directory(final, keep_existing=lambda existing: (existing / "manifest").exists()) as tmp:
        (tmp / "manifest").write_text("ours")
        final.mkdir()  # another process's conversion lands meanwhile
        (final / "manifest").write_text("theirs")
    assert (final / "manifest").read_text() == "theirs"
    assert list(tmp_path.iterdir()) == [final]


def test_an_atomic_file_is_readable_by_everyone_even_under_umask_077(tmp_path, umask_077):
    target = tmp_path / "onnx" / "model.onnx"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(f".tmp-model.onnx-{os.getpid()}-")
        assert tmp.suffix == ".onnx"  # for writers that pick a format by the name
        tmp.write_bytes(b"graph")
    assert target.read_bytes() == b"graph"
    assert modes(tmp_path / "onnx") == {".": 0o755, "model.onnx": 0o644}


def test_a_failed_atomic_file_leaves_the_old_file_intact_and_no_temporary_file(tmp_path):
    target = tmp_path / "verify_report.json"
    target.write_text('{"passed": true}')
    with pytest.raises(RuntimeError, match="crashed"), atomic_file(target) as tmp:
        tmp.write_text('{"pass')
        raise RuntimeError("crashed halfway")
    assert target.read_text() == '{"passed": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["verify_report.json"]
