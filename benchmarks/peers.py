"""gejax against a plain PyTorch loop on the same CPU, in one run: ratios, not seconds.

    pip install -e '.[bench]'          # torch, only for this script
    python benchmarks/peers.py [--images 64 --restarts 2 --steps 50]

Both sides compute the same functions with the same weights: the embedded default's G
and GE1 encoder are copied into torch modules (the script checks that the outputs agree)
and the GA matrix is shared. Printed per side: the solver's image*restart*steps per
second for GE (EN(G(z))) and GA (A vec G(z)), both as torch's natural loop (restarts
folded into the batch, torch.optim.Adam on z) and as `gejax.reconstruct`; one BEGAN
training step (G and D, k_t, pull-away, G's moving average); and the f32 matmul FLOP/s of
each library, so that the solver's FLOP/s can be read as a fraction of the machine's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gejax
from gejax import models, operators, training
from gejax.workdir import default_workdir, eval_images, load_networks

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("benchmarks/peers.py needs torch: pip install -e '.[bench]'")

sys.path.insert(0, str(Path(__file__).parent))
from solver import matmul_flops_per_second, step_flops  # noqa: E402


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, np.float32))


class TorchConv:
    """A Flax 3x3 SAME conv (HWIO kernel) in torch's NCHW layout, stride 1 or 2."""

    def __init__(self, p, stride=1):
        self.w = _t(np.transpose(np.asarray(p["kernel"]), (3, 2, 0, 1))).requires_grad_()
        self.b = _t(p["bias"]).requires_grad_()
        self.stride = stride

    def __call__(self, x):
        if self.stride == 1:
            return F.conv2d(x, self.w, self.b, padding=1)
        # XLA's SAME for stride 2 on an even side pads one row/column after, none before.
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.w, self.b, stride=2)

    def params(self):
        return [self.w, self.b]


class TorchDense:
    def __init__(self, p):
        self.w = _t(np.asarray(p["kernel"]).T).requires_grad_()
        self.b = _t(p["bias"]).requires_grad_()

    def __call__(self, x):
        return F.linear(x, self.w, self.b)

    def params(self):
        return [self.w, self.b]


def _nhwc_flat(x):  # Flax flattens (H, W, C); torch holds (C, H, W)
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class TorchDecoder:
    """models.BeganDecoder (G, and D's decoder) with the given Flax parameters."""

    def __init__(self, p, cfg: models.BeganConfig):
        self.cfg = cfg
        self.dense = TorchDense(p["Dense_0"])
        self.convs = [TorchConv(p[f"Conv_{i}"]) for i in range(2 * cfg.num_blocks + 1)]

    def __call__(self, h):
        f = self.cfg.filters
        x = self.dense(h).reshape(-1, 8, 8, f).permute(0, 3, 1, 2)
        for block in range(self.cfg.num_blocks):
            x = F.elu(self.convs[2 * block](x))
            x = F.elu(self.convs[2 * block + 1](x))
            if block < self.cfg.num_blocks - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.convs[-1](x)

    def params(self):
        return self.dense.params() + [q for c in self.convs for q in c.params()]


class TorchBeganEncoder:
    """models.BeganEncoder (D's encoder)."""

    def __init__(self, p, cfg: models.BeganConfig):
        self.cfg = cfg
        n = 1 + 3 * cfg.num_blocks - 1
        strides = [1] + [s for b in range(cfg.num_blocks)
                         for s in ([1, 1, 2] if b < cfg.num_blocks - 1 else [1, 1])]
        self.convs = [TorchConv(p[f"Conv_{i}"], s) for i, s in zip(range(n), strides, strict=True)]
        self.dense = TorchDense(p["Dense_0"])

    def __call__(self, x):
        for conv in self.convs:
            x = F.elu(conv(x))
        return self.dense(_nhwc_flat(x))

    def params(self):
        return [q for c in self.convs for q in c.params()] + self.dense.params()


class TorchConvEncoder:
    """models.ConvEncoder (GE1's EN)."""

    def __init__(self, p, cfg: models.AEConfig):
        self.convs = [TorchConv(p[f"Conv_{i}"], 2) for i in range(cfg.depth)]
        self.dense = TorchDense(p["Dense_0"])

    def __call__(self, x):
        for conv in self.convs:
            x = F.elu(conv(x))
        return self.dense(_nhwc_flat(x))


def _per_step(run, short: int, long: int) -> float:
    """Seconds per step from two timed runs (startup and compilation cancel out)."""
    run(short)  # warm up / compile
    times = {}
    for n in (short, long):
        t = time.perf_counter()
        run(n)
        times[n] = time.perf_counter() - t
    return (times[long] - times[short]) / (long - short)


def torch_solver(g, measure, y, latent_dim, restarts, reg):
    def run(steps):
        z = torch.randn(y.shape[0] * restarts, latent_dim, requires_grad=True)
        target = y.repeat_interleave(restarts, 0)
        opt = torch.optim.Adam([z], lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((measure(g(z)) - target) ** 2).sum() + reg * (z**2).sum()
            loss.backward()
            opt.step()
    return run


def jax_solver(nets, measure, y, restarts, reg):
    def run(steps):
        out = gejax.reconstruct(nets.generator, measure, y, key=jax.random.key(0),
                                latent_dim=nets.began.latent_dim, num_restarts=restarts,
                                steps=steps, reg=reg)
        out.x_hat.block_until_ready()
    return run


def torch_began_step(g_params, d_params, cfg, tcfg, batch):
    g = TorchDecoder(g_params["params"]["decoder"], cfg)
    d_enc = TorchBeganEncoder(d_params["params"]["encoder"], cfg)
    d_dec = TorchDecoder(d_params["params"]["decoder"], cfg)
    g_ps, d_ps = g.params(), d_enc.params() + d_dec.params()
    ema = [p.detach().clone() for p in g_ps]
    opt_g = torch.optim.Adam(g_ps, lr=tcfg.learning_rate, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_ps, lr=tcfg.learning_rate, betas=(0.5, 0.999))
    real = _t(batch).permute(0, 3, 1, 2).contiguous()
    k = torch.zeros(())

    def pull_away(h):
        u = h / (h.norm(dim=1, keepdim=True) + 1e-8)
        n = h.shape[0]
        return (((u @ u.T) ** 2).sum() - n) / (n * (n - 1))

    def run(steps):
        nonlocal k
        for _ in range(steps):
            fake = g(torch.randn(real.shape[0], cfg.latent_dim))
            l_real = (d_dec(d_enc(real)) - real).abs().mean()
            fake_d = fake.detach()
            l_fake = (d_dec(d_enc(fake_d)) - fake_d).abs().mean()
            opt_d.zero_grad()
            (l_real - k * l_fake).backward()
            h = d_enc(fake)
            g_loss = (d_dec(h) - fake).abs().mean() + tcfg.pull_away * pull_away(h)
            grads = torch.autograd.grad(g_loss, g_ps)
            for p, gr in zip(g_ps, grads, strict=True):
                p.grad = gr
            opt_d.step()
            opt_g.step()
            with torch.no_grad():
                k = torch.clamp(k + tcfg.lambda_k * (tcfg.gamma * l_real - l_fake), 0, 1)
                for e, p in zip(ema, g_ps, strict=True):
                    e.mul_(tcfg.ema_decay).add_(p, alpha=1 - tcfg.ema_decay)
    return run


def jax_began_step(cfg, tcfg, batch):
    state = training.began_init(cfg, tcfg)
    step = jax.jit(lambda s, b, k: training.began_step(s, b, k, model=cfg, cfg=tcfg),
                   donate_argnums=0)
    batch = jnp.asarray(batch)

    def run(steps):
        nonlocal state
        for i in range(steps):
            state, metrics = step(state, batch, jax.random.key(i))
        jax.block_until_ready(metrics)
    return run


def torch_matmul_flops(n=2048, repeats=5):
    a = torch.randn(n, n)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="timed steps (beyond 20)")
    parser.add_argument("--train_steps", type=int, default=20)
    args = parser.parse_args()

    workdir = default_workdir()
    nets = load_networks(workdir)
    cfg = nets.began
    _, g_params, d_params = training.load_began(workdir)
    ae, ae_params = training.load_ae(workdir)
    x = eval_images(nets, args.images)
    n_pixels = int(np.prod(x.shape[1:]))
    a = np.asarray(operators.gaussian_matrix(jax.random.key(0), 128, n_pixels))

    tg = TorchDecoder(g_params["params"]["decoder"], cfg)
    ten = TorchConvEncoder(ae_params["params"]["encoder"], ae)
    ta = _t(a)
    with torch.no_grad():
        z = np.random.default_rng(0).normal(size=(4, cfg.latent_dim)).astype(np.float32)
        err_g = np.abs(tg(_t(z)).permute(0, 2, 3, 1).numpy()
                       - np.asarray(jax.vmap(nets.generator)(z))).max()
        err_en = np.abs(ten(_t(x[:4]).permute(0, 3, 1, 2)).numpy()
                        - np.asarray(jax.vmap(nets.encoders["ge1"])(x[:4]))).max()
    print(f"same functions: max |torch - jax| G {err_g:.1e}, EN {err_en:.1e}")
    if max(err_g, err_en) > 1e-3:
        sys.exit("the torch copies do not compute what gejax computes; not comparing")

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__} "
          f"({jax.default_backend()}); {args.images} images x {args.restarts} restarts")
    jax_mm, torch_mm = matmul_flops_per_second(), torch_matmul_flops()
    print(f"f32 matmul 2048^3: jax {jax_mm / 1e9:.1f} GFLOP/s, torch {torch_mm / 1e9:.1f} "
          f"GFLOP/s")
    rows = []
    x_t = _t(x).permute(0, 3, 1, 2)
    for name, j_measure, t_measure, reg in (
            ("GE1 solver", gejax.ge_measure(nets.encoders["ge1"]), ten, 1e-3),
            ("GA solver", gejax.ga_measure(a), lambda v: v.permute(0, 2, 3, 1).reshape(
                v.shape[0], -1) @ ta.T, 1.0)):
        y = jax.vmap(j_measure)(jnp.asarray(x))
        with torch.no_grad():
            y_t = t_measure(x_t)
        work = args.images * args.restarts
        t_torch = _per_step(torch_solver(tg, t_measure, y_t, cfg.latent_dim, args.restarts,
                                         reg), 20, 20 + args.steps)
        t_jax = _per_step(jax_solver(nets, j_measure, y, args.restarts, reg), 20,
                          20 + args.steps)
        flops = step_flops(nets.generator, j_measure, y, cfg.latent_dim, args.restarts)
        rows.append((name, work / t_torch, work / t_jax, flops / t_jax / jax_mm))
    tcfg = training.BeganTrainConfig()
    batch = x[:tcfg.batch_size]
    t_torch = _per_step(torch_began_step(g_params, d_params, cfg, tcfg, batch), 5,
                        5 + args.train_steps)
    t_jax = _per_step(jax_began_step(cfg, tcfg, batch), 5, 5 + args.train_steps)
    rows.append(("BEGAN train step", 1 / t_torch, 1 / t_jax, float("nan")))

    print(f"\n| {'work':<16} | torch per s | gejax per s | gejax / torch | gejax FLOP/s of "
          f"matmul |\n|---|---|---|---|---|")
    for name, t, j, frac in rows:
        unit = "img*rst*steps" if "solver" in name else "steps"
        print(f"| {name:<16} | {t:9.1f} {unit} | {j:9.1f} | {j / t:5.2f}x | "
              f"{'' if np.isnan(frac) else f'{frac:.0%}'} |")


if __name__ == "__main__":
    main()
