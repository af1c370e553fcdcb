"""What an experiment leaves behind: results.json (schema: docs/guide/results.md),
results.md and the figures, each written atomically by process 0; and the per-method
summary they hold.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from gejax import checkpoint, metrics, parallel


def prepare_out(path: str | Path) -> Path:
    """Create the output folder and make sure files can be written there, up front."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to --out {path}: {e.strerror or e}") from e
    return path


def summarize(x_hat: np.ndarray, x: np.ndarray, seconds: float, spread=None, **extra) -> dict:
    """The per-method entry of results.json: metrics averaged over images, on [0, 1].

    With the solver's per-pixel `spread` (N, H, W, C), also "spread_error_corr": the
    Pearson correlation of spread and true error |x_hat - x| over all pixels ("pixels")
    and of their per-image means ("images"): how far the spread tells where the answer
    is wrong, without the ground truth.
    """
    x_hat = np.clip(np.asarray(x_hat), 0, 1)
    mse = np.asarray(metrics.mse(x_hat, x))
    out = {"mse": float(mse.mean()), "mse_std": float(mse.std()),
           "psnr": float(np.mean(metrics.psnr(x_hat, x))),
           "ssim": float(np.mean(metrics.ssim(x_hat, x))), "seconds": float(seconds), **extra}
    if spread is not None:
        error = np.abs(x_hat - x)
        out["spread_error_corr"] = {
            "pixels": _corr(spread.ravel(), error.ravel()),
            "images": _corr(spread.mean(axis=(1, 2, 3)), error.mean(axis=(1, 2, 3)))}
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation; None where either side is constant (e.g. one restart)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def provenance(solver, workdir: str) -> dict:
    versions = {p: metadata.version(p) for p in ("gejax", "jax", "flax", "optax")}
    return {"workdir": str(workdir), "solver": dataclasses.asdict(solver),
            "versions": versions, "python": platform.python_version(),
            "backend": jax.default_backend(), "devices": jax.device_count(),
            "processes": jax.process_count()}


def write_outputs(out_dir: str | Path, results: dict, table: str,
                  figures: Callable[[Path], None]) -> None:
    """results.json, results.md and the figures, each written atomically (by process 0)."""
    if not parallel.is_primary():
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures(out_dir)
    checkpoint.write_text_atomic(out_dir / "results.md", table)
    checkpoint.write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2))


def markdown_table(results: dict, *, title: str) -> str:
    lines = [f"# {title}", "",
             "| method | m | MSE (mean +- std) | PSNR (dB) | SSIM | seconds | solver steps "
             "(mean) | start |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["methods"].items():
        steps = f"{r['steps_run']:.0f}" if "steps_run" in r else ""
        start = r.get("init", "")
        if "mu" in r:  # a "_dev" row: its deviation, or none where none won on train
            start += f"; nu: mu {r['mu']:g} {r['basis']}" if r["mu"] else "; nu: none won"
        lines.append(f"| {name} | {r.get('m', '')} | {r['mse']:.5f} +- {r['mse_std']:.5f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['seconds']:.1f} | {steps} | "
                     f"{start} |")
    if "g_floor" in results:
        f = results["g_floor"]
        lines += ["", f"G's floor on these images, min_z ||G(z) - x||^2 (no method returning "
                      f"G(z) can do better): MSE {f['mse']:.5f} +- {f['mse_std']:.5f}"]
    return "\n".join(lines) + "\n"


def line(name: str, r: dict, *, width: int) -> str:
    """One method's progress line: name, (m,) MSE, PSNR, SSIM and seconds."""
    m = f"m={r['m']:<4} " if "m" in r else ""
    return (f"{name:>{width}}  {m}MSE {r['mse']:.5f} +- {r['mse_std']:.5f}  "
            f"PSNR {r['psnr']:5.2f}  SSIM {r['ssim']:.3f}  {r['seconds']:6.1f}s")


def curves(points: dict, label: str) -> dict[str, dict[str, list]]:
    """{value: methods dict} of a sweep -> {method: {label: [...], "mse": [...], "mse_std",
    "psnr", "ssim"}}, the values in the order given; a method missing at a value is skipped
    there."""
    out: dict[str, dict[str, list]] = {}
    for value, methods in points.items():
        for name, r in methods.items():
            curve = out.setdefault(name, {k: [] for k in (label, "mse", "mse_std", "psnr",
                                                          "ssim")})
            curve[label].append(value)
            for k in ("mse", "mse_std", "psnr", "ssim"):
                curve[k].append(r[k])
    return out


def sweep_table(curves: dict, label: str, metric: str, *, title: str) -> str:
    """A markdown table of a sweep: one row per method, one column per value of `label`."""
    values = sorted({v for c in curves.values() for v in c[label]})
    lines = [f"## {title}", "", f"| {metric} \\ {label} | " + " | ".join(map(str, values)) + " |",
             "|---" * (len(values) + 1) + "|"]
    for name, c in curves.items():
        at = dict(zip(c[label], c[metric], strict=True))
        cells = ["-" if v not in at else f"{at[v]:.5f}" if metric == "mse" else f"{at[v]:.2f}"
                 for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
