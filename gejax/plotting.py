"""Figures: image grids in the layout of the paper's figures, and curves."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(rows: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, *,
               title: str | None = None, cell: float = 0.9) -> None:
    """One labelled row per method, one column per image (the paper's Figs. 4, 8-11).

    Args:
      rows: (label, images (N, H, W, C) in [0, 1]) per row; all rows have N images.
      path: PNG file to write (atomically: temp file, then rename).
    """
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(cell * n + 1.2, cell * len(rows) + 0.3),
                             squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                im = np.clip(np.asarray(images[c]), 0, 1)
                ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    # Leave the title a strip of its own above the top row.
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight() if title else 1))
    _save(fig, path)


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]],
           path: str | os.PathLike, *, xlabel: str, ylabel: str, title: str | None = None,
           logy: bool = True, errors: dict[str, Sequence[float]] | None = None) -> None:
    """A line per method, {name: (x, y)} (e.g. MSE vs measurements m, the paper's Fig. 6)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, (xs, ys) in series.items():
        err = None if errors is None else errors.get(name)
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def uncertainty(x: np.ndarray, x_hat: np.ndarray, spread: np.ndarray, path, *, label: str,
                corr: float | None) -> None:
    """Rows: original, answer, restart spread and true error |x_hat - x|, each (N, H, W, C);
    spread and error share one scale (their joint maximum) so they compare by eye."""
    error = np.abs(np.clip(x_hat, 0, 1) - x)
    top = max(float(spread.max()), float(error.max()), 1e-8)
    title = f"{label}: restart spread vs true error"
    if corr is not None:
        title += f" (pixel correlation {corr:.2f})"
    image_grid([("original", x), (label, np.clip(x_hat, 0, 1)), ("spread", spread / top),
                ("|error|", error / top)], path, title=title)
