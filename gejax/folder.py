"""A folder of image files as a data set: every file checked before the first step (named
all at once if damaged), then decoded one at a time when a batch asks for it."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}  # Pillow's modes of one-channel images


def image_files(path: str, skip_damaged: bool = False) -> tuple[Path, ...]:
    """The image files of a folder, sorted, each checked before any is used: Pillow reads
    its header and, for PNG, checks its chunks. Damaged files are named all in one error,
    or with `skip_damaged` left out with one warning line (once per process and folder)."""
    return _checked(path, skip_damaged)[0]


def say_fit(path: str, skip_damaged: bool, size: int, channels: int) -> None:
    """One line, once per process, when a folder's images are not size x size with
    `channels`: they are centre-cropped, resized and converted as they are read."""
    kinds = _checked(path, skip_damaged)[1]
    target = (size, size, "grey" if channels == 1 else "RGB")
    if set(kinds) != {target}:
        shown = ", ".join(f"{w}x{h} {c}" for w, h, c in sorted(kinds)[:4])
        _once(f"{path}: images of {shown}{' ...' if len(kinds) > 4 else ''} are centre-"
              f"cropped, resized and converted to {size}x{size} {target[2]} as they are read")


@functools.lru_cache(maxsize=32)
def _once(line: str) -> None:
    print(line)


@functools.lru_cache(maxsize=8)
def _checked(path: str, skip_damaged: bool) -> tuple[tuple[Path, ...], frozenset]:
    """(the readable image files of a folder, the set of their (width, height, colour))."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    damaged, kinds = [], set()
    for f in tqdm(files, desc=f"checking {path}", unit="file", leave=False,
                  disable=len(files) < 2000):
        try:
            with Image.open(f) as im:
                kinds.add((*im.size, "grey" if im.mode in GREY_MODES else "RGB"))
                im.verify()
        except Exception as e:  # Pillow raises many types for a bad file
            damaged.append(f"{f.name} ({type(e).__name__})")
    if damaged and not skip_damaged:
        raise ValueError(f"{len(damaged)} of the {len(files)} image files in {path} cannot be "
                         f"read: {', '.join(damaged)}; remove or replace them, or pass "
                         "--skip_damaged to leave them out")
    if damaged:
        print(f"warning: left out {len(damaged)} damaged image files of {path}: "
              f"{', '.join(damaged[:10])}{' ...' if len(damaged) > 10 else ''}")
        bad = {d.split(" (")[0] for d in damaged}
        files = [f for f in files if f.name not in bad]
    return tuple(files), frozenset(kinds)


class Folder:
    """Image files (`image_files`) decoded one at a time: RGB, centre square, size x size."""

    def __init__(self, files: tuple[Path, ...], size: int):
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        with Image.open(self.files[i]) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            return np.asarray(im.crop((left, top, left + side, top + side))
                              .resize((self.size, self.size), Image.BICUBIC))
