"""gejax: the Generative Encoder (Chen & Yang) in JAX/Flax.

    from gejax import reconstruct, ge_measure, ga_measure, models, operators, metrics
"""

from gejax import metrics, models, operators
from gejax.reconstruct import (
    Deviation,
    Options,
    Reconstruction,
    ga_measure,
    ge_measure,
    reconstruct,
)

__all__ = ["Deviation", "Options", "Reconstruction", "ga_measure", "ge_measure", "metrics",
           "models", "operators", "reconstruct"]
__version__ = "0.1.0"
