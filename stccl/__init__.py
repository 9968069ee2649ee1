"""STCCL reproduction kit: spatial-temporal coherent correlations for SPFEM.

Layout: `stccl.core` (the method), `stccl.data` (synthetic and MEAD data),
`stccl.spfem` (generator, training, evaluation), `stccl.real` (real videos),
`stccl.pipeline` (reproduction and report); io, config, runs, distributed
and cli sit here.

The plug-in loss is one import: `from stccl import STCCLLoss`. It is resolved
on first access (PEP 562) so that `import stccl` and `stccl --help` do not
load torch.
"""

from stccl.io import StcclError

__all__ = ["STCCLLoss", "StcclError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "STCCLLoss":
        from stccl.core.losses import STCCLLoss

        return STCCLLoss
    raise AttributeError(f"module 'stccl' has no attribute {name!r}")
