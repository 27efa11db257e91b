"""The artefact cache folder and ``arvo cache show|clear``, on real files in a temporary cache folder
(named with $VSARVO_CACHE, as users do)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from vsarvo.artifacts import CACHE_ENV, cache_dir, cache_root, list_artifacts
from vsarvo.cli import main

FILES = {
    "onnx/arvo-stage-1234-96x64-fp32-opset17.onnx": 3000,
    "tensorrt/arvo-1234-ref1x3x64x96-fp16-trt11.4-GPU-sm90-O3.engine": 2 << 20,
    "tensorrt/timing-trt11.4-GPU-sm90.cache": 100,
    "torch_tensorrt/arvo-stage-1234-96x64-fp16.ep": 500,
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    for name, size in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * size)
    (root / "notes.txt").write_text("not an artefact")
    return root


def remaining(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_the_environment_variable_names_the_cache_folder(cache: Path) -> None:
    assert cache_root() == cache
    assert cache_dir(kind="onnx") == cache / "onnx"


def test_listing_finds_every_artefact_with_its_kind_and_size(cache: Path) -> None:
    found = {(a.path.relative_to(cache).as_posix(), a.group, a.size) for a in list_artifacts(cache)}
    assert found == {
        (name, "onnx" if name.startswith("onnx/") else "engines", size) for name, size in FILES.items()
    }


def test_show_lists_files_sizes_and_totals(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache: {cache}"
    assert "onnx        2.9 KiB  onnx/arvo-stage-1234-96x64-fp32-opset17.onnx" in lines
    assert "engines     2.0 MiB  tensorrt/arvo-1234-ref1x3x64x96-fp16-trt11.4-GPU-sm90-O3.engine" in lines
    assert lines[-1] == "4 file(s), 2.0 MiB (onnx 2.9 KiB in 1, engines 2.0 MiB in 3)"


def test_clear_onnx_removes_only_the_graphs(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "--onnx"]) == 0
    assert remaining(cache) == {"notes.txt", *(n for n in FILES if not n.startswith("onnx/"))}
    assert "1 file(s), 2.9 KiB" in capsys.readouterr().out


def test_clear_engines_keeps_the_graphs(cache: Path) -> None:
    assert main(["cache", "clear", "--engines"]) == 0
    assert remaining(cache) == {"notes.txt", "onnx/arvo-stage-1234-96x64-fp32-opset17.onnx"}


def test_clear_removes_every_artefact_and_nothing_else(cache: Path) -> None:
    assert main(["cache", "clear"]) == 0
    assert remaining(cache) == {"notes.txt"}


def test_cache_option_overrides_the_environment(cache: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    (other / "onnx").mkdir(parents=True)
    (other / "onnx" / "g.onnx").write_bytes(b"12345")
    assert main(["cache", "show", "--cache", str(other)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 file(s), 5 B (onnx 5 B in 1, engines 0 B in 0)"


def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    (tmp_path / "system-temp").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    root = cache_root()
    assert root.parent == tmp_path / "system-temp" and root.name.startswith("vsarvo-cache-")
