"""Shipped checkpoints: publish a finished run into `checkpoints/`, and reuse one instead of training.

    stccl publish-checkpoint --run reports/runs/smoke/metric --name metric_tiny [--diagnose FILE] [--dtype fp16]

`publish` copies what inference needs from RUN/ckpt_last.pt (weights, config, step; no optimiser or RNG
state; SPFEM runs keep the generator only) into checkpoints/NAME.pt, with the run's log (metrics.jsonl),
its machine (machine.json) and a fingerprint of its data inside; loads the file back as its users will
(`STCCLLoss.from_checkpoint`, or `load_generator` for an SPFEM run) and checks the weights; and writes
NAME's model card into checkpoints/README.md from the run's own files. Every number in a card is read from
those files or computed from them; none is typed.

`find_shipped` returns the shipped checkpoint whose training config equals a run's (keys that cannot change
the weights, `NOT_TRAINING`, left out) and whose data fingerprint matches; `reuse` fills an empty run folder
from it (config.json, metrics.jsonl, machine.json, ckpt_last.pt, and SHIPPED.json saying where the weights
came from), so that every step after training reads it like a trained run. `stccl.pipeline.steps` does this
unless asked to retrain (`force`, `stccl reproduce --retrain`, or `shipped_checkpoints: false` in the params).

Data fingerprint: for `stccl synth` data its render config and seed (meta.json; the same config and seed
render the same clips), else the sha256 of the alignment file (a MEAD root).

At about 440 lines this stays one module: publishing, the model card and reuse read and write the same
file format and the same fingerprints; split, each half would re-state the other's format.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from stccl.core.losses import STCCLLoss
from stccl.io import StcclError, atomic_write_json, atomic_write_text, read_json, read_jsonl, to_json
from stccl.runs import CKPT_NAME, MACHINE_NAME, git_commit, json_roundtrip, load_checkpoint, save_checkpoint
from stccl.spfem.train import load_generator

SHIPPED_DIR_ENV = "STCCL_CHECKPOINTS"   # another folder of shipped checkpoints (tests; a user's own)
RETRAIN_ENV = "STCCL_RETRAIN"          # "1": never reuse (set by `stccl reproduce --retrain`)
CARD_FILE = "README.md"
SHIPPED_RECORD = "SHIPPED.json"        # in a run folder filled from a shipped checkpoint
KINDS = ("metric", "spfem")
# Config keys that do not change the trained weights: where the data lies (the fingerprint stands for it),
# the device and threads, logging and checkpoint cadence, the metric checkpoint's path (its weights' digest
# stands for it).
NOT_TRAINING = frozenset({"data_root", "align_path", "device", "num_workers", "threads", "log_every",
                          "ckpt_every", "stccl_checkpoint"})
_CARD_HEADER = """# Shipped checkpoints

Trained weights that ship with the kit, so that the STCCL loss can be used (and `stccl reproduce` can skip
training) on a fresh clone. Each card below is written by `stccl publish-checkpoint` from the run's own
files (config.json, metrics.jsonl, machine.json, the diagnostic or evaluation JSON); no number in a card is
typed by hand. A file holds weights, config, step and the run's log: no optimiser or RNG state.

```python
from stccl import STCCLLoss
stccl = STCCLLoss.from_checkpoint("checkpoints/<name>.pt", variant="vd")   # a metric checkpoint
```

`stccl reproduce` (through `stccl.pipeline.steps`) reuses a checkpoint here when the run it would train has
the same training config (keys that cannot change the weights left out: {ignored}; an SPFEM run's
metric network is compared by a digest of its weights) on the same data (same `stccl synth` config and
seed, or the same alignment file), and says so in the notebook output and in
the run folder's `SHIPPED.json`. `stccl reproduce --retrain` (or `shipped_checkpoints: false` in the params
file) trains runs not yet in the run folder instead; `stccl reproduce --force` retrains the steps it reruns.
"""


def shipped_dir() -> Path:
    """The folder of shipped checkpoints: $STCCL_CHECKPOINTS, else `checkpoints/` of the kit's checkout."""
    env = os.environ.get(SHIPPED_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "checkpoints"


def shown(path: Path) -> str:
    """`path` relative to the working directory where it lies below it (messages read better)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def retrain_requested() -> bool:
    return os.environ.get(RETRAIN_ENV, "") not in ("", "0")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes: equal digests, equal weights."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(data_root: str | Path, align_path: str | Path | None = None) -> dict:
    """What identifies a run's data: a `stccl synth` render config and seed, else its alignment file's sha256."""
    root = Path(data_root)
    meta = root / "meta.json"
    if meta.is_file():
        m = read_json(meta, "synthetic-data meta file")
        if isinstance(m, dict) and m.get("kind") == "stccl-synthetic":
            cfg = {k: v for k, v in m.get("config", {}).items() if k != "workers"}  # workers: speed only
            return json_roundtrip({"kind": "stccl-synthetic", "seed": m.get("seed"), "config": cfg})
    align = Path(align_path) if align_path else root / "aligned_path.json"
    if not align.is_file():
        raise StcclError(f"{align}: alignment file not found, so the data of {root} cannot be identified; "
                         f"render or prepare the data first (stccl synth, or stccl prep-mead + stccl align)")
    return {"kind": "alignment", "file": align.name, "sha256": file_sha256(align)}


def training_key(cfg: dict) -> dict:
    """The part of a run config (config.json form) that decides the trained weights."""
    key = {k: v for k, v in json_roundtrip(cfg).items() if k not in NOT_TRAINING}
    if key.get("kind") == "metric" and isinstance(key.get("net"), dict):
        # configs written before net.init existed trained from scratch: the same weights as init "scratch"
        key["net"] = {"init": "scratch", **key["net"]}
    return key


def stccl_weights(cfg: dict) -> str | None:
    """Digest of the metric weights an SPFEM config trains with (None: no STCCL term)."""
    if cfg.get("kind") != "spfem" or not cfg.get("stccl"):
        return None
    return weights_digest(load_checkpoint(cfg["stccl_checkpoint"])["model"])


# ---------------------------------------------------------------------------
# Publish
# ---------------------------------------------------------------------------

def _strip(model: dict[str, torch.Tensor], kind: str, dtype: str) -> dict[str, torch.Tensor]:
    if kind == "spfem":  # inference runs the generator only
        model = {k: v for k, v in model.items() if k.startswith("generator.")}
    if dtype == "fp16":  # integer buffers (BN step counts) stay as they are
        model = {k: v.half() if v.is_floating_point() else v for k, v in model.items()}
    return {k: v.detach().cpu().clone() for k, v in model.items()}


def wall_seconds(records: list[dict]) -> float | None:
    """Training wall time from a log's `elapsed_s` (each resumed session restarts its clock at 0)."""
    total, last = 0.0, None
    for r in records:
        e = r.get("elapsed_s")
        if e is None:
            continue
        if last is not None and e < last:
            total += last
        last = e
    return None if last is None else round(total + last, 1)


def _find_diagnose(run: Path) -> Path | None:
    """RUN/diagnose*.json, or the reproduction's diagnose_after.json next to its `metric` run folder."""
    mine = sorted(run.glob("diagnose*.json"))
    if mine:
        return mine[0]
    beside = run.parent / "diagnose_after.json"
    if beside.is_file():
        try:
            if Path(read_json(beside).get("checkpoint", "")).resolve() == (run / CKPT_NAME).resolve():
                return beside
        except StcclError:
            return None
    return None


def _verify(path: Path, kind: str, original: dict[str, torch.Tensor], dtype: str) -> None:
    """Load the published file as its users will and compare the weights with the run's."""
    if kind == "metric":
        loaded = STCCLLoss.from_checkpoint(path).net.state_dict()
        want = {k: v.float() if v.is_floating_point() else v for k, v in _strip(original, kind, dtype).items()}
    else:
        loaded = {f"generator.{k}": v for k, v in load_generator(path)[0].state_dict().items()}
        want = {k: v.float() if v.is_floating_point() else v for k, v in _strip(original, kind, dtype).items()}
    if loaded.keys() != want.keys() or not all(torch.equal(loaded[k], want[k]) for k in want):
        raise StcclError(f"{path}: the published weights do not load back equal to the run's; not published")


def publish(run: str | Path, name: str, out_dir: str | Path | None = None, diagnose: str | Path | None = None,
            evaluation: str | Path | None = None, dtype: str = "fp32", note: str = "") -> dict:
    """Publish RUN's checkpoint as OUT_DIR/NAME.pt and write its card; returns the card's facts."""
    run = Path(run)
    out_dir = Path(out_dir) if out_dir else shipped_dir()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".pt"):
        raise StcclError(f"--name {name!r}: use letters, digits, '_', '-' or '.', without .pt")
    if dtype not in ("fp32", "fp16"):
        raise StcclError(f"--dtype {dtype!r}: use fp32 or fp16")
    ckpt = load_checkpoint(run / CKPT_NAME)
    cfg = ckpt["config"]
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise StcclError(f"{run / CKPT_NAME}: kind {kind!r} cannot be published; expected one of {KINDS}")
    if not (run / "metrics.jsonl").is_file():
        raise StcclError(f"{run}/metrics.jsonl not found: publish a run folder written by stccl train-{kind}")
    metrics = read_jsonl(run / "metrics.jsonl")
    machine = read_json(run / MACHINE_NAME, "run machine file") if (run / MACHINE_NAME).is_file() else None
    data = data_fingerprint(cfg["data_root"], cfg.get("align_path"))
    diag_path = Path(diagnose) if diagnose else (_find_diagnose(run) if kind == "metric" else None)
    diag = read_json(diag_path, "diagnose output") if diag_path else None
    eval_path = Path(evaluation) if evaluation else (run / "eval.json" if (run / "eval.json").is_file() else None)
    ev = read_json(eval_path, "evaluation file") if eval_path else None
    shipped = {"name": name, "kind": kind, "dtype": dtype, "data": data, "stccl_weights": stccl_weights(cfg),
               "weights": weights_digest(ckpt["model"]) if dtype == "fp32" else None,
               "metrics": metrics, "machine": machine, "source_run": str(run),
               "published": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "publish_commit": git_commit()}
    extra = {k: v for k, v in ckpt.get("extra", {}).items() if k in ("epoch", "steps_per_epoch", "name")}
    payload = {"model": _strip(ckpt["model"], kind, dtype), "config": cfg, "step": int(ckpt["step"]),
               "extra": extra, "shipped": shipped}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    save_checkpoint(path, payload)
    try:
        _verify(path, kind, ckpt["model"], dtype)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    facts = {"name": name, "file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path),
             "kind": kind, "dtype": dtype, "step": int(ckpt["step"]), "extra": extra, "config": cfg, "data": data,
             "wall_s": wall_seconds(metrics), "last_log": metrics[-1] if metrics else {}, "machine": machine,
             "diagnose": diag, "diagnose_file": str(diag_path) if diag_path else None, "evaluation": ev,
             "evaluation_file": str(eval_path) if eval_path else None, "source_run": str(run),
             "published": shipped["published"], "publish_commit": shipped["publish_commit"],
             "reusable": dtype == "fp32", "note": " ".join(note.split())}
    write_card(out_dir / CARD_FILE, name, render_card(facts))
    return facts


# ---------------------------------------------------------------------------
# Model cards
# ---------------------------------------------------------------------------

def _num(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return str(x) if isinstance(x, int) else f"{x:.{digits}f}"


def _data_line(data: dict) -> str:
    if data["kind"] == "stccl-synthetic":
        c = data["config"]
        return (f"`stccl synth` preset {c.get('preset')}, seed {data.get('seed')}: {c.get('n_identities')} "
                f"identities ({c.get('n_test')} held out), {c.get('n_sentences')} sentences, "
                f"{len(c.get('emotions', []))} emotions, {c.get('size')} px")
    return f"alignment file `{data['file']}` sha256 `{data['sha256']}`"


def _machine_lines(machine: dict | None) -> list[str]:
    if not machine or not machine.get("sessions"):
        return ["| machine | not recorded by the run (trained before runs wrote machine.json) |"]
    rows = []
    for i, s in enumerate(machine["sessions"]):
        gpu = f", GPU {s['gpu']}" if s.get("gpu") else ""
        label = "machine" if len(machine["sessions"]) == 1 else f"machine (session {i + 1})"
        rows.append(f"| {label} | {s.get('cpu')}, {s.get('cpu_cores')} cores available, {s.get('torch_threads')} "
                    f"torch thread(s), device {s.get('device')}{gpu}; {s.get('platform')}, Python "
                    f"{s.get('python')}, torch {s.get('torch')}; code {s.get('commit') or 'not a git checkout'}; "
                    f"started {s.get('started')} |")
    return rows


def _config_summary(cfg: dict) -> str:
    cfg = json_roundtrip(cfg)  # tuples print as lists, as in config.json
    if cfg["kind"] == "metric":
        loss = cfg.get("loss", {})
        stop = (f"max_steps {cfg.get('max_steps')}" if cfg.get("max_steps") else f"epochs {cfg.get('epochs')}")
        if cfg.get("max_minutes"):
            stop += f", max_minutes {cfg.get('max_minutes')}"
        return (f"arch {cfg.get('net', {}).get('arch')} (init {cfg.get('net', {}).get('init', 'scratch')}), size {cfg.get('size') or 'as stored'}, T {cfg.get('T')}, "
                f"batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, loss {loss.get('variant')} (lambda_T "
                f"{loss.get('lambda_T')}, tau {loss.get('tau')}, adaptive {loss.get('adaptive')}, spatial samples "
                f"{loss.get('spatial_samples')}, temporal factor {loss.get('temporal_factor')}), {stop}, "
                f"seed {cfg.get('seed')}")
    return (f"{cfg.get('name')}: stccl {cfg.get('stccl')}"
            + (f" ({cfg.get('stccl_variant')}, lambda_stccl {cfg.get('lambda_stccl')})" if cfg.get("stccl") else "")
            + f", size {cfg.get('size')}, clip_frames {cfg.get('clip_frames')}, batch {cfg.get('batch_size')}, "
              f"steps {cfg.get('steps')}, lr_g {cfg.get('lr_g')}, seed {cfg.get('seed')}")


def _diagnose_table(diag: dict) -> list[str]:
    rows = ["| measure | variant | kind | pos | neg | pos_mismatched | gap |", "|---|---|---|---|---|---|---|"]
    for measure in ("per_query", "official"):
        for variant, kinds in diag.get(measure, {}).items():
            for kind, e in kinds.items():
                cells = [f"{_num(e.get(n))} ± {_num(e.get(n + '_sd'))}" for n in ("pos", "neg", "pos_mismatched", "gap")]
                rows.append(f"| {measure} | {variant} | {kind} | " + " | ".join(cells) + " |")
    return rows


def render_card(f: dict) -> str:
    """The Markdown card of one published checkpoint (from `publish`'s facts)."""
    cfg = f["config"]
    last = {k: v for k, v in f["last_log"].items() if k in ("loss", "loss_g", "loss_d") or k.endswith("_chance")
            or k in ("scc_vd", "tcc_vd", "scc_cm", "tcc_cm")}
    epochs = ""
    if "steps_per_epoch" in f["extra"]:
        epochs = (f" ({f['extra']['steps_per_epoch']} steps per epoch; the last step was in epoch "
                  f"{f['extra'].get('epoch')})")
    wall = "not logged" if f["wall_s"] is None else f"{f['wall_s']} s ({f['wall_s'] / 60:.1f} min), from metrics.jsonl elapsed_s"
    use = ('`STCCLLoss.from_checkpoint("checkpoints/' + f["file"] + '", variant="vd")`' if f["kind"] == "metric"
           else f'`load_generator("checkpoints/{f["file"]}")` (stccl.spfem.train)')
    lines = [
        f"## {f['name']}", "",
        "| | |", "|---|---|",
        f"| file | `checkpoints/{f['file']}`: {f['bytes']} bytes, {f['dtype']} weights, no optimiser state |",
        f"| sha256 | `{f['sha256']}` |",
        *([f"| note | {f['note']} |"] if f.get("note") else []),
        f"| kind | {'metric network' if f['kind'] == 'metric' else 'SPFEM generator'}; use: {use} |",
        f"| data | {_data_line(f['data'])} |",
        f"| config | {_config_summary(cfg)} (full config below) |",
        f"| steps | {f['step']}{epochs} |",
        f"| wall time | {wall} |",
        *_machine_lines(f["machine"]),
        f"| last logged step | " + ", ".join(f"{k} {_num(v)}" for k, v in last.items()) + " |",
        f"| reused by `stccl reproduce` | {'yes, when config and data match' if f['reusable'] else 'no (fp16 weights differ from the trained ones)'} |",
        f"| source | run folder `{f['source_run']}`, published {f['published']} (code {f['publish_commit'] or 'not a git checkout'}) |",
        "",
    ]
    if f["diagnose"]:
        d = f["diagnose"]
        lines += [f"Diagnostic (`{f['diagnose_file']}`: split {d.get('split')}, {d.get('windows')} windows, seeds "
                  f"{d.get('seeds')}; mean ± SD over seeds; `gap = pos - pos_mismatched`, see `stccl diagnose`):", "",
                  *_diagnose_table(d), ""]
    elif f["kind"] == "metric":
        lines += ["Diagnostic: none given (`stccl diagnose ... > RUN/diagnose.json`, then publish again).", ""]
    if f["evaluation"]:
        s = f["evaluation"].get("summary", {})
        lines += [f"Evaluation (`{f['evaluation_file']}`, {f['evaluation'].get('clips')} clips, split "
                  f"{f['evaluation'].get('split')}): " + ", ".join(f"{k} {_num(v)}" for k, v in s.items()), ""]
    lines += ["<details><summary>full training config (config.json)</summary>", "", "```json",
              to_json(cfg, indent=1), "```", "", "</details>", ""]
    return "\n".join(lines)


def write_card(readme: Path, name: str, card: str) -> Path:
    """Put NAME's card into README (replacing its earlier card), cards in name order, header on top."""
    begin, end = "<!-- card: {} -->", "<!-- /card: {} -->"
    cards: dict[str, str] = {}
    if readme.is_file():
        for m in re.finditer(r"<!-- card: (\S+) -->\n(.*?)<!-- /card: \1 -->\n", readme.read_text(), re.S):
            cards[m.group(1)] = m.group(2)
    cards[name] = card.rstrip("\n") + "\n"
    header = _CARD_HEADER.format(ignored=", ".join(f"`{k}`" for k in sorted(NOT_TRAINING)))
    body = "".join(f"{begin.format(n)}\n{cards[n]}{end.format(n)}\n\n" for n in sorted(cards))
    return atomic_write_text(readme, header + "\n" + body.rstrip("\n") + "\n")


def card_sha256(readme: str | Path, name: str) -> str:
    """The sha256 NAME's card gives (tests compare it with the file)."""
    text = Path(readme).read_text()
    m = re.search(rf"<!-- card: {re.escape(name)} -->\n.*?\| sha256 \| `([0-9a-f]{{64}})` \|", text, re.S)
    if not m:
        raise StcclError(f"{readme}: no card with a sha256 for {name!r}")
    return m.group(1)


# ---------------------------------------------------------------------------
# Reuse
# ---------------------------------------------------------------------------

def find_shipped(cfg: dict, folder: str | Path | None = None) -> tuple[Path, dict] | None:
    """The shipped checkpoint (path, payload) trained with `cfg` (config.json form) on the same data, or None."""
    folder = Path(folder) if folder else shipped_dir()
    if not folder.is_dir():
        return None
    key = training_key(cfg)
    try:
        data = data_fingerprint(cfg["data_root"], cfg.get("align_path"))
        metric_weights = stccl_weights(cfg)
    except StcclError:
        return None  # no data (or no metric checkpoint) yet: training will say what is missing
    for path in sorted(folder.glob("*.pt")):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a Git LFS pointer or a damaged file: not a candidate
            continue
        s = ckpt.get("shipped") if isinstance(ckpt, dict) else None
        if (not s or s.get("kind") != cfg.get("kind") or s.get("dtype") != "fp32"
                or training_key(ckpt.get("config", {})) != key or s.get("data") != data
                or s.get("stccl_weights") != metric_weights):
            continue
        return path, ckpt
    return None


def reuse(run: str | Path, cfg: dict, path: Path, ckpt: dict) -> Path:
    """Fill the empty run folder `run` from the shipped checkpoint as if the run had trained there."""
    run = Path(run)
    if run.exists() and any(run.iterdir()):
        raise StcclError(f"{run} is not empty; a shipped checkpoint only fills an empty run folder")
    run.mkdir(parents=True, exist_ok=True)
    s = ckpt["shipped"]
    atomic_write_json(run / SHIPPED_RECORD, {
        "checkpoint": shown(path), "sha256": file_sha256(path), "name": s.get("name"),
        "trained_in": s.get("source_run"), "reused": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "weights reused from a shipped checkpoint (same training config and data), not trained here; "
                "metrics.jsonl and machine.json are the shipped run's"})
    atomic_write_json(run / "config.json", cfg)
    atomic_write_text(run / "metrics.jsonl", "".join(to_json(r) + "\n" for r in s.get("metrics", [])))
    if s.get("machine"):
        atomic_write_json(run / MACHINE_NAME, s["machine"])
    # the run's own config, so that later loads and resume checks compare like with like
    save_checkpoint(run / CKPT_NAME, {"model": ckpt["model"], "config": cfg, "step": ckpt["step"],
                                      "extra": {**ckpt.get("extra", {}), "shipped": str(path)}})
    return run


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _cmd_publish(args) -> int:
    facts = publish(args.run, args.name, args.out, args.diagnose, args.evaluation, args.dtype, args.note)
    print(to_json({k: facts[k] for k in ("name", "file", "bytes", "sha256", "kind", "dtype", "step", "wall_s",
                                         "diagnose_file", "evaluation_file")}
                  | {"card": str(Path(args.out or shipped_dir()) / CARD_FILE)}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("publish-checkpoint", help="copy a finished run's weights into checkpoints/ with a model card",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Copy RUN/ckpt_last.pt stripped to what inference needs (weights, config, step, "
                                   "the run's log) into OUT/NAME.pt, check that it loads, and write NAME's card "
                                   "in OUT/README.md from the run's files.")
    p.add_argument("--run", required=True, help="a finished run folder (stccl train-metric or train-spfem)")
    p.add_argument("--name", required=True, help="file name without .pt, e.g. metric_tiny")
    p.add_argument("--out", default=None, help="folder (default: the kit's checkpoints/ or $STCCL_CHECKPOINTS)")
    p.add_argument("--diagnose", default=None,
                   help="stccl diagnose JSON of this checkpoint (default: RUN/diagnose*.json, or the reproduction's "
                        "diagnose_after.json beside RUN when it names RUN's checkpoint)")
    p.add_argument("--evaluation", default=None, help="evaluation JSON of an SPFEM run (default: RUN/eval.json)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"],
                   help="fp16 halves the file; such a checkpoint is not reused in place of training")
    p.add_argument("--note", default="", help="one line of words for the card (what the run is); no numbers")
    p.set_defaults(func=_cmd_publish)
