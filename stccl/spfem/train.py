"""Train the SPFEM generator without paired targets, optionally with the frozen STCCL loss.

    stccl train-spfem --config params/spfem_default_vd.yaml --out reports/runs/spfem_vd_s0 [--seed 0] [--resume]

As in reality, no ground-truth target is ever used: a source window x (any
emotion e_src) is pushed to a random target emotion e_tgt (a label, or a
reference window of another train identity showing e_tgt) and trained with

    L_G = l_adv  * LSGAN(D(G(x, e_tgt)))                  # looks like a real frame
        + l_cls  * CE(C_train(G(x, e_tgt)), e_tgt)        # shows the target emotion
        + l_rec  * |G(x, e_src) - x|                      # self-reconstruction
        + l_cyc  * |G(G(x, e_tgt), e_src) - x|            # cycle back to the source
        + l_id   * (1 - cos(E_id(G(x, e_tgt)), E_id(x)))  # same person
        + l_stccl * STCCL(x, G(x, e_tgt))                 # optional: stccl_lambda_S SCC + stccl_lambda_T TCC
        + l_mask * mean(mask) + l_flow * mean|flow|        # warp_residual: small, local edits (0: off)

C_train sees the generated frames through a small random shift and noise
(`cls_shift`, `cls_noise`); `source_emotions` restricts which clips are edited
(the default configs use neutral sources only, the evaluated task); the
`g_cls_acc` and `g_change` log entries are diagnostics (C_train accuracy on the
outputs, mean |output - input|), not losses.

C_train and E_id are frozen aux nets trained on the train identities
(`stccl.spfem.aux_nets`); STCCL is the frozen metric network from
`stccl train-metric` (`stccl.core.losses.STCCLLoss.from_checkpoint`). The run
folder follows the metric trainer: config.json, metrics.jsonl, atomic
ckpt_last.pt, resume, non-finite guard, seeds; DDP under torchrun.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from stccl.config import from_dict, parse_sets, to_dict
from stccl.core.losses import STCCLLoss
from stccl.data.mead import EMOTIONS, ClipWindowDataset, resolve_test_actors
from stccl.distributed import all_reduce_mean, barrier, cleanup, init_distributed, local_device
from stccl.io import StcclError, resolve_device, seed_everything, to_json
from stccl.runs import RunDir, check_finite, load_checkpoint, set_rng_state
from stccl.spfem.aux_nets import load_aux_nets, train_landmarks
from stccl.spfem.expression import landmark_basis
from stccl.spfem.config import RENAMED_KEYS, SpfemConfig, load_spfem_config
from stccl.spfem.generator import PatchDiscriminator, build_generator, random_other_emotion

StcclTerm = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, dict]"]


def build_stccl_term(cfg: SpfemConfig, device: torch.device) -> StcclTerm | None:
    """The frozen STCCL loss as a callable (input_clip, generated_clip) -> (scalar, parts), or None."""
    if not cfg.stccl:
        return None
    path = Path(cfg.stccl_checkpoint)
    if not path.is_file():
        raise StcclError(f"stccl_checkpoint not found: {path}; train one with "
                         f"`stccl train-metric --config params/metric_default.yaml --out ...`")
    loss = STCCLLoss.from_checkpoint(path, variant=cfg.stccl_variant, lambda_S=cfg.stccl_lambda_S,
                                     lambda_T=cfg.stccl_lambda_T)
    return loss.to(device)


class SpfemLosses(nn.Module):
    """The generator and discriminator objectives; frozen aux nets and the STCCL term are plugged in."""

    def __init__(self, cfg: SpfemConfig, emotion_net: nn.Module, identity_net: nn.Module,
                 stccl_term: StcclTerm | None = None, landmark_emotion_net: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        if cfg.cls_on == "landmarks" and landmark_emotion_net is None:
            raise StcclError("cls_on: landmarks needs the landmark emotion classifier (generator.output: expression)")
        self.landmark_emotion_net = landmark_emotion_net
        self.emotion_net = emotion_net
        self.identity_net = identity_net
        self.stccl_term = stccl_term

    def generator_loss(self, G: nn.Module, D: nn.Module, x: torch.Tensor, e_src: torch.Tensor,
                       e_tgt: torch.Tensor, reference: torch.Tensor | None = None,
                       ref_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        # x: (B, T, 3, H, W); e_src, e_tgt: (B,); reference: (B, T, 3, H, W) used where ref_mask (B,) is set
        cfg = self.cfg
        B, T = x.shape[:2]
        fake, aux = G(x, emotion=e_tgt, return_aux=True)  # (B, T, 3, H, W)
        auxes = [aux]
        if reference is not None and ref_mask is not None and bool(ref_mask.any()):
            fake_ref, aux_ref = G(x[ref_mask], reference=reference[ref_mask], return_aux=True)
            fake = _scatter(fake, ref_mask, fake_ref)
            auxes.append(aux_ref)
        frames = fake.flatten(0, 1)  # (B*T, 3, H, W)
        src_frames = x.flatten(0, 1)
        parts: dict[str, torch.Tensor] = {}
        logits = D(frames)
        parts["adv"] = F.mse_loss(logits, torch.ones_like(logits))
        tgt_frames = e_tgt.repeat_interleave(T)
        if cfg.cls_on == "landmarks":  # the manipulated landmarks behind the frames in `fake`
            edited = auxes[0]["edited_landmarks"].view(B, T, -1, 2)
            if len(auxes) > 1:
                edited = _scatter(edited, ref_mask, auxes[1]["edited_landmarks"].view(-1, T, *edited.shape[2:]))
            cls_logits = self.landmark_emotion_net(edited.flatten(0, 1))  # (B*T, E)
        else:
            cls_logits = self.emotion_net(_jitter(frames, cfg.cls_shift, cfg.cls_noise))  # (B*T, E)
        parts["cls"] = F.cross_entropy(cls_logits, tgt_frames)
        parts["rec"] = (G(x, emotion=e_src) - x).abs().mean()
        parts["cyc"] = (G(fake, emotion=e_src) - x).abs().mean()
        with torch.no_grad():
            id_src = self.identity_net(src_frames)
        parts["id"] = (1 - (self.identity_net(frames) * id_src).sum(1)).mean()
        total = (cfg.lambda_adv * parts["adv"] + cfg.lambda_cls * parts["cls"] + cfg.lambda_rec * parts["rec"]
                 + cfg.lambda_cyc * parts["cyc"] + cfg.lambda_id * parts["id"])
        # the edit's size: the residual mask's area and the mean displacement (only where the output mode has them)
        if cfg.lambda_mask > 0 and cfg.generator.output in ("warp_blend", "warp_residual", "blend"):
            parts["mask"] = torch.stack([a["mask"].mean() for a in auxes]).mean()
            total = total + cfg.lambda_mask * parts["mask"]
        if cfg.lambda_flow > 0 and auxes[0]["flow"] is not None:
            parts["flow"] = torch.stack([a["flow"].abs().mean() for a in auxes]).mean()
            total = total + cfg.lambda_flow * parts["flow"]
        if self.stccl_term is not None:
            stccl, _ = self.stccl_term(x, fake)
            parts["stccl"] = stccl
            total = total + cfg.lambda_stccl * stccl
        # diagnostics, not optimised: does C_train see the target, and how far is the output from the input
        parts["cls_acc"] = (cls_logits.argmax(1) == tgt_frames).float().mean().detach()
        parts["change"] = (fake - x).abs().mean().detach()
        return total, parts, fake

    def discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # real, fake: (B, T, 3, H, W); LSGAN
        lr, lf = D(real), D(fake.detach())
        return 0.5 * (F.mse_loss(lr, torch.ones_like(lr)) + F.mse_loss(lf, torch.zeros_like(lf)))


def _jitter(frames: torch.Tensor, shift: int, noise: float) -> torch.Tensor:
    """frames (N, 3, H, W) moved by one random integer offset in [-shift, shift]^2 (edge padded) plus noise."""
    if shift > 0:
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,)))
        pad = F.pad(frames, (shift, shift, shift, shift), mode="replicate")
        H, W = frames.shape[-2:]
        frames = pad[..., shift + dy:shift + dy + H, shift + dx:shift + dx + W]
    if noise > 0:
        frames = frames + noise * torch.randn_like(frames)
    return frames


def _scatter(full: torch.Tensor, mask: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """A copy of `full` (B, ...) whose rows where mask (B,) is set are replaced by `part` (mask.sum(), ...)."""
    out = full.clone()
    out[mask] = part
    return out


class BatchSampler:
    """Batches as a deterministic function of (seed, step): resume reproduces the data order."""

    def __init__(self, cfg: SpfemConfig, dist_info):
        self.cfg = cfg
        self.dist = dist_info
        tests = resolve_test_actors(cfg.data_root, list(cfg.test_actors) if cfg.test_actors is not None else None)
        held_out = list(tests) + list(cfg.val_actors)
        self.src = ClipWindowDataset(cfg.data_root, T=cfg.clip_frames, split="train", test_actors=held_out, size=cfg.size,
                                     emotions=cfg.source_emotions)
        self.ref = None
        if cfg.p_reference > 0:
            self.ref = ClipWindowDataset(cfg.data_root, T=cfg.clip_frames, split="train", test_actors=held_out, size=cfg.size)
            # window -> (emotion, actor) of its clip, to draw a reference of the target emotion from someone else
            clip_emotion = np.array([EMOTIONS.index(c[1]) for c in self.ref.clips])
            clip_actor = np.array([c[0] for c in self.ref.clips])
            self.ref_emotion = clip_emotion[self.ref._clip_of]
            self.ref_actor = clip_actor[self.ref._clip_of]

    def batch(self, step: int) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step])
        world = self.dist.world_size
        picks = rng.integers(len(self.src), size=cfg.batch_size * world)[self.dist.rank::world]
        items = [self.src[int(i)] for i in picks]
        x = torch.stack([it["frames"] for it in items])  # (B, T, 3, H, W)
        e_src = torch.tensor([it["emotion_idx"] for it in items])
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        e_tgt = random_other_emotion(e_src, len(EMOTIONS), gen)
        out = {"x": x, "e_src": e_src, "e_tgt": e_tgt, "actors": [it["actor"] for it in items]}
        if self.ref is not None:
            ref_mask = torch.from_numpy(rng.random(len(items)) < cfg.p_reference)
            refs = []
            for b, it in enumerate(items):
                if not ref_mask[b]:
                    refs.append(torch.zeros_like(it["frames"]))
                    continue
                ok = np.flatnonzero((self.ref_emotion == int(e_tgt[b])) & (self.ref_actor != it["actor"]))
                if len(ok) == 0:
                    ref_mask[b] = False
                    refs.append(torch.zeros_like(it["frames"]))
                    continue
                refs.append(self.ref[int(ok[rng.integers(len(ok))])]["frames"])
            out["reference"] = torch.stack(refs)
            out["ref_mask"] = ref_mask
        return out


def train_spfem(cfg: SpfemConfig, out: str | Path, resume: bool = False, progress: bool = True,
                stccl_term: StcclTerm | None = None, stop_at_step: int | None = None) -> Path:
    """Train one SPFEM run into `out`; returns the run folder.

    `stccl_term` overrides the configured STCCL loss; `stop_at_step` stops early
    after saving a checkpoint there (to test or schedule resumption).
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dist_info = init_distributed(device)
    device = local_device(device, dist_info)
    try:
        run = RunDir(out, cfg, dist_info, resume=resume, kind="spfem", device=device)
        seed_everything(cfg.seed + dist_info.rank)
        # aux nets: trained once per dataset (rank 0 first so the others read the cache)
        aux_names = ["emotion_train", "identity_train"]
        if cfg.generator.output == "expression":
            aux_names.append("landmarks")  # the NED-like generator's frozen face fitter
            if cfg.cls_on == "landmarks":
                aux_names.append("emotion_landmarks")
        if dist_info.is_main:
            aux = load_aux_nets(cfg.data_root, aux_names, cfg.aux, device, progress)
        if dist_info.enabled:
            barrier(dist_info)
            if not dist_info.is_main:
                aux = load_aux_nets(cfg.data_root, aux_names, cfg.aux, device, progress=False)
        seed_everything(cfg.seed + dist_info.rank)
        if stccl_term is None:
            stccl_term = build_stccl_term(cfg, device)
        models = nn.ModuleDict({"generator": build_generator(cfg.generator),
                                "discriminator": PatchDiscriminator(cfg.discriminator)}).to(device)
        if "landmarks" in aux:
            models["generator"].load_landmark_net(aux["landmarks"])
            if cfg.generator.expression_basis > 0:
                lm, actor = train_landmarks(cfg.data_root, cfg.test_actors)
                models["generator"].set_basis(landmark_basis(lm, actor, cfg.generator.expression_basis).to(device))
        opt = {"g": torch.optim.Adam(models["generator"].parameters(), lr=cfg.lr_g, betas=(0.5, 0.999)),
               "d": torch.optim.Adam(models["discriminator"].parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))}
        start = 0
        ckpt = run.load_for_resume(device) if resume else None
        if ckpt is not None:
            models.load_state_dict(ckpt["model"])
            for k in opt:
                opt[k].load_state_dict(ckpt["optimizer"][k])
            set_rng_state(ckpt["rng"])
            start = int(ckpt["step"])
        # Under torchrun the gradients are averaged by hand after each backward (`_sync_grads`)
        # rather than by DDP wrappers: the generator runs 3-4 times per step (fake, rec, cycle,
        # reference), which DDP's one-forward-one-backward bookkeeping does not allow.
        G, D = models["generator"], models["discriminator"]
        if dist_info.enabled:
            from torch.distributed import broadcast
            for t in models.state_dict().values():  # every rank starts from rank 0's weights
                broadcast(t, src=0)
        losses = SpfemLosses(cfg, aux["emotion_train"], aux["identity_train"], stccl_term, aux.get("emotion_landmarks"))
        sampler = BatchSampler(cfg, dist_info)
        bar = tqdm(range(start, cfg.steps), desc=f"spfem {cfg.name}", initial=start, total=cfg.steps,
                   disable=not (progress and dist_info.is_main))
        t0 = time.perf_counter()
        for step in bar:
            b = sampler.batch(step)
            x, e_src, e_tgt = b["x"].to(device), b["e_src"].to(device), b["e_tgt"].to(device)
            ref = b.get("reference")
            ref_mask = b.get("ref_mask")
            g_loss, parts, fake = losses.generator_loss(
                G, D, x, e_src, e_tgt, None if ref is None else ref.to(device),
                None if ref_mask is None else ref_mask.to(device))
            check_finite(g_loss.detach(), step, run.path)
            opt["g"].zero_grad(set_to_none=True)
            g_loss.backward()
            _sync_grads(G, dist_info)
            opt["g"].step()
            d_loss = losses.discriminator_loss(D, x, fake)
            check_finite(d_loss.detach(), step, run.path)
            opt["d"].zero_grad(set_to_none=True)
            d_loss.backward()
            _sync_grads(D, dist_info)
            opt["d"].step()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                rec = {"step": done, "loss_g": float(all_reduce_mean(g_loss.detach(), dist_info)),
                       "loss_d": float(all_reduce_mean(d_loss.detach(), dist_info))}
                rec.update({f"g_{k}": float(all_reduce_mean(v.detach(), dist_info)) for k, v in parts.items()})
                rec["sec_per_step"] = (time.perf_counter() - t0) / max(1, done - start)
                rec["elapsed_s"] = round(time.perf_counter() - t0, 2)  # this session's training time (as metric runs)
                run.log(rec)
                bar.set_postfix(g=f"{rec['loss_g']:.3f}", d=f"{rec['loss_d']:.3f}")
            if done % cfg.ckpt_every == 0 or done == cfg.steps or done == stop_at_step:
                run.save(done, models, opt, extra={"name": cfg.name})
            if done == stop_at_step:
                break
        # Rank 0 may still be writing the last checkpoint: wait for it, so that the ranks destroy the
        # process group together (as metric training does).
        barrier(dist_info)
        return run.path
    finally:
        cleanup(dist_info)


def _sync_grads(module: nn.Module, dist_info) -> None:
    """Average gradients over ranks (no-op on one process); unused parameters count as zero."""
    if not dist_info.enabled:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= dist_info.world_size


def load_generator(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, SpfemConfig]:
    """The trained generator of a run folder, or of a checkpoint file (eval mode), and its config."""
    run_dir = Path(run_dir)
    file = run_dir if run_dir.suffix == ".pt" else run_dir / "ckpt_last.pt"
    ckpt = load_checkpoint(file, map_location=device)
    # runs saved before the keys were renamed load too
    cfg_dict = {RENAMED_KEYS.get(k, k): v for k, v in ckpt["config"].items() if k != "kind"}
    if ckpt["config"].get("kind") != "spfem":
        raise StcclError(f"{file} is not an SPFEM run (kind {ckpt['config'].get('kind')!r}); "
                         f"pass a folder written by `stccl train-spfem`")
    cfg = from_dict(SpfemConfig, cfg_dict, where=str(file))
    G = build_generator(cfg.generator)
    G.load_state_dict({k[len("generator."):]: v for k, v in ckpt["model"].items() if k.startswith("generator.")})
    G.eval().to(device)
    for p in G.parameters():
        p.requires_grad_(False)
    return G, cfg


def _cmd_train(args) -> int:
    overrides = parse_sets(args.set)
    for key in ("seed", "steps", "data_root", "stccl_checkpoint", "device"):
        val = getattr(args, key)
        if val is not None:
            overrides[key] = val
    cfg = load_spfem_config(args.config, overrides)
    out = args.out or f"reports/runs/{Path(args.config).stem}_s{cfg.seed}"
    if args.dry_run:
        print(to_json({"out": out, "config": to_dict(cfg)}))
        return 0
    path = train_spfem(cfg, out, resume=args.resume, progress=not args.no_progress, stop_at_step=args.stop_at_step)
    print(f"spfem run written to {path}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("train-spfem", help="train the SPFEM generator (baseline or +STCCL)",
                       description="Train the compact SPFEM generator without paired targets; STCCL is added "
                                   "when the config sets stccl: true.")
    p.add_argument("--config", required=True, help="params/spfem_*.yaml")
    p.add_argument("--out", default=None, help="run folder (default reports/runs/<config stem>_s<seed>)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--data-root", dest="data_root", default=None, help="override data_root")
    p.add_argument("--stccl-checkpoint", dest="stccl_checkpoint", default=None, help="override stccl_checkpoint")
    p.add_argument("--device", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (YAML value), e.g. --set lambda_stccl=2 --set aux.steps=300")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--stop-at-step", dest="stop_at_step", type=int, default=None,
                   help="stop after this step (a checkpoint is saved there); continue later with --resume")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=_cmd_train)
