"""STCCL reproduction kit: spatial-temporal coherent correlations for SPFEM."""

from stccl.io import StcclError

__all__ = ["StcclError", "__version__"]
__version__ = "0.1.0"
