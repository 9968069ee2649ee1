"""Small I/O helpers shared by every part of the kit.

Everything that writes a result goes through `atomic_write_*`: the data is
written to a temporary file in the destination folder and renamed over the
target, so a crash never leaves a half-written file that a later step trusts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


class StcclError(Exception):
    """A user-facing error: the message names the file or key and the fix.

    The CLI turns it into a one-line message on stderr and exit status 2.
    """


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` on success.

    On any exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give results the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # flush to disk before the rename
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = None) -> str:
    """JSON with numpy scalars/arrays and paths converted; NaN written as null."""
    return json.dumps(_nan_to_none(obj), default=_json_default, indent=indent, allow_nan=False)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj, indent=2) + "\n")


def atomic_write_csv(path: str | os.PathLike, df: "pandas.DataFrame", **kwargs: Any) -> Path:  # noqa: F821
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=kwargs.pop("index", False), **kwargs)
    return Path(path)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON, turning a missing or malformed file into a StcclError naming it."""
    path = Path(path)
    if not path.is_file():
        raise StcclError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StcclError(f"{path}: not valid JSON ({exc})") from None


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and flush it (a log line is never half-written in practice)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(to_json(record) + "\n")
        fh.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines log; a torn last line (crash mid-write) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise StcclError(f"{path}: line {i + 1} is not valid JSON") from None
    return out


def resolve_device(device: str = "auto") -> "torch.device":  # noqa: F821
    """'auto' picks CUDA when present, else CPU; anything else is passed to torch."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StcclError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
