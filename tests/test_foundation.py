"""Config loading, atomic writes and run folders: the pieces every trainer stands on."""

from dataclasses import dataclass

import pytest
import torch

from stccl.config import load_config, merge_overrides, parse_sets, to_dict
from stccl.io import StcclError, atomic_write_json, read_json, read_jsonl
from stccl.runs import RunDir, check_finite, load_checkpoint


@dataclass(frozen=True)
class Cfg:
    name: str = "x"
    lr: float = 1e-3
    steps: int = 10
    sizes: tuple[int, ...] = (1, 2)
    flag: bool = False


def test_config_roundtrip_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.01\nsizes: [3, 4]\n")
    cfg = load_config(Cfg, p, overrides={"steps": 5})
    assert cfg == Cfg(lr=0.01, sizes=(3, 4), steps=5)
    assert to_dict(cfg)["sizes"] == (3, 4)


def test_overrides_merge_into_sections_and_set_items_parse_as_yaml():
    base = {"lr": 0.1, "loss": {"tau": 0.07, "variant": "vd"}}
    merged = merge_overrides(base, {"loss.tau": 0.1, "steps": 3})
    assert merged == {"lr": 0.1, "steps": 3, "loss": {"tau": 0.1, "variant": "vd"}}
    assert base["loss"]["tau"] == 0.07  # the base mapping is not changed
    assert merge_overrides(base, {"loss": {"variant": "cm"}})["loss"] == {"tau": 0.07, "variant": "cm"}
    assert merge_overrides(base, {"net": {"arch": "x"}})["net"] == {"arch": "x"}  # a new section
    assert parse_sets(["loss.tau=0.1", "seeds=[0, 1]", "name=a=b"]) == {"loss.tau": 0.1, "seeds": [0, 1],
                                                                          "name": "a=b"}
    for bad in ("tau", "=3", "x=[1,"):
        with pytest.raises(StcclError, match="--set"):
            parse_sets([bad])


@pytest.mark.parametrize("text, needle", [
    ("lrr: 0.1\n", "unknown key"),
    ("steps: ten\n", "key 'steps'"),
    ("steps: 1.5\n", "expected an integer"),
    ("flag: 1\n", "true/false"),
    ("- a\n- b\n", "mapping"),
    ("lr: [\n", "not valid YAML"),
])
def test_config_rejects_bad_files(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(StcclError) as info:
        load_config(Cfg, p)
    assert needle in str(info.value) and "bad.yaml" in str(info.value)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})

    class Boom:
        pass

    with pytest.raises(TypeError, match="Boom"):
        atomic_write_json(target, {"a": Boom()})
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_rundir_refuses_to_clobber_and_resumes(tmp_path):
    model = torch.nn.Linear(2, 2)
    run = RunDir(tmp_path / "r", Cfg(), kind="test")
    for step in range(1, 4):
        run.log({"step": step, "loss": 1.0 / step})
    run.save(2, model)
    with pytest.raises(StcclError, match="--resume"):
        RunDir(tmp_path / "r", Cfg(), kind="test")
    with pytest.raises(StcclError, match="different config"):
        RunDir(tmp_path / "r", Cfg(lr=0.5), kind="test", resume=True)
    resumed = RunDir(tmp_path / "r", Cfg(), kind="test", resume=True)
    ckpt = resumed.load_for_resume()
    assert ckpt["step"] == 2
    assert [r["step"] for r in read_jsonl(resumed.metrics_path)] == [1, 2]


def test_truncated_checkpoint_is_named(tmp_path):
    bad = tmp_path / "ckpt_last.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(StcclError, match="ckpt_last.pt"):
        load_checkpoint(bad)


def test_non_finite_guard():
    check_finite(torch.tensor(1.0), step=1)
    with pytest.raises(StcclError, match="non-finite"):
        check_finite(torch.tensor(float("nan")), step=3)
