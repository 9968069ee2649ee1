"""SyncNet lip-sync scores (LSE-D, LSE-C) from user-supplied weights.

The paper reports LSE-D, the lip-sync error of the public SyncNet
(Chung & Zisserman 2016, weights `syncnet_v2.model` of joonson/syncnet_python,
as used by the Wav2Lip evaluation). The weights cannot be downloaded by the
kit: the user puts the file somewhere and sets

    STCCL_SYNCNET_WEIGHTS=/path/to/syncnet_v2.model

(or passes the path explicitly). Without it every score here is
`metrics.NOT_COMPUTED`, never a number. Numbers from randomly initialised
weights (the tests use those) mean nothing.

Expected file: a PyTorch state dict (no prefix; a `__S__.` or `module.`
prefix is stripped) with these keys. `nn.Sequential` indices count every
layer, so ReLU/pool positions have no keys; BatchNorm layers have weight,
bias, running_mean, running_var (num_batches_tracked is optional, the public
file predates it).

    audio tower, input (B, 1, 13, 20): 13 MFCC x 20 steps of 10 ms = 0.2 s
      netcnnaud.0   Conv2d 1->64 3x3 pad 1      netcnnaud.1  BatchNorm2d(64)
      (3 MaxPool 1x1)
      netcnnaud.4   Conv2d 64->192 3x3 pad 1    netcnnaud.5  BatchNorm2d(192)
      (7 MaxPool 3x3 stride (1, 2))
      netcnnaud.8   Conv2d 192->384 3x3 pad 1   netcnnaud.9  BatchNorm2d(384)
      netcnnaud.11  Conv2d 384->256 3x3 pad 1   netcnnaud.12 BatchNorm2d(256)
      netcnnaud.14  Conv2d 256->256 3x3 pad 1   netcnnaud.15 BatchNorm2d(256)
      (17 MaxPool 3x3 stride 2)
      netcnnaud.18  Conv2d 256->512 5x4         netcnnaud.19 BatchNorm2d(512)   -> (B, 512, 1, 1)
      netfcaud.0 Linear 512->512, netfcaud.1 BatchNorm1d(512), netfcaud.3 Linear 512->1024
    lip tower, input (B, 3, 5, 224, 224): 5 BGR frames, values 0..255, no normalisation
      netcnnlip.0   Conv3d 3->96 (5,7,7) stride (1,2,2)       netcnnlip.1  BatchNorm3d(96)
      (3 MaxPool (1,3,3) stride (1,2,2))
      netcnnlip.4   Conv3d 96->256 (1,5,5) stride (1,2,2) pad (0,1,1)   netcnnlip.5 BatchNorm3d(256)
      (7 MaxPool (1,3,3) stride (1,2,2) pad (0,1,1))
      netcnnlip.8 / .11 / .14  Conv3d 256->256 (1,3,3) pad (0,1,1), each + BatchNorm3d(256)
      (17 MaxPool (1,3,3) stride (1,2,2))
      netcnnlip.18  Conv3d 256->512 (1,6,6)        netcnnlip.19 BatchNorm3d(512)  -> (B, 512, 1, 1, 1)
      netfclip.0 Linear 512->512, netfclip.1 BatchNorm1d(512), netfclip.3 Linear 512->1024

Inputs are prepared the way the public evaluation prepares them, as far as
the kit can: the face crop of `crop_faces` (box centre, half-size s, crop
rows [cy - s, cy + s(1 + 2c)], columns cx +- s(1 + c), c = 0.4, grey 110
outside the frame, resized to 224) on 25 fps video, colour in BGR order;
audio resampled to 16 kHz at int16 scale and turned into 13 MFCCs every
10 ms with 25 ms rectangular windows, 26 HTK-mel filters over a 512-point
FFT, pre-emphasis 0.97, lifter 22 and c0 replaced by the log frame energy
(`mfcc_100hz`; librosa frames the signal and converts to mel, the rest
follows that recipe because the weights were trained on it, not on
librosa.feature.mfcc's defaults). Video window i (frames i..i+4) pairs with
MFCC steps 4i..4i+19.

Scores (`sync_scores`): for every video window the Euclidean distance to the
audio windows shifted by -vshift..vshift (zero features beyond the ends,
as the public code pads), averaged over windows per shift. LSE-D is the
minimum of that mean over shifts, LSE-C the median over shifts minus that
minimum, and offset = vshift - argmin (negative when the audio lags the
video). vshift = 15 as in the Wav2Lip evaluation.

Differences from the public pipeline that remain: the face box comes from
dlib landmarks (`boxes_from_landmarks`), not the S3FD detector, so the
framing differs somewhat; audio is resampled by scipy, not ffmpeg; frames
are not re-encoded to an intermediate video.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stccl.io import StcclError
from stccl.spfem.scores import NOT_COMPUTED

ENV_VAR = "STCCL_SYNCNET_WEIGHTS"
WEIGHTS_HINT = (f"put the public syncnet_v2.model (joonson/syncnet_python, download_model.sh) anywhere and set "
                f"{ENV_VAR}=/path/to/syncnet_v2.model")
FPS = 25.0  # the weights pair 5 frames with 0.2 s of audio
AUDIO_RATE = 16000
MFCC_STEPS_PER_FRAME = 4  # 100 Hz MFCC / 25 fps
WINDOW_FRAMES = 5
WINDOW_MFCC = 20
CROP_SCALE = 0.4
CROP_SIZE = 224
PAD_VALUE = 110.0


# --------------------------------------------------------------------------- network


def _block(kind: str, cin: int, cout: int, kernel, stride=1, padding=0) -> list[nn.Module]:
    """conv + batch norm + ReLU: 3 Sequential slots, as in the public layout."""
    conv, bn = {"2d": (nn.Conv2d, nn.BatchNorm2d), "3d": (nn.Conv3d, nn.BatchNorm3d)}[kind]
    return [conv(cin, cout, kernel_size=kernel, stride=stride, padding=padding), bn(cout), nn.ReLU()]


def _head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """Two towers mapping 0.2 s of MFCC and 5 face frames to 1024-d embeddings."""

    def __init__(self, dim: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_block("2d", 1, 64, 3, padding=1), nn.MaxPool2d(1, 1),
            *_block("2d", 64, 192, 3, padding=1), nn.MaxPool2d(3, stride=(1, 2)),
            *_block("2d", 192, 384, 3, padding=1),
            *_block("2d", 384, 256, 3, padding=1),
            *_block("2d", 256, 256, 3, padding=1), nn.MaxPool2d(3, stride=2),
            *_block("2d", 256, 512, (5, 4)),
        )
        self.netfcaud = _head(dim)
        self.netfclip = _head(dim)  # declared before netcnnlip: state-dict order as in the public file
        self.netcnnlip = nn.Sequential(
            *_block("3d", 3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_block("3d", 96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_block("3d", 256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_block("3d", 256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *_block("3d", 256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_block("3d", 256, 512, (1, 6, 6)),
        )

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC windows -> (B, dim)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR 0..255 -> (B, dim)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def syncnet_weights_path(path: str | Path | None = None) -> Path | None:
    """The weight file to use: `path`, else $STCCL_SYNCNET_WEIGHTS, else None.

    A path that is given (argument or variable) but does not exist is an
    error, not a silent "not computed": the user asked for the scores.
    """
    source = "argument"
    if path is None:
        path, source = os.environ.get(ENV_VAR) or None, ENV_VAR
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise StcclError(f"SyncNet weights not found: {path} (from {source}); {WEIGHTS_HINT}")
    return path


def _strip_prefix(state: Mapping) -> dict:
    for prefix in ("__S__.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def load_syncnet(path: str | Path) -> SyncNet:
    """Build SyncNet from a syncnet_v2-layout state dict, in eval mode; StcclError on any mismatch."""
    path = Path(path)
    if not path.is_file():
        raise StcclError(f"SyncNet weights not found: {path}; {WEIGHTS_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign/truncated file
        raise StcclError(f"{path}: not a readable PyTorch state dict ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); expected syncnet_v2.model") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StcclError(f"{path}: expected a state dict of tensors (syncnet_v2.model), got {type(state).__name__}")
    state = _strip_prefix(state)
    net = SyncNet()
    expected = net.state_dict()
    required = {k for k in expected if not k.endswith("num_batches_tracked")}
    missing = sorted(required - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                    for k in required & state.keys() if state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        def show(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        parts = [f"missing keys: {show(missing)}"] * bool(missing) + [f"unexpected keys: {show(unexpected)}"] * bool(
            unexpected) + [f"wrong shapes: {show(shapes)}"] * bool(shapes)
        raise StcclError(f"{path}: not a syncnet_v2 state dict ({'; '.join(parts)}); expected the keys "
                         "documented in stccl/real/syncnet.py (netcnnaud/netfcaud/netcnnlip/netfclip)")
    net.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    return net.eval()


def resolve_net(net: "SyncNet | str | Path | None") -> "nn.Module | None":
    """A ready network: the one given, one loaded from a path, from $STCCL_SYNCNET_WEIGHTS, or None."""
    if isinstance(net, nn.Module):
        return net.eval()
    path = syncnet_weights_path(net)
    return None if path is None else load_syncnet(path)


# --------------------------------------------------------------------------- inputs


def audio_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float samples in [-1, 1] at any rate -> float64 at 16 kHz, int16 scale."""
    from math import gcd

    from scipy.signal import resample_poly

    x = np.asarray(audio, np.float64).reshape(-1)
    rate = int(sample_rate)
    if rate != AUDIO_RATE:
        g = gcd(rate, AUDIO_RATE)
        x = resample_poly(x, AUDIO_RATE // g, rate // g)
    # the public pipeline reads 16-bit PCM; the scale moves c0 (log energy) by a constant
    return np.clip(x, -1.0, 1.0) * 32768.0


def _mel_filters(n_filters: int = 26, n_fft: int = 512, rate: int = AUDIO_RATE) -> np.ndarray:
    """(n_filters, n_fft // 2 + 1) triangles between HTK-mel points snapped down to FFT bins."""
    import librosa

    mel = np.linspace(0.0, librosa.hz_to_mel(rate / 2, htk=True), n_filters + 2)
    edges = np.floor((n_fft + 1) * librosa.mel_to_hz(mel, htk=True) / rate)  # (n_filters + 2,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    k = np.arange(n_fft // 2 + 1)[None, :]
    rise = (k - lo) / np.maximum(mid - lo, 1)
    fall = (hi - k) / np.maximum(hi - mid, 1)
    return np.where((k >= lo) & (k < mid), rise, 0.0) + np.where((k >= mid) & (k < hi), fall, 0.0)


def mfcc_100hz(samples_16k: np.ndarray, n_mfcc: int = 13) -> np.ndarray:
    """(S,) 16 kHz int16-scale samples -> (13, T) MFCC every 10 ms, T = 1 + ceil((S - 400) / 160)."""
    import librosa
    from scipy.fft import dct

    win, hop, n_fft = 400, 160, 512
    x = np.asarray(samples_16k, np.float64)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])  # pre-emphasis, first sample kept
    n = 1 if len(x) <= win else 1 + int(np.ceil((len(x) - win) / hop))
    x = np.pad(x, (0, (n - 1) * hop + win - len(x)))  # zero-pad the last partial window
    frames = librosa.util.frame(x, frame_length=win, hop_length=hop, axis=0)  # (T, 400), rectangular window
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft  # (T, 257)
    tiny = np.finfo(np.float64).eps
    energy = np.maximum(power.sum(1), tiny)
    fbank = np.maximum(power @ _mel_filters(n_fft=n_fft).T, tiny)  # (T, 26)
    cep = dct(np.log(fbank), type=2, axis=1, norm="ortho")[:, :n_mfcc]
    cep = cep * (1 + 11.0 * np.sin(np.pi * np.arange(n_mfcc) / 22))  # lifter L = 22
    cep[:, 0] = np.log(energy)
    return cep.T  # (13, T)


def boxes_from_landmarks(landmarks: np.ndarray, frame_idx: np.ndarray, num_frames: int,
                         kernel: int = 13) -> np.ndarray | None:
    """Per-frame face boxes (num_frames, 4) x0, y0, x1, y1 from 68-point landmarks on some frames.

    landmarks (M, 68, 2) with NaN rows where no face was found, at frames
    `frame_idx` (M,). Boxes are interpolated over the other frames and median
    filtered over `kernel` frames, as the public pipeline smooths its
    detections (but with edge values repeated, not zeros, at the clip ends,
    so the last boxes do not shrink towards the image corner). None when no
    frame has a face.
    """
    from scipy.ndimage import median_filter

    lms = np.asarray(landmarks, np.float64)
    ok = np.isfinite(lms).all(axis=(1, 2))
    if not ok.any():
        return None
    box = np.concatenate([np.nanmin(lms[ok], 1), np.nanmax(lms[ok], 1)], axis=1)  # (K, 4)
    t = np.arange(num_frames)
    at = np.asarray(frame_idx)[ok]
    full = np.stack([np.interp(t, at, box[:, j]) for j in range(4)], axis=1)  # (num_frames, 4)
    return median_filter(full, size=(kernel, 1), mode="nearest")


def crop_faces(frames: np.ndarray, boxes: np.ndarray | None, crop_scale: float = CROP_SCALE,
               size: int = CROP_SIZE, chunk: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8 + (N, 4) boxes -> (N, size, size, 3) uint8 face crops.

    The public crop: half-size s = max(box w, h) / 2 around the box centre,
    rows cy - s .. cy + s(1 + 2c), columns cx - s(1 + c) .. cx + s(1 + c),
    grey 110 outside the frame, bilinear resize. boxes=None resizes the whole
    frame (already-cropped faces).
    """
    frames = np.asarray(frames)
    n, h, w, _ = frames.shape
    if boxes is None:
        top, left = np.zeros(n), np.zeros(n)
        height, width = np.full(n, float(h)), np.full(n, float(w))
    else:
        boxes = np.asarray(boxes, np.float64)
        c = crop_scale
        half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        top, left = np.floor(cy - half), np.floor(cx - half * (1 + c))
        height = np.floor(cy + half * (1 + 2 * c)) - top
        width = np.floor(cx + half * (1 + c)) - left
    # pixel centres of the output grid mapped into the frame (cv2.resize's convention)
    u = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # (size,)
    ys = torch.as_tensor(top)[:, None] + u[None] * torch.as_tensor(height)[:, None] - 0.5  # (N, size)
    xs = torch.as_tensor(left)[:, None] + u[None] * torch.as_tensor(width)[:, None] - 0.5
    gy = (2 * ys + 1) / h - 1  # grid_sample's align_corners=False normalisation
    gx = (2 * xs + 1) / w - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1).float()  # (N, size, size, 2)
    out = np.empty((n, size, size, 3), np.uint8)
    for s in range(0, n, chunk):  # bounded memory on long clips
        img = torch.from_numpy(frames[s:s + chunk]).permute(0, 3, 1, 2).float() - PAD_VALUE  # (B, 3, H, W)
        res = F.grid_sample(img, grid[s:s + chunk], mode="bilinear", padding_mode="zeros", align_corners=False)
        out[s:s + chunk] = (res + PAD_VALUE).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


# --------------------------------------------------------------------------- scores


def sync_distances(video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int = 15) -> torch.Tensor:
    """(N, D) video and audio embeddings -> (N, 2 vshift + 1) distances.

    Column j of row i is the distance between video window i and audio window
    i + j - vshift (zeros beyond the ends, as in the public evaluation).
    """
    n = len(video_feat)
    padded = F.pad(audio_feat, (0, 0, vshift, vshift))  # (N + 2v, D)
    windows = padded.unfold(0, 2 * vshift + 1, 1)[:n].transpose(1, 2)  # (N, 2v + 1, D)
    return F.pairwise_distance(video_feat[:, None, :], windows)  # (N, 2v + 1)


def sync_scores(dists: torch.Tensor, vshift: int = 15) -> dict:
    """LSE-D, LSE-C and offset from (N, 2 vshift + 1) window distances."""
    mean = dists.mean(0)  # (2v + 1,)
    best, arg = torch.min(mean, 0)
    return {"lse_d": float(best), "lse_c": float(torch.median(mean) - best), "offset": int(vshift - int(arg))}


def _video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (3, N, 224, 224) float BGR 0..255."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()  # (3, N, H, W)
    if x.shape[-2:] != (CROP_SIZE, CROP_SIZE):
        x = F.interpolate(x, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)
    return x.flip(0)  # the public code reads frames with OpenCV: BGR


@torch.no_grad()
def lse(video_frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int,
        net: "SyncNet | str | Path | None" = None, vshift: int = 15, batch_size: int = 16) -> dict | str:
    """LSE-D / LSE-C / offset of face frames against their audio, or NOT_COMPUTED without weights.

    video_frames (N, H, W, 3) uint8 RGB face crops (see `crop_faces`; resized
    to 224 if needed); audio (S,) mono float in [-1, 1] at `sample_rate`.
    `net`: a SyncNet-like module (embed_video / embed_audio), a weight file, or
    None for $STCCL_SYNCNET_WEIGHTS. Returns {"lse_d", "lse_c", "offset",
    "windows"}.
    """
    model = resolve_net(net)
    if model is None:
        return NOT_COMPUTED
    if abs(float(fps) - FPS) > 0.01:
        raise StcclError(f"SyncNet needs 25 fps video (5 frames = 0.2 s of audio), got {fps:g} fps; "
                         "resample the video to 25 fps first")
    samples = audio_16k(audio, sample_rate)
    mfcc = torch.from_numpy(mfcc_100hz(samples)).float()  # (13, T)
    per_frame = AUDIO_RATE // int(FPS)  # 640 samples
    usable = min(len(video_frames), len(samples) // per_frame)
    n_win = usable - WINDOW_FRAMES  # the public code drops the last full window too; kept for comparability
    if n_win < 1:
        raise StcclError(f"clip too short for SyncNet: {len(video_frames)} frames and "
                         f"{len(samples) / AUDIO_RATE:.2f} s of audio; needs at least {WINDOW_FRAMES + 1} frames of both")
    video = _video_tensor(video_frames[:usable])  # (3, N, 224, 224)
    aud_win = mfcc.unfold(1, WINDOW_MFCC, MFCC_STEPS_PER_FRAME)[:, :n_win]  # (13, n_win, 20)
    aud_win = aud_win.permute(1, 0, 2)[:, None]  # (n_win, 1, 13, 20)
    vid_feat, aud_feat = [], []
    for s in range(0, n_win, batch_size):  # batches bound the (B, 3, 5, 224, 224) memory
        e = min(n_win, s + batch_size)
        clip = video[:, s:e + WINDOW_FRAMES - 1].unfold(1, WINDOW_FRAMES, 1)  # (3, B, 224, 224, 5)
        vid_feat.append(model.embed_video(clip.permute(1, 0, 4, 2, 3).contiguous()))  # (B, D)
        aud_feat.append(model.embed_audio(aud_win[s:e]))
    dists = sync_distances(torch.cat(vid_feat), torch.cat(aud_feat), vshift)
    return {**sync_scores(dists, vshift), "windows": int(n_win)}
