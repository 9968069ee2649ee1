"""Backbone pretraining (identity classification, ArcFace margin) and net.init for metric training."""

from __future__ import annotations

import math

import pytest
import torch

from stccl import cli
from stccl.checkpoints import training_key
from stccl.core import pretrain
from stccl.core.backbone import IResNet
from stccl.core.losses import STCCLOptions
from stccl.core.metric_net import MetricNetConfig
from stccl.core.pretrain import (ArcMarginProduct, IdentityFrames, PretrainConfig, apply_init, load_pretrain_config,
                                 pretrain_backbone)
from stccl.core.train_metric import MetricTrainConfig, load_metric_config, train_metric
from stccl.io import StcclError
from stccl.runs import load_checkpoint

SIZE = 32
HELD_OUT = "S004"  # the micro data's held-out actor (meta.json)


def _pre_cfg(root, **kw) -> PretrainConfig:
    base = dict(data_root=str(root), size=SIZE, batch_size=4, max_steps=3, eval_frames=8, log_every=1,
                ckpt_every=2, threads=1, device="cpu", embedding=16)
    base.update(kw)
    return PretrainConfig(**base)


@pytest.fixture(scope="module")
def pretrained(micro_root, tmp_path_factory):
    """A 3-step pretrain run on the micro data, recording every actor whose frame was read for training."""
    seen: set[str] = set()
    original = IdentityFrames.__getitem__

    def spy(self, i):
        item = original(self, i)
        seen.add(item["actor"])
        return item

    IdentityFrames.__getitem__ = spy
    try:
        out = tmp_path_factory.mktemp("pretrain") / "run"
        summary = pretrain_backbone(_pre_cfg(micro_root), out, progress=False)
    finally:
        IdentityFrames.__getitem__ = original
    return out / "ckpt_last.pt", summary, seen


def test_pretraining_runs_and_never_sees_a_test_actor(pretrained):
    ckpt_path, summary, seen = pretrained
    assert summary["step"] == 3 and seen and HELD_OUT not in seen
    assert summary["test_actors"] == [HELD_OUT] and HELD_OUT not in summary["identities"]
    assert set(seen) == set(summary["identities"])
    extra = load_checkpoint(ckpt_path)["extra"]
    assert extra["arch"] == "iresnet_tiny" and extra["size"] == [SIZE, SIZE]
    assert extra["identities"] == summary["identities"] and math.isclose(extra["chance"], 1 / 3)
    assert 0.0 <= extra["train_acc"] <= 1.0 and 0.0 <= extra["heldout_acc"] <= 1.0


def test_held_out_actors_are_refused(micro_root, monkeypatch):
    # an empty test_actors list in the config cannot bring the data's held-out actor back
    frames = IdentityFrames(micro_root, "train", test_actors=[], size=SIZE)
    assert HELD_OUT not in frames.identities and HELD_OUT in frames.test_actors
    # extra held-out actors are excluded as well
    assert "S001" not in IdentityFrames(micro_root, "train", test_actors=["S001"], size=SIZE).identities
    # a split that let the held-out actor through is refused, naming it
    monkeypatch.setattr(pretrain, "split_actors", lambda actors, test, split, where: sorted(actors))
    with pytest.raises(StcclError, match=HELD_OUT):
        IdentityFrames(micro_root, "train", size=SIZE)


def test_heldout_part_is_other_clips_of_the_same_identities(micro_root):
    train = IdentityFrames(micro_root, "train", size=SIZE)
    held = IdentityFrames(micro_root, "heldout", size=SIZE)
    assert held.identities == train.identities
    clips = lambda d: {f[:3] for f in d.frames}  # noqa: E731
    assert clips(train).isdisjoint(clips(held)) and {a for a, *_ in clips(held)} == set(train.identities)


def test_arcface_margin_lowers_only_the_true_class():
    head = ArcMarginProduct(8, 3, scale=16.0, margin=0.3)
    e = torch.randn(5, 8)
    y = torch.tensor([0, 1, 2, 0, 1])
    plain, margin = head(e), head(e, y)
    cos = head.cosine(e)
    theta = torch.acos(cos.gather(1, y[:, None]))
    expected = 16.0 * torch.where(theta < math.pi - 0.3, torch.cos(theta + 0.3), cos.gather(1, y[:, None]) - head.mm)
    assert torch.allclose(margin.gather(1, y[:, None]), expected, atol=1e-5)
    other = torch.ones_like(plain, dtype=torch.bool).scatter(1, y[:, None], False)
    assert torch.equal(margin[other], plain[other])


def _metric_cfg(root, init: str, **kw) -> MetricTrainConfig:
    base = dict(data_root=str(root), size=SIZE, T=3, batch_size=2, max_steps=1, log_every=1, ckpt_every=1,
                threads=1, device="cpu", net=MetricNetConfig(init=init),
                loss=STCCLOptions(spatial_samples=(8, 4, 2, 1), temporal_factor=2))
    base.update(kw)
    return MetricTrainConfig(**base)


def test_metric_starts_from_exactly_the_pretrained_weights(micro_root, pretrained, tmp_path):
    ckpt_path, summary, _ = pretrained
    train_metric(_metric_cfg(micro_root, f"pretrained:{ckpt_path}"), tmp_path / "m", progress=False)
    saved = load_checkpoint(ckpt_path)["model"]
    start = load_checkpoint(tmp_path / "m" / "ckpt_init.pt")
    backbone = {k[len("backbone."):]: v for k, v in start["model"].items() if k.startswith("backbone.")}
    assert backbone and set(backbone) == {k[len("backbone."):] for k in saved if k.startswith("backbone.")}
    for k, v in backbone.items():
        assert torch.equal(v, saved["backbone." + k]), k
    record = start["extra"]["init"]
    assert record["kind"] == "pretrained" and record["identities"] == summary["identities"]
    last = load_checkpoint(tmp_path / "m" / "ckpt_last.pt")
    assert last["config"]["net"]["init"] == f"pretrained:{ckpt_path}" and last["extra"]["init"] == record
    # a run folder works as PATH too
    net = IResNet("iresnet_tiny")
    apply_init(net, f"pretrained:{ckpt_path.parent}", "iresnet_tiny", (SIZE, SIZE))
    assert torch.equal(net.conv1.weight, saved["backbone.conv1.weight"])


def test_scratch_init_changes_nothing():
    net = IResNet("iresnet_tiny")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert apply_init(net, "scratch", "iresnet_tiny", (SIZE, SIZE)) == {"init": "scratch", "kind": "scratch"}
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_pretrained_init_errors_name_the_file(pretrained, tmp_path):
    ckpt_path, _, _ = pretrained
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(StcclError, match="nowhere.pt"):
        apply_init(IResNet("iresnet_tiny"), f"pretrained:{missing}", "iresnet_tiny", (SIZE, SIZE))
    with pytest.raises(StcclError, match=rf"{ckpt_path.name}.*arch 'iresnet_tiny'.*'iresnet_small'"):
        apply_init(IResNet("iresnet_small"), f"pretrained:{ckpt_path}", "iresnet_small", (SIZE, SIZE))
    with pytest.raises(StcclError, match=rf"{ckpt_path.name}.*\[{SIZE}, {SIZE}\].*\[64, 64\]"):
        apply_init(IResNet("iresnet_tiny"), f"pretrained:{ckpt_path}", "iresnet_tiny", (64, 64))
    with pytest.raises(StcclError, match=rf"{ckpt_path.name}.*held-out actor.*S001"):
        apply_init(IResNet("iresnet_tiny"), f"pretrained:{ckpt_path}", "iresnet_tiny", (SIZE, SIZE), ["S001"])
    # a checkpoint whose backbone keys do not match
    ckpt = load_checkpoint(ckpt_path)
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k != "backbone.conv1.weight"}
    broken = tmp_path / "broken.pt"
    torch.save(ckpt, broken)
    with pytest.raises(StcclError, match=r"broken.pt.*missing \['conv1.weight'\]"):
        apply_init(IResNet("iresnet_tiny"), f"pretrained:{broken}", "iresnet_tiny", (SIZE, SIZE))


def _insightface_state(arch: str) -> dict:
    """An arcface_torch-style checkpoint: backbone keys in its naming, its embedding head, DataParallel prefix."""
    torch.manual_seed(3)
    state = {f"module.{k}": torch.randn_like(v.float()).to(v.dtype) for k, v in IResNet(arch).state_dict().items()}
    state.update({"module.bn2.weight": torch.ones(512), "module.fc.weight": torch.randn(4, 8),
                  "module.features.weight": torch.ones(512)})
    return state


def test_insightface_init_maps_the_keys(tmp_path):
    state = _insightface_state("iresnet18")
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    net = IResNet("iresnet18")
    record = apply_init(net, f"insightface:{path}", "iresnet18", (112, 112))
    assert record["kind"] == "insightface" and record["file"] == str(path) and len(record["sha256"]) == 64
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[f"module.{k}"]), k
    with pytest.raises(StcclError, match=r"backbone.pth.*not an insightface iresnet34"):
        apply_init(IResNet("iresnet34"), f"insightface:{path}", "iresnet34", (112, 112))
    with pytest.raises(StcclError, match="missing.pth"):
        apply_init(IResNet("iresnet18"), f"insightface:{tmp_path / 'missing.pth'}", "iresnet18", (112, 112))


def test_net_init_is_validated_and_defaults_to_scratch(tmp_path):
    assert MetricNetConfig().init == "scratch"
    cfg = tmp_path / "m.yaml"
    cfg.write_text("net:\n  init: pretrain:x.pt\n")
    with pytest.raises(StcclError, match=r"m.yaml.*net.init must be"):
        load_metric_config(cfg)
    for bad in ("pretrained:", "scratch:x", "imagenet:x"):
        with pytest.raises(StcclError, match="net.init"):
            load_metric_config(None, {"net": {"init": bad}})
    assert load_metric_config(None, {"net.init": "insightface:a.pth"}).net.init == "insightface:a.pth"
    # a shipped checkpoint's config from before net.init still matches a scratch run's
    old = {"kind": "metric", "net": {"arch": "iresnet_tiny"}, "seed": 0}
    assert training_key(old) == training_key({**old, "net": {"arch": "iresnet_tiny", "init": "scratch"}})
    assert training_key(old) != training_key({**old, "net": {"arch": "iresnet_tiny", "init": "pretrained:p"}})


def test_pretrain_config_and_cli(tmp_path, capsys):
    assert load_pretrain_config("params/pretrain_default.yaml").arch == "iresnet_tiny"
    with pytest.raises(StcclError, match="unknown arch"):
        load_pretrain_config(None, {"arch": "resnet50"})
    assert cli.main(["pretrain-backbone", "--config", "params/pretrain_default.yaml", "--dry-run",
                     "--out", str(tmp_path / "p")]) == 0
    assert '"margin": 0.3' in capsys.readouterr().out
