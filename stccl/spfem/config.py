"""Configs of an SPFEM run: the generator training (`SpfemConfig`) and its frozen auxiliary nets (`AuxConfig`).

Kept apart from the training loop so that the aux nets, training and evaluation all read the same
config without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stccl.config import load_config, load_yaml
from stccl.data.mead import EMOTIONS
from stccl.io import StcclError
from stccl.spfem.generator import DiscriminatorConfig, GeneratorConfig

# Mouth crop as fractions of the aligned face (top, bottom, left, right), set for the loose framing
# (`--preset loose`, tiny: mouth centre at about 0.66 H). A tighter crop moves the mouth up: the
# default params set `aux.mouth_box` for the MEAD-like default (params/spfem_default_*.yaml).
MOUTH_BOX = (0.56, 0.86, 0.27, 0.73)


@dataclass(frozen=True)
class AuxConfig:
    size: int = 64               # input resolution of every aux net (and of the SPFEM model)
    frame_stride: int = 2        # use every k-th frame of each clip
    steps: int = 600             # optimiser steps per net
    batch_size: int = 64
    lr: float = 2e-3
    val_clips: int = 1           # the last k clips of every (actor, emotion) are held out to check the nets
    mouth_box: tuple[float, float, float, float] = MOUTH_BOX



@dataclass(frozen=True)
class SpfemConfig:
    name: str = "baseline"              # variant label; `stccl compare` groups runs (seeds) by it
    data_root: str = "data/synth_tiny"
    test_actors: tuple[str, ...] | None = None   # default: the data's meta.json test actors
    val_actors: tuple[str, ...] = ()    # train identities held out for tuning (`evaluate --split val`)
    size: int = 64
    clip_frames: int = 4                # frames per training clip: the window the STCCL plug-in sees
    batch_size: int = 4
    steps: int = 600
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    source_emotions: tuple[str, ...] = EMOTIONS
    p_reference: float = 0.2            # share of targets given as a reference clip instead of a label
    lambda_adv: float = 1.0
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_cyc: float = 10.0
    lambda_id: float = 2.0
    # Size of the edit, for generator.output warp_residual / warp_blend: mean residual-mask area and mean
    # |displacement| (in half-image units); they keep the appearance change local and stop the residual
    # from painting classifier-fooling texture over the whole frame (0: off).
    lambda_mask: float = 0.0
    lambda_flow: float = 0.0
    # Jitter (random shift of up to cls_shift px, noise of std cls_noise) applied to generated frames
    # before the training emotion classifier: a perturbation that only fools C_train at one exact pixel
    # grid does not survive it, so the generator has to change the face itself (0, 0: off).
    cls_shift: int = 2
    cls_noise: float = 0.02
    # generator.output "expression": where the emotion loss reads the edit. "frames": the training classifier
    # on the rendered frames (as for every other generator); "landmarks": the landmark emotion classifier on the
    # manipulated landmarks (aux net emotion_landmarks), the parameter-space objective of NED's manipulator.
    cls_on: Literal["frames", "landmarks"] = "frames"
    # STCCL (off for the baseline)
    stccl: bool = False
    stccl_checkpoint: str | None = None
    stccl_variant: Literal["vd", "cm"] = "vd"
    # The plug-in's weights of its SCC and TCC terms; not the metric training's loss.lambda_T (which
    # only weighs TCC while the metric network trains) and not read from the metric checkpoint.
    stccl_lambda_S: float = 1.0
    stccl_lambda_T: float = 1.0
    lambda_stccl: float = 1.0           # overall weight of stccl_lambda_S SCC + stccl_lambda_T TCC in L_G
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 200
    threads: int = 0                    # torch CPU threads (0: leave torch's default)


# Keys renamed so that they no longer read like the metric config's `T` and `loss.lambda_T`.
RENAMED_KEYS = {"T": "clip_frames", "lambda_S": "stccl_lambda_S", "lambda_T": "stccl_lambda_T"}


def load_spfem_config(path: str | Path | None, overrides: dict | None = None) -> SpfemConfig:
    old = sorted(k for k in {**(load_yaml(path) if path is not None else {}), **(overrides or {})} if k in RENAMED_KEYS)
    if old:
        raise StcclError(f"{path} (or its overrides): key(s) {old} were renamed: " + ", ".join(f"{k} -> {RENAMED_KEYS[k]}" for k in old))
    cfg = load_config(SpfemConfig, path, overrides)
    if cfg.stccl and not cfg.stccl_checkpoint:
        raise StcclError(f"{path}: stccl is true but stccl_checkpoint is empty; point it at a metric checkpoint "
                         f"(reports/runs/<metric run>/ckpt_last.pt from `stccl train-metric`)")
    if cfg.size != cfg.aux.size:
        raise StcclError(f"{path}: size ({cfg.size}) and aux.size ({cfg.aux.size}) must match")
    if not 0.0 <= cfg.p_reference <= 1.0:
        raise StcclError(f"{path}: p_reference must lie in [0, 1], got {cfg.p_reference}")
    if cfg.cls_on == "landmarks" and cfg.generator.output != "expression":
        raise StcclError(f"{path}: cls_on: landmarks reads the edited landmarks of generator.output: expression, "
                         f"got generator.output {cfg.generator.output!r}")
    return cfg
