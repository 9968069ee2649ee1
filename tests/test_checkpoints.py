"""Shipped checkpoints: the committed tiny metric network works on a fresh clone, its card's sha256 is the
file's, publishing strips a run to what inference needs, and the pipeline reuses a matching checkpoint."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from stccl import STCCLLoss
from stccl.checkpoints import CARD_FILE, RETRAIN_ENV, SHIPPED_DIR_ENV, SHIPPED_RECORD, card_sha256, file_sha256, publish
from stccl.core.train_metric import load_metric_config, train_metric
from stccl.data.mead import PairedWindowDataset
from stccl.io import StcclError, read_json
from stccl.pipeline import steps
from stccl.runs import CKPT_NAME, load_checkpoint
from stccl.spfem.config import load_spfem_config
from stccl.spfem.train import load_generator, train_spfem
from trainer_configs import metric_yaml, spfem_yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "checkpoints" / "metric_tiny.pt"


def test_shipped_tiny_metric_computes_the_loss_on_two_clips(micro_root):
    stccl = STCCLLoss.from_checkpoint(TINY, variant="vd")
    ds = PairedWindowDataset(micro_root, micro_root / "aligned_path.json", T=5, split="test")
    pair = ds[0]
    src, other = pair["neutral"][None], pair["emotional"][None]  # (1, T, 3, H, W) each: two clips
    fake = other.clone().requires_grad_(True)
    loss, parts = stccl(src, fake)
    assert loss.dim() == 0 and torch.isfinite(loss) and set(parts) == {"scc_vd", "tcc_vd"}
    loss.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    assert not any(p.requires_grad for p in stccl.parameters())


def test_card_gives_the_shipped_files_sha256():
    readme = ROOT / "checkpoints" / CARD_FILE
    for pt in sorted((ROOT / "checkpoints").glob("*.pt")):
        assert card_sha256(readme, pt.stem) == file_sha256(pt), f"{pt.name}: card and file differ; publish again"
    ckpt = load_checkpoint(TINY)
    assert "optimizer" not in ckpt and "rng" not in ckpt and TINY.stat().st_size < 8 * 2**20


def test_shipped_checkpoints_are_not_gitignored():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(TINY)])
    assert ignored.returncode == 1, "checkpoints/*.pt must be committed (see .gitignore)"


def test_readme_snippet_runs_on_the_shipped_checkpoint(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## The STCCL loss in your own SPFEM model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "checkpoints/metric_tiny.pt" in code and len(code.strip().splitlines()) <= 5
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md snippet", "exec"), {})
    assert re.search(r"tensor\([0-9.]+", capsys.readouterr().out)


def _metric_run(root: Path, tmp: Path, name: str = "run", **overrides):
    cfg = load_metric_config(metric_yaml(tmp / f"{name}.yaml", root, steps=2, ckpt_every=2), overrides)
    train_metric(cfg, tmp / name, progress=False)
    return cfg, tmp / name


def test_publish_strips_and_reuse_fills_an_empty_run(micro_root, tmp_path, monkeypatch):
    cfg, run = _metric_run(micro_root, tmp_path)
    shipped = tmp_path / "shipped"
    facts = publish(run, "m", shipped)
    pt = shipped / "m.pt"
    ckpt = load_checkpoint(pt)
    assert set(ckpt) == {"model", "config", "step", "extra", "shipped"} and ckpt["step"] == 2
    assert facts["sha256"] == card_sha256(shipped / CARD_FILE, "m") == file_sha256(pt)
    card = (shipped / CARD_FILE).read_text()
    assert "| steps | 2 " in card and "| machine | " in card and "device cpu" in card
    # publishing again replaces the card; a second name adds one
    publish(run, "m", shipped)
    publish(run, "m_half", shipped, dtype="fp16")
    cards = (shipped / CARD_FILE).read_text()
    assert cards.count("<!-- card: m -->") == 1 and cards.count("<!-- card:") == 2
    half = STCCLLoss.from_checkpoint(shipped / "m_half.pt").net.state_dict()
    full = STCCLLoss.from_checkpoint(pt).net.state_dict()
    assert all(torch.allclose(half[k].float(), full[k].float(), atol=1e-2, rtol=1e-2) for k in full)

    monkeypatch.setenv(SHIPPED_DIR_ENV, str(shipped))
    trained = []
    monkeypatch.setattr(steps, "train_metric", lambda cfg, run, **kw: trained.append(run))
    # same training config, other log cadence, device and run folder: filled from the shipped file
    same = load_metric_config(tmp_path / "run.yaml", {"log_every": 2, "device": "auto"})
    steps.run_metric(same, tmp_path / "reused")
    assert trained == [] and read_json(tmp_path / "reused" / SHIPPED_RECORD)["sha256"] == file_sha256(pt)
    got = load_checkpoint(tmp_path / "reused" / CKPT_NAME)
    assert all(torch.equal(got["model"][k], ckpt["model"][k]) for k in ckpt["model"])
    assert got["config"]["log_every"] == 2  # the run's own config
    # another config, force, or --retrain: trained
    steps.run_metric(load_metric_config(tmp_path / "run.yaml", {"lr": 0.01}), tmp_path / "other")
    steps.run_metric(same, tmp_path / "forced", force=True)
    monkeypatch.setenv(RETRAIN_ENV, "1")
    steps.run_metric(same, tmp_path / "retrained")
    assert trained == [tmp_path / "other", tmp_path / "forced", tmp_path / "retrained"]


def test_reuse_needs_the_same_data(micro_root, tmp_path, monkeypatch):
    from stccl.data import synth

    cfg, run = _metric_run(micro_root, tmp_path)
    publish(run, "m", tmp_path / "shipped")
    other = tmp_path / "other_data"
    synth.synthesize(other, synth.make_config("tiny", n_identities=4, n_test=1, n_sentences=1, syllables=(3, 3),
                                              emotions=("neutral", "happy", "sad"), workers=1),
                     seed=6, progress=False)  # the micro set, another seed
    monkeypatch.setenv(SHIPPED_DIR_ENV, str(tmp_path / "shipped"))
    trained = []
    monkeypatch.setattr(steps, "train_metric", lambda cfg, run, **kw: trained.append(run))
    steps.run_metric(load_metric_config(tmp_path / "run.yaml", {"data_root": str(other)}), tmp_path / "r")
    assert trained == [tmp_path / "r"]


def test_publish_spfem_keeps_the_generator(micro_root, tmp_path, monkeypatch):
    cfg = load_spfem_config(spfem_yaml(tmp_path / "s.yaml", micro_root, steps=2, ckpt_every=2))
    train_spfem(cfg, tmp_path / "s", progress=False)
    facts = publish(tmp_path / "s", "spfem_micro", tmp_path / "shipped")
    model = load_checkpoint(tmp_path / "shipped" / "spfem_micro.pt")["model"]
    assert model and all(k.startswith("generator.") for k in model)
    G, _ = load_generator(tmp_path / "shipped" / "spfem_micro.pt")
    G0, _ = load_generator(tmp_path / "s")
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G0.state_dict().values()))
    assert facts["kind"] == "spfem" and facts["wall_s"] is not None
    # the pipeline fills an SPFEM run of the same config from it, and evaluation reads the generator
    monkeypatch.setenv(SHIPPED_DIR_ENV, str(tmp_path / "shipped"))
    monkeypatch.setattr(steps, "train_spfem", lambda *a, **kw: pytest.fail("trained despite a shipped run"))
    steps.run_spfem(cfg, tmp_path / "reused")
    G1, _ = load_generator(tmp_path / "reused")
    assert all(torch.equal(a, b) for a, b in zip(G1.state_dict().values(), G0.state_dict().values()))


def test_publish_names_what_is_wrong(tmp_path):
    with pytest.raises(StcclError, match="checkpoint not found"):
        publish(tmp_path / "nothing", "m", tmp_path / "shipped")
    with pytest.raises(StcclError, match="--name"):
        publish(tmp_path / "nothing", "m.pt", tmp_path / "shipped")


def test_machine_json_keeps_one_entry_per_session_and_wall_time_adds_them(micro_root, tmp_path):
    from stccl.checkpoints import wall_seconds

    cfg = load_metric_config(metric_yaml(tmp_path / "r.yaml", micro_root, steps=2, ckpt_every=1))
    train_metric(cfg, tmp_path / "r", stop_at_step=1, progress=False)
    train_metric(cfg, tmp_path / "r", resume=True, progress=False)
    sessions = read_json(tmp_path / "r" / "machine.json")["sessions"]
    assert len(sessions) == 2 and all(s["device"] == "cpu" and s["cpu_cores"] >= 1 for s in sessions)
    assert wall_seconds([{"elapsed_s": 1.0}, {"elapsed_s": 2.5}, {"elapsed_s": 0.5}, {"elapsed_s": 1.5}]) == 4.0
    assert wall_seconds([{"step": 1}]) is None


def test_an_spfem_run_matches_only_the_same_metric_weights(micro_root, tmp_path):
    from stccl.checkpoints import stccl_weights

    _, run = _metric_run(micro_root, tmp_path)
    publish(run, "m", tmp_path / "shipped")
    spfem = {"kind": "spfem", "stccl": True}
    trained = stccl_weights({**spfem, "stccl_checkpoint": str(run / CKPT_NAME)})
    # the shipped copy (what a reused metric run holds) has the same digest; other weights do not
    assert stccl_weights({**spfem, "stccl_checkpoint": str(tmp_path / "shipped" / "m.pt")}) == trained
    assert stccl_weights({**spfem, "stccl_checkpoint": str(run / "ckpt_init.pt")}) != trained
    assert stccl_weights({"kind": "spfem", "stccl": False}) is None
