"""The networks of GE: BEGAN's generator and discriminator, and GE1's conv autoencoder.

All modules map float32 NHWC images in [0, 1] (any leading batch shape) to codes
and back. The BEGAN layout follows Berthelot et al. (2017) as the GE paper uses it:

* Generator G: dense to 8x8xf, then `log2(size) - 2` pairs of 3x3 conv + ELU with
  a nearest 2x up-sampling between pairs, then a 3x3 conv to the image channels
  (9 convs at 64x64, 11 at 128x128).
* Discriminator D: an autoencoder whose encoder (GE0's EN) is a 3x3 conv, then the
  same number of conv pairs with a strided 3x3 conv between pairs, so that the n-th
  conv has ceil(n/3)*f filters (12 convs at 64x64, 15 at 128x128), then dense to
  `code_dim`; its decoder has G's layout.
* GE1's autoencoder: `depth` stride-2 3x3 convs, the n-th with n*f filters, dense to
  `code_dim` (the paper's m); a deliberately small decoder so the encoder must carry
  the information.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.tree_util import Partial


@dataclasses.dataclass(frozen=True)
class BeganConfig:
    """Shape of a BEGAN pair (G and D).

    Attributes:
      image_size: side of the square images, a power of two >= 8.
      channels: image channels (1 grey, 3 RGB).
      filters: the paper's f (carpedm20's hidden_num).
      latent_dim: size of z, G's input.
      code_dim: size of D's bottleneck, GE0's m.
    """

    image_size: int = 32
    channels: int = 1
    filters: int = 32
    latent_dim: int = 32
    code_dim: int = 64

    def __post_init__(self):
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        for name in ("channels", "filters", "latent_dim", "code_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def num_blocks(self) -> int:
        """Conv pairs in G and in D's encoder: one per resolution from 8 up to image_size."""
        return int(math.log2(self.image_size)) - 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Shape of GE1's conv autoencoder, the paper's GE1(d, f, m).

    Attributes:
      image_size, channels: as BeganConfig; image_size must be divisible by 2**depth.
      depth: d, the number of stride-2 conv layers of the encoder.
      filters: f; the n-th conv has n*f filters.
      code_dim: m, the encoder's output size.
    """

    image_size: int = 32
    channels: int = 1
    depth: int = 4
    filters: int = 32
    code_dim: int = 128

    def __post_init__(self):
        if self.depth < 1 or self.image_size % (2**self.depth):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**depth (depth={self.depth})"
            )
        for name in ("channels", "filters", "code_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)


def _conv(features: int, stride: int = 1, name: str | None = None) -> nn.Conv:
    return nn.Conv(features, (3, 3), strides=(stride, stride), padding="SAME", name=name)


def _upsample2(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x up-sampling of (..., H, W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=-3), 2, axis=-2)


class BeganDecoder(nn.Module):
    """G's layout: (..., in_dim) -> (..., S, S, C). Used as G and as D's decoder."""

    config: BeganConfig

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        cfg = self.config
        x = nn.Dense(8 * 8 * cfg.filters)(h)
        x = x.reshape(h.shape[:-1] + (8, 8, cfg.filters))
        for block in range(cfg.num_blocks):
            x = nn.elu(_conv(cfg.filters)(x))
            x = nn.elu(_conv(cfg.filters)(x))
            if block < cfg.num_blocks - 1:
                x = _upsample2(x)
        return _conv(cfg.channels)(x)


class BeganEncoder(nn.Module):
    """D's encoder, GE0's EN: (..., S, S, C) -> (..., code_dim)."""

    config: BeganConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        f = cfg.filters
        x = nn.elu(_conv(f)(x))
        for block in range(cfg.num_blocks):
            x = nn.elu(_conv(f * (block + 1))(x))
            x = nn.elu(_conv(f * (block + 1))(x))
            if block < cfg.num_blocks - 1:
                x = nn.elu(_conv(f * (block + 2), stride=2)(x))
        return nn.Dense(cfg.code_dim)(x.reshape(x.shape[:-3] + (-1,)))


class Generator(nn.Module):
    """G: z (..., latent_dim) -> image (..., S, S, C)."""

    config: BeganConfig

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        return BeganDecoder(self.config, name="decoder")(z)


class _Autoencoder(nn.Module):
    """encode / decode / __call__ shared by D and GE1's autoencoder; subclasses set them up."""

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, h: jax.Array) -> jax.Array:
        return self.decoder(h)

    def encode_decode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(code, reconstruction) from one pass, for losses that need both."""
        h = self.encode(x)
        return h, self.decode(h)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.encode_decode(x)[1]


class Discriminator(_Autoencoder):
    """BEGAN's D, an autoencoder: image -> code (`encode`) -> image (`decode`)."""

    config: BeganConfig

    def setup(self):
        self.encoder = BeganEncoder(self.config)
        self.decoder = BeganDecoder(self.config)


class ConvEncoder(nn.Module):
    """GE1's EN: (..., S, S, C) -> (..., code_dim) through `depth` stride-2 convs."""

    config: AEConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        for n in range(1, cfg.depth + 1):
            x = nn.elu(_conv(n * cfg.filters, stride=2)(x))
        return nn.Dense(cfg.code_dim)(x.reshape(x.shape[:-3] + (-1,)))


class ConvDecoder(nn.Module):
    """GE1's light decoder: (..., code_dim) -> (..., S, S, C), one conv per scale."""

    config: AEConfig

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        cfg = self.config
        side = cfg.image_size // 2**cfg.depth
        x = nn.Dense(side * side * cfg.filters)(h)
        x = x.reshape(h.shape[:-1] + (side, side, cfg.filters))
        for _ in range(cfg.depth):
            x = nn.elu(_conv(cfg.filters)(_upsample2(x)))
        return _conv(cfg.channels)(x)


class ConvAutoencoder(_Autoencoder):
    """GE1's autoencoder with `encode` and `decode` methods."""

    config: AEConfig

    def setup(self):
        self.encoder = ConvEncoder(self.config)
        self.decoder = ConvDecoder(self.config)


# Per-example pure callables for the solver: `Partial(apply, params)` keeps `apply` static
# and `params` traced, so new parameters of the same shapes reuse the compiled program.


@functools.cache
def _apply_fn(module_cls: type[nn.Module], config, method: str) -> Callable:
    module = module_cls(config)
    image_shape = (config.image_size, config.image_size, config.channels)

    def apply(params, x):
        # A conv encoder can take another size without a word (28x28 and 32x32 give GE1
        # the same code length), and another colour only with Flax's parameter-shape
        # error: name both shapes instead.
        if method == "encode" and tuple(x.shape[-3:]) != image_shape:
            raise ValueError(f"{module_cls.__name__} takes images of shape {image_shape}, "
                             f"got {tuple(x.shape[-3:])}: resize or convert them first "
                             "(gejax.data.fit_images)")
        return module.apply(params, x, method=getattr(module_cls, method))

    apply.__name__ = f"{module_cls.__name__}.{method}"
    return apply


def generator_fn(params, config: BeganConfig) -> Partial:
    """G as a pure callable z (..., latent_dim) -> images (..., S, S, C)."""
    return Partial(_apply_fn(Generator, config, "__call__"), params)


def began_encoder_fn(params, config: BeganConfig) -> Partial:
    """GE0's EN, BEGAN D's encoder, as a pure callable images -> (..., code_dim)."""
    return Partial(_apply_fn(Discriminator, config, "encode"), params)


def ae_encoder_fn(params, config: AEConfig) -> Partial:
    """GE1's EN as a pure callable images -> (..., code_dim)."""
    return Partial(_apply_fn(ConvAutoencoder, config, "encode"), params)
