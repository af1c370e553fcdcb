"""The user's own images and measurements, as `evaluate.* --images / --degraded /
--measurements` take them, and the answers written back as image files.

    read(path, image_shape, convert)  -> (images (N, H, W, C) float32 in [0, 1], names)
    read_measurements(path, n_pixels) -> (y (N, m), A (m, n_pixels), x or None)
    write_images(folder, images, names)

PATH is a folder of image files, an .npz (its "images" array, else its first) or one
image file. Images whose size or colour differ from the networks' are refused unless
`convert` says how to change them ("resize" or "pad"), and each change is said in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from gejax import checkpoint, data, folder

CONVERSIONS = ("resize", "pad")


def read(path: str, image_shape: tuple[int, int, int], *, convert: str | None = None,
         takes: str = "the networks take", log: Callable[[str], None] = print
         ) -> tuple[np.ndarray, list[str]]:
    """(images (N, H, W, C) float32 in [0, 1], a name for each) from `path`.

    `convert`: None refuses images of another shape than `image_shape`; "resize" centre-
    crops to a square and resizes with Pillow's antialiased bicubic; "pad" zero-pads
    smaller images in the centre (MNIST's 28x28 to the embedded default's 32x32, as it was
    trained). Grey and RGB are converted into each other with either (luminance, or the
    grey copied to three channels). `takes` starts the refusal's "... takes 32x32 grey".
    """
    if convert is not None and convert not in CONVERSIONS:
        raise ValueError(f"--convert must be one of {', '.join(CONVERSIONS)}, got {convert!r}")
    raw, names = _raw(path)
    size, channels = image_shape[0], image_shape[-1]
    said: set[str] = set()
    out = np.empty((len(raw), *image_shape), np.float32)
    for i, (im, name) in enumerate(zip(raw, names, strict=True)):
        if im.shape == tuple(image_shape):
            out[i] = data.as_unit_float(im)
            continue
        if convert is None:
            raise ValueError(
                f"{path}: {name} is {_describe(im.shape)}, {takes} "
                f"{_describe(image_shape)}; pass --convert resize (or pad, for smaller "
                "images) to change it, or give images of that shape")
        out[i], how = _convert(im, size, channels, convert)
        said.update(how)
    for how in sorted(said):
        log(f"{path}: {how}")
    return out, names


def read_measurements(path: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray,
                                                          np.ndarray | None]:
    """(y (N, m), A (m, n_pixels), x (N, H, W, C) or None) from an .npz with arrays "y",
    "A" and optionally "x", the ground truth to score against."""
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    with np.load(path) as f:
        missing = {"y", "A"} - set(f.files)
        if missing:
            raise ValueError(f"{path} needs arrays 'y' (N, m) and 'A' (m, pixels); it has "
                             f"{sorted(f.files)}")
        y, a = np.asarray(f["y"], np.float32), np.asarray(f["A"], np.float32)
        x = np.asarray(f["x"], np.float32) if "x" in f.files else None
    if a.ndim != 2 or a.shape[1] != n_pixels:
        raise ValueError(f"{path}: A must be (m, {n_pixels}) for the networks' images, got "
                         f"{a.shape}")
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[1] != a.shape[0]:
        raise ValueError(f"{path}: y must be (N, {a.shape[0]}) to match A {a.shape}, got "
                         f"{y.shape}")
    if not (np.isfinite(y).all() and np.isfinite(a).all()):
        raise ValueError(f"{path}: y and A must be finite")
    if x is not None and (len(x) != len(y) or x[0].size != n_pixels):
        raise ValueError(f"{path}: x must hold the {len(y)} images of {n_pixels} pixels that "
                         f"y measures, got {x.shape}")
    return y, a, x


def write_images(folder: str | os.PathLike, images: np.ndarray, names: list[str],
                 suffix: str = "") -> None:
    """Each image (N, H, W, C) in [0, 1] as `folder/<name><suffix>.png` (atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for im, name in zip(np.clip(images, 0, 1), names, strict=True):
        pixels = np.round(im * 255).astype(np.uint8)
        pil = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        target = folder / f"{name}{suffix}.png"
        tmp = target.with_name(f".{target.name}.tmp")
        pil.save(tmp, format="PNG")
        os.replace(tmp, target)
    checkpoint.write_text_atomic(folder / "names.txt", "\n".join(names) + "\n")


def _raw(path: str) -> tuple[list[np.ndarray], list[str]]:
    """The images of `path` as they are stored ((H, W, C) uint8 or float) and their names."""
    p = Path(path)
    if p.is_dir():
        files = folder.image_files(path)
        return [_read_file(f) for f in files], [f.stem for f in files]
    if p.suffix == ".npz":
        x = data.npz_images(path)
        return list(np.asarray(x)), [f"{p.stem}_{i:05d}" for i in range(len(x))]
    if p.is_file():
        try:
            return [_read_file(p)], [p.stem]
        except OSError as e:
            raise ValueError(f"{path} is not an image Pillow can read ({e})") from e
    raise ValueError(f"no such file or folder: {path} (give a folder of images, an .npz or "
                     "one image file)")


def _read_file(f: Path) -> np.ndarray:
    with Image.open(f) as im:
        im = im.convert("L" if im.mode in folder.GREY_MODES else "RGB")
        x = np.asarray(im)
    return x[..., None] if x.ndim == 2 else x


def _describe(shape) -> str:
    h, w, c = shape
    return f"{h}x{w} {'grey' if c == 1 else 'RGB' if c == 3 else f'{c}-channel'}"


def _convert(im: np.ndarray, size: int, channels: int, how: str) -> tuple[np.ndarray, set]:
    """One (H, W, C) image to (size, size, channels) float32, and what was done, in words."""
    said = set()
    if im.shape[-1] != channels:
        said.add(f"{_describe(im.shape)} images converted to "
                 f"{'grey (luminance)' if channels == 1 else 'RGB (grey copied)'}")
    h, w = im.shape[:2]
    if (h, w) != (size, size):
        if how == "pad":
            if h > size or w > size:
                raise ValueError(f"--convert pad cannot fit {h}x{w} images into {size}x{size}; "
                                 "use --convert resize")
            x = data.as_unit_float(im)
            top, left = (size - h) // 2, (size - w) // 2
            im = np.pad(x, ((top, size - h - top), (left, size - w - left), (0, 0)))
            said.add(f"{h}x{w} images zero-padded to {size}x{size}")
        else:
            said.add(f"{h}x{w} images {'centre-cropped and ' if h != w else ''}resized to "
                     f"{size}x{size} (bicubic)")
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            im = im[top:top + side, left:left + side]
    return data.fit(im, size, channels), said
