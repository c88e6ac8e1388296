import gzip
import json

import pytest
import torch

from interp.data.images import find_fashion_mnist, read_idx
from interp.errors import InterpError
from interp.io import load_checkpoint, save_checkpoint, write_json


def test_checkpoint_roundtrip(tmp_path):
    state = {"w": torch.randn(3, 4)}
    save_checkpoint(tmp_path / "ck", state, {"kind": "classifier", "x": 1}, {"acc": 0.5})
    loaded, config, metrics = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded["w"], state["w"])
    assert config == {"kind": "classifier", "x": 1} and metrics == {"acc": 0.5}
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "metrics.json", "model.safetensors"]


def test_corrupt_weights_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.zeros(2)}, {"kind": "classifier"})
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(InterpError, match="corrupt"):
        load_checkpoint(tmp_path)


def test_bad_json_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(InterpError, match="not valid JSON"):
        load_checkpoint(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_idx_reader_rejects_truncated_file(tmp_path):
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(InterpError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InterpError, match="gzip"):
        read_idx(path)


def test_missing_dataset_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr("interp.data.images.DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(InterpError) as e:
        find_fashion_mnist(tmp_path / "given")
    msg = str(e.value)
    assert "given" in msg and "env" in msg and "debian" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "\n" not in msg


def test_evaluate_missing_folder_exits_2(run_cli, tmp_path):
    code, out, err = run_cli("evaluate", tmp_path / "nope")
    assert code == 2 and out == "" and err.count("\n") == 1 and "not found" in err


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
    from interp.io import staged_folder

    out = tmp_path / "ck"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(out) as staging:
            (staging / "new.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with staged_folder(out) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no staging or .old folders left
