"""Metric training: config, run folder, resume equivalence, non-finite guard; the diagnostic."""

import json

import pytest
import torch

from stccl import cli
from stccl.data import synth
from stccl.data.mead import PairedWindowDataset
from stccl.core.diagnose import correlation_diagnostic
from stccl.distributed import DistInfo
from stccl.io import StcclError
from stccl.core.losses import STCCLLoss, STCCLOptions
from stccl.core.metric_net import MetricNet
from stccl.runs import NonFiniteLossError, load_checkpoint
from stccl.core.train_metric import MetricTrainConfig, epoch_batches, load_metric_config, train_metric


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric") / "micro"
    synth.synthesize(root, synth.make_config("tiny", n_identities=3, n_test=1, n_sentences=2, syllables=(3, 3),
                                             emotions=("neutral", "happy"), workers=1),
                     seed=4, progress=False)
    return root


def _cfg(root, **kw):
    base = dict(data_root=str(root), size=48, T=3, batch_size=2, max_steps=4, log_every=1, ckpt_every=2,
                threads=1, device="cpu",
                loss=STCCLOptions(spatial_samples=(8, 4, 2, 1), temporal_factor=2))
    base.update(kw)
    return MetricTrainConfig(**base)


def _losses(run):
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(micro, tmp_path):
    cfg = _cfg(micro)
    full = train_metric(cfg, tmp_path / "full", progress=False)
    assert full["step"] == 4
    part = train_metric(cfg, tmp_path / "part", stop_at_step=2, progress=False)
    assert part["step"] == 2 and load_checkpoint(tmp_path / "part" / "ckpt_last.pt")["step"] == 2
    with pytest.raises(StcclError, match="--resume"):
        train_metric(cfg, tmp_path / "part", progress=False)
    train_metric(cfg, tmp_path / "part", resume=True, progress=False)
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert [s for s, _ in a] == [1, 2, 3, 4] and [s for s, _ in b] == [1, 2, 3, 4]
    assert [v for _, v in a] == pytest.approx([v for _, v in b], rel=1e-5)
    ckpt = load_checkpoint(tmp_path / "full" / "ckpt_last.pt")
    assert {"model", "optimizer", "config", "step", "rng"} <= set(ckpt) and ckpt["config"]["kind"] == "metric"
    assert json.loads((tmp_path / "full" / "config.json").read_text())["T"] == 3
    # every weight of the backbone's convolutions and of all four heads moved from the run's own start
    init = load_checkpoint(tmp_path / "full" / "ckpt_init.pt")
    assert init["step"] == 0 and init["model"].keys() == ckpt["model"].keys()
    trainable = [n for n, p in MetricNet(cfg.net).named_parameters()]
    assert any("heads" in n for n in trainable) and any("backbone" in n for n in trainable)
    frozen = [n for n in trainable if torch.equal(ckpt["model"][n], init["model"][n])]
    assert frozen == [], frozen
    # the checkpoint plugs into the loss
    loss_fn = STCCLLoss.from_checkpoint(tmp_path / "full" / "ckpt_last.pt", variant="vd")
    x = torch.rand(1, 3, 3, 48, 48)
    loss, _ = loss_fn(x, x.clone().requires_grad_(True))
    assert torch.isfinite(loss)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(micro, tmp_path, monkeypatch):
    import stccl.core.train_metric as tm

    real = tm.combine
    calls = {"n": 0}

    def flaky(terms, ls, lt):
        calls["n"] += 1
        out = real(terms, ls, lt)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(tm, "combine", flaky)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        train_metric(_cfg(micro), tmp_path / "nan", progress=False)
    assert load_checkpoint(tmp_path / "nan" / "ckpt_last.pt")["step"] == 2


def test_config_rejects_unknown_keys_and_data_order_is_deterministic(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.001\nloss:\n  tua: 0.1\n")
    with pytest.raises(StcclError, match="tua"):
        load_metric_config(bad)
    a = epoch_batches(50, seed=1, epoch=3, batch_size=4, info=DistInfo())
    assert a == epoch_batches(50, seed=1, epoch=3, batch_size=4, info=DistInfo())
    assert a != epoch_batches(50, seed=1, epoch=4, batch_size=4, info=DistInfo())
    assert len(a) == 12 and all(len(b) == 4 for b in a)
    # two ranks split one epoch without overlap
    r0 = sum(epoch_batches(50, 1, 3, 4, DistInfo(0, 2, 0)), [])
    r1 = sum(epoch_batches(50, 1, 3, 4, DistInfo(1, 2, 1)), [])
    assert not set(r0) & set(r1)


def test_cli_dry_run_and_diagnose(micro, tmp_path, capsys):
    params = tmp_path / "m.yaml"
    params.write_text(f"data_root: {micro}\nsize: 48\nT: 3\nbatch_size: 2\nmax_steps: 2\nthreads: 1\n"
                      "loss:\n  spatial_samples: [8, 4, 2, 1]\n  temporal_factor: 2\n")
    assert cli.main(["train-metric", "--config", str(params), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["T"] == 3
    assert cli.main(["train-metric", "--config", str(params), "--dry-run", "--set", "loss.tau=0.1",
                     "--set", "T=5"]) == 0
    resolved = json.loads(capsys.readouterr().out)["config"]
    assert resolved["T"] == 5 and resolved["loss"]["tau"] == 0.1 and resolved["loss"]["temporal_factor"] == 2
    assert cli.main(["train-metric", "--config", str(params), "--dry-run", "--set", "loss.tua=0.1"]) != 0
    assert "tua" in capsys.readouterr().err
    assert cli.main(["train-metric", "--config", str(params), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    for extra in ([], ["--untrained"]):
        assert cli.main(["diagnose", "--checkpoint", str(tmp_path / "r" / "ckpt_last.pt"), "--data", str(micro),
                         "--batches", "2", "--batch-size", "2", "--no-progress", *extra]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["untrained"] == bool(extra) and out["split"] == "test"
        for variant in ("vd", "cm"):
            for key in ("spatial_pos", "spatial_neg", "temporal_pos", "temporal_neg"):
                assert -1.0 <= out[variant][key] <= 1.0
            for measure in ("per_query", "official"):
                for kind in ("spatial", "temporal"):
                    entry = out[measure][variant][kind]
                    assert entry["gap"] == pytest.approx(entry["pos"] - entry["pos_mismatched"], abs=2e-4)
                    assert {"pos_sd", "neg_sd", "pos_mismatched_sd", "gap_sd"} <= set(entry)
        assert out["windows"] > 0 and out["mismatch_sentence"] == out["windows"] and out["seeds"] == [0, 1, 2]

    # identical clips: every query equals its positive, under both measures
    class Same(PairedWindowDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            return {**item, "emotional": item["neutral"]}

    ds = Same(micro, micro / "aligned_path.json", T=3, split="test", size=48)
    res = correlation_diagnostic(MetricNet(), ds, STCCLOptions(spatial_samples=(8, 4, 2, 1), temporal_factor=2),
                                 batch_size=2, max_batches=1, seeds=(0,))
    for measure in ("per_query", "official"):
        assert res[measure]["vd"]["spatial"]["pos"] == pytest.approx(1.0, abs=1e-4)
        assert res[measure]["cm"]["temporal"]["pos"] == pytest.approx(1.0, abs=1e-4)
        assert res[measure]["vd"]["spatial"]["neg"] < 0.999
        # another sentence of the same face is not the same thing said
        assert res[measure]["vd"]["temporal"]["pos_mismatched"] < 0.999
