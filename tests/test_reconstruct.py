import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import Partial

import gejax
from gejax import curvature, models, operators, solver
from gejax.reconstruct import projection_floor

LATENT = 4


def _tiny_generator(params, z):
    """A smooth 4 -> 6x6x1 generator with a unique preimage for moderate z."""
    h = jnp.tanh(params["w1"] @ z)
    return jax.nn.sigmoid(params["w2"] @ h).reshape(6, 6, 1)


def _params(key):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (16, LATENT)) / 2,
            "w2": jax.random.normal(k2, (36, 16)) / 2}


def _use_path(monkeypatch, path):
    """Force the host loop of the CPU ("chunked": a few images, one step per call) or of
    GPU/TPU ("scan": every image, 10 steps per call)."""
    rec = sys.modules["gejax.reconstruct"]  # the module; gejax.reconstruct is the function
    monkeypatch.setattr(rec, "_schedule", lambda b, r, mesh: (
        min(b, max(1, solver.CPU_SLOT_ROWS // r)), 1) if path == "chunked"
        else (b, solver.CPU_CHUNK))


@pytest.fixture(scope="module")
def problem():
    params = _params(jax.random.key(0))
    g = Partial(_tiny_generator, params)
    z_true = 0.5 * jax.random.normal(jax.random.key(1), (5, LATENT))
    x_true = jax.vmap(g)(z_true)
    a = operators.gaussian_matrix(jax.random.key(2), 16, 36)
    measure = gejax.ga_measure(a)
    y = jax.vmap(measure)(x_true)
    return g, measure, y, x_true, z_true


@pytest.mark.parametrize("path", ["chunked", "scan"])
def test_recovers_planted_latents(problem, path, monkeypatch):
    g, measure, y, x_true, _ = problem
    _use_path(monkeypatch, path)
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(3), latent_dim=LATENT,
                            num_restarts=3, steps=400, learning_rate=0.05, reg=0.0)
    assert out.x_hat.shape == x_true.shape
    assert out.z.shape == (5, LATENT) and out.objective.shape == (5, 3)
    assert float(gejax.metrics.mse(out.x_hat, x_true).max()) < 1e-4


@pytest.mark.parametrize("tol,whiten", [(0.0, False), (1e-2, False), (0.0, True), (1e-2, True)])
def test_chunked_and_scan_agree(problem, monkeypatch, tol, whiten):
    g, measure, y, *_ = problem
    kw = dict(key=jax.random.key(4), latent_dim=LATENT, num_restarts=2, steps=253, reg=1e-3,
              tol=tol, whiten=whiten)
    _use_path(monkeypatch, "chunked")
    a = gejax.reconstruct(g, measure, y, **kw)
    _use_path(monkeypatch, "scan")
    b = gejax.reconstruct(g, measure, y, **kw)
    np.testing.assert_array_equal(a.steps_run, b.steps_run)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.z, b.z, rtol=1e-4, atol=1e-5)


def test_early_stop_runs_images_in_slots_and_agrees_with_scan(problem, monkeypatch):
    """On the CPU path the early stop steps a fixed number of images at a time (one
    compiled shape), the next image starting when one stops, with the answers of the scan
    path, which steps all images together from the start."""
    g, measure, *_ = problem
    y = jax.vmap(measure)(jax.vmap(g)(0.5 * jax.random.normal(jax.random.key(11),
                                                              (16, LATENT))))
    kw = dict(key=jax.random.key(4), latent_dim=LATENT, num_restarts=2, steps=253, reg=1e-3,
              tol=1e-2)
    rows, advance = [], solver.advance
    monkeypatch.setattr(solver, "advance",
                        lambda *a, **k: rows.append(np.asarray(a[5])) or advance(*a, **k))
    _use_path(monkeypatch, "chunked")
    a = gejax.reconstruct(g, measure, y, **kw)
    chunked = list(rows)  # the chunked path's calls only
    _use_path(monkeypatch, "scan")
    b = gejax.reconstruct(g, measure, y, **kw)
    width = solver.CPU_SLOT_ROWS // 2
    assert {len(r) for r in chunked} == {width}, chunked
    problem = solver.Problem(y, (), None)
    z0 = solver.start(problem, kw["key"], LATENT, 2, 0.1, None).z
    start = solver.objectives(g, measure, problem, z0, jnp.float32(1e-3)).min(axis=1)
    assert set(chunked[0]) == set(np.argsort(-start)[:width].tolist())  # farthest first
    assert set(np.concatenate(chunked)) == set(range(16))  # every image got its turn
    assert len(np.unique(np.asarray(a.steps_run))) > 1  # the images stopped at different steps
    np.testing.assert_array_equal(a.steps_run, b.steps_run)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.z, b.z, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("xp", [np, jnp])
def test_early_stop_compares_with_the_best_two_windows_earlier(xp):
    """A one-window plateau (80 -> 79) does not stop an image that fell 21% over two
    windows; one that fell 3% over two windows stops at tol 5%; +inf means too early; at
    tol 0 only the step count stops an image."""
    before = xp.asarray([[100.0, 80.0], [100.0, 99.0], [np.inf, 100.0]])
    best = xp.asarray([[79.0, 85.0], [98.0, 97.0], [50.0, 60.0]])  # (B, R): min over R
    assert solver.STALL_WINDOWS == before.shape[1]
    steps_run = xp.asarray([20, 20, 20])
    np.testing.assert_array_equal(solver._stops(before, best, steps_run, 50, 0.05, xp),
                                  [False, True, False])
    np.testing.assert_array_equal(solver._stops(before, best, steps_run, 50, 0.0, xp),
                                  [False, False, False])
    np.testing.assert_array_equal(solver._stops(before, best, xp.asarray([20, 20, 50]), 50,
                                                0.0, xp), [False, False, True])
    np.testing.assert_array_equal(solver._shifted(before, best, xp),
                                  [[80.0, 79.0], [99.0, 97.0], [100.0, 50.0]])


def test_returns_argmin_restart_by_objective(problem):
    g, measure, y, *_ = problem
    reg = 1e-2
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(5), latent_dim=LATENT,
                            num_restarts=4, steps=5, reg=reg)
    np.testing.assert_array_equal(out.best_restart, jnp.argmin(out.objective, axis=1))
    # The returned z really has the objective reported for the chosen restart.
    recomputed = jnp.sum((jax.vmap(measure)(jax.vmap(g)(out.z)) - y) ** 2, axis=1) \
        + reg * jnp.sum(out.z**2, axis=1)
    np.testing.assert_allclose(recomputed, out.objective.min(axis=1), rtol=1e-4)
    np.testing.assert_allclose(out.x_hat, jax.vmap(g)(out.z), rtol=1e-5)
    # Restarts differ, so the choice is not trivially restart 0 everywhere.
    assert float(jnp.ptp(out.objective, axis=1).max()) > 0


def test_zero_steps_returns_the_random_starts(problem):
    g, measure, y, *_ = problem
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(6), latent_dim=LATENT,
                            num_restarts=2, steps=0)
    starts = jax.random.normal(jax.random.key(6), (5, 2, LATENT))
    np.testing.assert_allclose(out.z, starts[jnp.arange(5), out.best_restart])


def test_works_under_callers_jit_and_vmap(problem):
    g, measure, y, *_ = problem
    kw = dict(latent_dim=LATENT, num_restarts=2, steps=12, reg=1e-3)

    @jax.jit
    def solve(params, y, key):
        return gejax.reconstruct(Partial(_tiny_generator, params), measure, y, key=key, **kw)

    inside = solve(g.args[0], y, jax.random.key(8))
    outside = gejax.reconstruct(g, measure, y, key=jax.random.key(8), **kw)
    np.testing.assert_allclose(inside.objective, outside.objective, rtol=1e-4, atol=1e-5)

    # vmap over two measurement sets at once.
    stacked = jnp.stack([y, y[::-1]])
    both = jax.vmap(lambda y: gejax.reconstruct(g, measure, y, key=jax.random.key(8), **kw))(
        stacked)
    np.testing.assert_allclose(both.objective[0], outside.objective, rtol=1e-4, atol=1e-5)


def test_second_call_does_not_recompile(problem, monkeypatch):
    g, measure, y, *_ = problem
    kw = dict(latent_dim=LATENT, num_restarts=2)
    jitted = (solver.start_jit, solver.advance, solver.finish_jit, solver.objectives_jit)
    for path in ("chunked", "scan"):
        _use_path(monkeypatch, path)
        for tol in (0.0, 1e-3):  # one window with tol: which restarts stop may vary
            gejax.reconstruct(g, measure, y, key=jax.random.key(0), tol=tol,
                              **kw | dict(steps=10 if tol else 25))
    sizes = [f._cache_size() for f in jitted]
    # New parameters, measurements, key, lr, reg and tol: same shapes, same program.
    g2 = Partial(_tiny_generator, _params(jax.random.key(99)))
    for path in ("chunked", "scan"):
        _use_path(monkeypatch, path)
        for tol in (0.0, 2e-3):
            gejax.reconstruct(g2, gejax.ga_measure(jnp.ones((16, 36))), y + 1,
                              key=jax.random.key(1), learning_rate=0.2, reg=0.5, tol=tol,
                              **kw | dict(steps=10 if tol else 25))
    assert [f._cache_size() for f in jitted] == sizes


def test_one_solve_compiles_each_chunk_once(problem, monkeypatch):
    """The CPU path compiles one step program, with or without the early stop, however
    many windows run (35 steps: 3 windows and a short one): the first call's inputs are
    committed as the later ones are (else the second call compiles again)."""
    g, measure, y, *_ = problem
    _use_path(monkeypatch, "chunked")
    solver.advance.clear_cache()
    gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT, steps=35)
    gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT, steps=200,
                      tol=1e-3)
    assert solver.advance._cache_size() == 1


def test_ge_measure_with_real_networks(tiny_began, tiny_ae):
    key = jax.random.key(0)
    cfg = tiny_began
    gp = models.Generator(cfg).init(key, jnp.zeros((cfg.latent_dim,)))
    ap = models.ConvAutoencoder(tiny_ae).init(key, jnp.zeros(tiny_ae.image_shape))
    g = models.generator_fn(gp, cfg)
    en = models.ae_encoder_fn(ap, tiny_ae)
    mask = operators.block_mask(cfg.image_shape, size=3)
    measure = gejax.ge_measure(en, Partial(operators.apply_mask, mask=mask))
    x = jax.random.uniform(key, (3,) + cfg.image_shape)
    y = jax.vmap(measure)(x)
    # EN(S(x)), with the hole of S zeroed before EN sees it: not EN(x).
    np.testing.assert_allclose(y, jax.vmap(en)(x * mask), rtol=1e-5, atol=1e-6)
    assert not np.allclose(y, jax.vmap(en)(x), atol=1e-3)
    out = gejax.reconstruct(g, measure, y, key=key, latent_dim=cfg.latent_dim, steps=20)
    assert out.x_hat.shape == x.shape
    # Adam lowered the objective from the random starts.
    start = gejax.reconstruct(g, measure, y, key=key, latent_dim=cfg.latent_dim, steps=0)
    assert float(out.objective.mean()) < float(start.objective.mean())


def _linear(w, x):
    return w @ x.reshape(-1)


def _tiny_generator_np(params, z):
    """_tiny_generator in NumPy: vec(G(z)) (36,)."""
    h = np.tanh(np.asarray(params["w1"], np.float64) @ z)
    return 1 / (1 + np.exp(-np.asarray(params["w2"], np.float64) @ h))


@pytest.mark.parametrize("per_image", [False, True])
def test_ge_objective_by_hand_applies_the_operator(problem, per_image):
    """GE's objective ||EN(S(G(z))) - y||^2 + lambda ||z||^2 (paper eq. 5) at given z, in
    NumPy: EN a fixed 5 x 36 matrix, S a mask, fixed (a Partial) or one per image
    (measure_params). An objective that drops S, or lambda, or squares differently fails."""
    g, *_ = problem
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 36)).astype(np.float32)
    masks = (rng.uniform(size=(3, 6, 6, 1)) > 0.4).astype(np.float32)
    z = rng.normal(size=(3, 2, LATENT)).astype(np.float32)
    y = rng.normal(size=(3, 5)).astype(np.float32)
    en = Partial(_linear, jnp.asarray(w))
    if per_image:
        measure, extra = gejax.ge_measure(en, operators.apply_mask), dict(measure_params=masks)
    else:
        masks[:] = masks[0]
        measure = gejax.ge_measure(en, Partial(operators.apply_mask, mask=jnp.asarray(masks[0])))
        extra = {}
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT,
                            num_restarts=2, steps=0, reg=0.3, init=z, **extra)
    f = np.array([[np.sum((w @ (_tiny_generator_np(g.args[0], z[b, r]) * masks[b].ravel())
                           - y[b]) ** 2) + 0.3 * np.sum(z[b, r] ** 2) for r in range(2)]
                  for b in range(3)])
    np.testing.assert_allclose(out.objective, f, rtol=1e-5)
    # Without S the objective is another number: the test tells them apart.
    f_no_s = np.sum((w @ _tiny_generator_np(g.args[0], z[0, 0]) - y[0]) ** 2) \
        + 0.3 * np.sum(z[0, 0] ** 2)
    assert abs(f_no_s - f[0, 0]) > 1e-2 * f[0, 0]
    # The measurement itself, EN(S(x)), on an image that is not G's.
    x = rng.uniform(size=(6, 6, 1)).astype(np.float32)
    args = (masks[1],) if per_image else ()
    np.testing.assert_allclose(measure(x, *args), w @ (x * masks[1]).ravel(), rtol=1e-5,
                               atol=1e-6)


def test_ge_solve_fits_the_transformed_image(problem):
    """Solving GE with S = mask from y = EN(S(x_true)) finds a z whose S(G(z)) matches
    S(x_true) through EN: the final objective is near 0, far below that of a solve whose
    measurement forgets S (EN(G(z)) cannot reach EN(S(x)) for a G with values in (0, 1))."""
    g, _, _, x_true, _ = problem
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.normal(size=(12, 36)).astype(np.float32))
    mask = jnp.asarray((rng.uniform(size=(6, 6, 1)) > 0.5).astype(np.float32))
    en = Partial(_linear, w)
    y = np.stack([w @ (np.asarray(x) * np.asarray(mask)).ravel() for x in x_true])
    kw = dict(key=jax.random.key(3), latent_dim=LATENT, num_restarts=3, steps=300,
              learning_rate=0.05, reg=0.0)
    with_s = gejax.reconstruct(g, gejax.ge_measure(en, Partial(operators.apply_mask, mask=mask)),
                               y, **kw)
    without_s = gejax.reconstruct(g, gejax.ge_measure(en), y, **kw)
    best, best_without = (np.asarray(o.objective).min(axis=1) for o in (with_s, without_s))
    assert best.max() < 1e-3 * best_without.min(), (best, best_without)
    observed = np.asarray(mask, bool)[..., 0]
    np.testing.assert_allclose(np.asarray(with_s.x_hat)[:, observed],
                               np.asarray(x_true)[:, observed], atol=2e-2)


# Bad input: each raises before XLA sees it, with a message that names the problem.
def _bad(problem, **overrides):
    g, measure, y, *_ = problem
    kw = dict(generator=g, measure=measure, y=y, key=jax.random.key(0), latent_dim=LATENT,
              num_restarts=2, steps=3)
    kw.update(overrides)
    gejax.reconstruct(kw.pop("generator"), kw.pop("measure"), kw.pop("y"), **kw)


@pytest.mark.parametrize("overrides,error,match", [
    (dict(y=jnp.zeros((5, 15))), ValueError, "shape"),
    (dict(latent_dim=7), ValueError, "latent_dim"),
    (dict(y=jnp.full((5, 16), jnp.nan)), ValueError, "NaN"),
    (dict(y=jnp.zeros((0, 16))), ValueError, "B >= 1"),
    (dict(num_restarts=0), ValueError, "num_restarts"),
    (dict(steps=-1), ValueError, "steps"),
    (dict(steps=2.5), TypeError, "steps"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(learning_rate=float("inf")), ValueError, "learning_rate"),
    (dict(reg=-1.0), ValueError, "reg"),
    (dict(generator="G"), TypeError, "generator"),
    (dict(measure=None), TypeError, "measure"),
    (dict(key=0), TypeError, "key"),
    (dict(key=jnp.zeros(3)), TypeError, "key"),
    (dict(tol=-1e-3), ValueError, "tol"),
    (dict(whiten="yes"), TypeError, "whiten"),
    (dict(init=jnp.zeros((5, LATENT + 1))), ValueError, "init"),
    (dict(init=jnp.zeros((4, LATENT))), ValueError, "init"),
    (dict(init=jnp.zeros((5, 3, LATENT))), ValueError, "num_restarts"),
    (dict(init=jnp.full((5, LATENT), jnp.nan)), ValueError, "NaN"),
])
def test_bad_input(problem, overrides, error, match):
    with pytest.raises(error, match=match):
        _bad(problem, **overrides)


def test_legacy_uint32_key_is_accepted_and_draws_the_same_starts(problem):
    """A jax.random.PRNGKey(0) is the typed key(0)'s raw data: the same random starts."""
    g, measure, y, *_ = problem
    kw = dict(latent_dim=LATENT, num_restarts=2, steps=0)
    legacy = gejax.reconstruct(g, measure, y, key=jax.random.PRNGKey(0), **kw)
    typed = gejax.reconstruct(g, measure, y, key=jax.random.key(0), **kw)
    np.testing.assert_array_equal(legacy.objective, typed.objective)
    starts = jax.random.normal(jax.random.key(0), (5, 2, LATENT))
    np.testing.assert_array_equal(legacy.z, starts[jnp.arange(5), legacy.best_restart])


def test_projection_floor_is_the_distance_to_a_linear_generators_range():
    # G(z) = 0.5 + B z spans a 3-D plane; x = G(z0) + e with e orthogonal to it, so
    # min_z ||G(z) - x||^2 per pixel is exactly mean(e^2), and 0 for e = 0.
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(16, 4)))
    b, e_dir = 0.1 * basis[:, :3], basis[:, 3]
    z0 = rng.normal(size=(2, 3))
    on_range = 0.5 + z0 @ b.T
    e = 0.05 * e_dir * np.array([[0.0], [1.0]])
    x = (on_range + e).reshape(2, 4, 4, 1).astype(np.float32)
    b = jnp.asarray(b, jnp.float32)

    def generator(z):
        return (0.5 + b @ z).reshape(4, 4, 1)

    floor = projection_floor(generator, x, key=jax.random.key(0), latent_dim=3, steps=300,
                             learning_rate=0.05)
    np.testing.assert_allclose(floor, np.mean(e**2, axis=1), atol=2e-6)


def test_tol_zero_is_the_paper_protocol(problem):
    """tol=0 runs every step and returns the final z of a plain optax Adam loop."""
    g, measure, y, *_ = problem
    kw = dict(key=jax.random.key(10), latent_dim=LATENT, num_restarts=2, steps=30, reg=1e-3)
    default, zero = gejax.reconstruct(g, measure, y, **kw), gejax.reconstruct(g, measure, y,
                                                                               tol=0.0, **kw)
    for a, b in zip(default, zero, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(zero.steps_run, np.full(5, 30))

    z = jax.random.normal(jax.random.key(10), (5, 2, LATENT))
    opt = optax.adam(0.1)
    state = opt.init(z)

    def total(z):
        r = jax.vmap(jax.vmap(measure))(jax.vmap(jax.vmap(g))(z)) - y[:, None]
        return jnp.sum(r**2) + 1e-3 * jnp.sum(z**2)

    for _ in range(30):
        updates, state = opt.update(jax.grad(total)(z), state)
        z = optax.apply_updates(z, updates)
    np.testing.assert_allclose(zero.z, z[jnp.arange(5), zero.best_restart], atol=5e-5)


@pytest.mark.parametrize("path", ["chunked", "scan"])
def test_early_stop_stops_and_never_ends_worse_than_at_the_stop(problem, path, monkeypatch):
    g, measure, y, *_ = problem
    _use_path(monkeypatch, path)
    kw = dict(key=jax.random.key(11), latent_dim=LATENT, num_restarts=3, reg=1e-3)
    out = gejax.reconstruct(g, measure, y, steps=400, tol=1e-2, **kw)
    steps_run = np.asarray(out.steps_run)
    assert steps_run.max() < 400 and steps_run.min() >= 10 and np.all(steps_run % 10 == 0)
    assert len(np.unique(steps_run)) > 1  # images stop on their own, not all at once
    for s in np.unique(steps_run):
        plain = gejax.reconstruct(g, measure, y, steps=int(s), **kw)
        stopped_here = steps_run == s
        assert np.all(np.asarray(out.objective)[stopped_here]
                      <= np.asarray(plain.objective)[stopped_here] * (1 + 1e-4) + 1e-7)
    # The answer is the best restart, and its image is G of its latent.
    np.testing.assert_array_equal(out.best_restart, jnp.argmin(out.objective, axis=1))
    np.testing.assert_allclose(out.x_hat, jax.vmap(g)(out.z), rtol=1e-5)


def test_early_stop_under_callers_jit(problem):
    g, measure, y, *_ = problem
    kw = dict(key=jax.random.key(12), latent_dim=LATENT, num_restarts=2, steps=300)
    eager = gejax.reconstruct(g, measure, y, tol=1e-2, **kw)
    traced = jax.jit(lambda y, tol: gejax.reconstruct(g, measure, y, tol=tol, **kw))(y, 1e-2)
    np.testing.assert_array_equal(traced.steps_run, eager.steps_run)
    np.testing.assert_allclose(traced.objective, eager.objective, rtol=1e-4, atol=1e-6)


def test_init_with_the_true_latent_returns_it(problem):
    g, measure, y, x_true, z_true = problem
    kw = dict(key=jax.random.key(13), latent_dim=LATENT, num_restarts=2, reg=0.0)
    start = gejax.reconstruct(g, measure, y, init=z_true, steps=0, **kw)
    np.testing.assert_allclose(start.objective[:, 0], 0.0, atol=1e-10)
    np.testing.assert_array_equal(start.z, z_true)
    out = gejax.reconstruct(g, measure, y, init=z_true, steps=50, learning_rate=0.01, **kw)
    np.testing.assert_allclose(out.z, z_true, atol=1e-2)
    np.testing.assert_allclose(out.x_hat, x_true, atol=1e-3)


def test_init_sets_the_first_restarts_and_keeps_the_random_ones(problem):
    g, measure, y, *_ = problem
    kw = dict(key=jax.random.key(14), latent_dim=LATENT, num_restarts=3, steps=0)
    z0 = jnp.full((5, 2, LATENT), 0.25)
    with_init = gejax.reconstruct(g, measure, y, init=z0, **kw)
    random = gejax.reconstruct(g, measure, y, **kw)
    starts = jax.random.normal(jax.random.key(14), (5, 3, LATENT))
    # The objective of each start tells which z it had: restarts 0-1 the given, 2 random.
    np.testing.assert_allclose(with_init.objective[:, 2], random.objective[:, 2])
    given = gejax.reconstruct(g, measure, y, init=starts.at[:, :2].set(z0), **kw)
    np.testing.assert_array_equal(with_init.objective, given.objective)


@pytest.mark.parametrize("path", ["chunked", "scan"])
@pytest.mark.parametrize("tol", [0.0, 1e-2])
def test_progress_is_reported_on_every_path(problem, path, tol, monkeypatch):
    g, measure, y, *_ = problem
    _use_path(monkeypatch, path)
    seen = []
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(15), latent_dim=LATENT,
                            steps=157, tol=tol, progress=seen.append)
    assert all(n > 0 for n in seen)
    assert sum(seen) == int(np.sum(out.steps_run)) // len(y)  # the batch's image-steps / B
    if tol:
        assert sum(seen) < 157
    else:
        assert sum(seen) == 157
    if not tol and path == "scan":  # all images step together, reported every window
        assert len(seen) == 16


def _flat(x):
    return x.reshape(-1)


@pytest.mark.parametrize("path", ["chunked", "scan"])
def test_per_image_operators_match_one_call_per_image_in_one_compile(problem, path,
                                                                     monkeypatch):
    """measure_params: each image its own random mask, one program for the batch."""
    g, _, _, x_true, _ = problem
    _use_path(monkeypatch, path)
    measure = gejax.ge_measure(_flat, operators.apply_mask)  # EN(S(x, mask)), EN = flatten
    masks = jax.random.bernoulli(jax.random.key(5), 0.6, (5, 6, 6, 1)).astype(jnp.float32)
    y = jax.vmap(measure)(x_true, masks)
    z0 = jax.random.normal(jax.random.key(6), (5, 2, LATENT))
    kw = dict(key=jax.random.key(0), latent_dim=LATENT, num_restarts=2, steps=60, reg=0.0)
    program = solver.advance
    before = program._cache_size()
    batch = gejax.reconstruct(g, measure, y, init=z0, measure_params=masks, **kw)
    assert program._cache_size() == before + 1
    other = jax.random.bernoulli(jax.random.key(7), 0.6, masks.shape).astype(jnp.float32)
    gejax.reconstruct(g, measure, jax.vmap(measure)(x_true, other), init=z0,
                      measure_params=other, **kw)
    assert program._cache_size() == before + 1  # new masks are data, not a new program
    for b in range(5):
        alone = gejax.reconstruct(g, Partial(_masked_flat, masks[b]), y[b:b + 1],
                                  init=z0[b:b + 1], **kw)
        np.testing.assert_allclose(batch.x_hat[b], alone.x_hat[0], atol=1e-5)
        np.testing.assert_allclose(batch.objective[b], alone.objective[0], rtol=1e-4,
                                   atol=1e-7)
    assert not np.allclose(masks[0], masks[1])  # the images did have different operators


def _masked_flat(mask, x):
    return (x * mask).reshape(-1)


def test_measure_params_need_the_batch_axis(problem):
    g, _, _, x_true, _ = problem
    measure = gejax.ge_measure(_flat, operators.apply_mask)
    y = jax.vmap(_flat)(x_true)
    with pytest.raises(ValueError, match="leading batch axis"):
        gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT, steps=1,
                          measure_params=jnp.ones((3, 6, 6, 1)))


def test_spread_is_the_weighted_disagreement_of_the_restarts(problem):
    """Reconstruction.spread by hand, at the starts (steps=0): weights exp(-(f - f*)/f*)."""
    g, measure, y, *_ = problem
    z0 = jax.random.normal(jax.random.key(8), (5, 3, LATENT))
    out = gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT,
                            num_restarts=3, steps=0, reg=0.1, init=z0)
    x_all = np.asarray(jax.vmap(jax.vmap(g))(z0))
    f = np.array([[np.sum((np.asarray(measure(x_all[b, r])) - np.asarray(y[b])) ** 2)
                   + 0.1 * np.sum(np.asarray(z0[b, r]) ** 2) for r in range(3)]
                  for b in range(5)])
    np.testing.assert_allclose(out.objective, f, rtol=1e-5)
    best = f.argmin(axis=1)
    w = np.exp(-(f - f.min(axis=1, keepdims=True)) / f.min(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    x_best = x_all[np.arange(5), best]
    expected = np.sqrt(np.einsum("br,brhwc->bhwc", w, (x_all - x_best[:, None]) ** 2))
    np.testing.assert_allclose(out.spread, expected, rtol=1e-4, atol=1e-6)
    assert float(np.min(expected.max(axis=(1, 2, 3)))) > 1e-3  # the restarts did disagree
    one = gejax.reconstruct(g, measure, y, key=jax.random.key(0), latent_dim=LATENT,
                            num_restarts=1, steps=3)
    assert float(jnp.max(one.spread)) == 0.0


def _stretched(key):
    """A linear G z -> (M z) as a 2x2x1 image whose singular values run 30 to 0.03 along
    rotated axes: an objective Adam on z crosses slowly, as the shipped G's is near an
    answer (curvature 0.8 to 3,500)."""
    q, _ = jnp.linalg.qr(jax.random.normal(key, (LATENT, LATENT)))
    m = q @ jnp.diag(jnp.asarray([30.0, 3.0, 0.3, 0.03])) @ q.T
    return Partial(lambda m, z: (m @ z).reshape(2, 2, 1), m), m


def test_whitening_makes_the_gauss_newton_matrix_isotropic():
    g, m = _stretched(jax.random.key(20))
    measure = gejax.ga_measure(jnp.eye(LATENT))
    z = jax.random.normal(jax.random.key(21), (LATENT,))
    y = measure(g(z))
    h = m.T @ m + 0.5 * jnp.eye(LATENT)  # J^T J + reg I; J = M everywhere
    p = curvature.whitening(g, measure, z, y, (), 0.5, damping=0.0)
    e = jnp.linalg.eigvalsh(h)
    np.testing.assert_allclose(p.T @ h @ p, e.mean() * jnp.eye(LATENT), rtol=1e-3, atol=1e-2)
    # Damping caps how far a flat direction is stretched: at most sqrt(1 / damping).
    damped = curvature.whitening(g, measure, z, y, (), 0.5, damping=1e-2)
    assert float(jnp.linalg.norm(damped, ord=2)) <= 10.0 + 1e-3


@pytest.mark.parametrize("path", ["chunked", "scan"])
def test_whitened_adam_crosses_a_stretched_objective_in_fewer_steps(path, monkeypatch):
    g, _ = _stretched(jax.random.key(22))
    measure = gejax.ga_measure(jnp.eye(LATENT))
    z_true = jax.random.normal(jax.random.key(23), (6, LATENT))
    y = jax.vmap(measure)(jax.vmap(g)(z_true))
    start = z_true + 0.5 * jax.random.normal(jax.random.key(24), z_true.shape)
    _use_path(monkeypatch, path)
    kw = dict(key=jax.random.key(25), latent_dim=LATENT, num_restarts=1, steps=60, reg=0.0,
              init=start)
    plain = gejax.reconstruct(g, measure, y, **kw)
    white = gejax.reconstruct(g, measure, y, whiten=True, **kw)
    np.testing.assert_array_less(white.objective, 0.25 * plain.objective)  # every image


def test_whitened_solve_under_callers_jit(problem):
    g, measure, y, *_ = problem
    kw = dict(key=jax.random.key(26), latent_dim=LATENT, num_restarts=2, steps=40, whiten=True)
    eager = gejax.reconstruct(g, measure, y, tol=1e-2, **kw)
    traced = jax.jit(lambda y: gejax.reconstruct(g, measure, y, tol=1e-2, **kw))(y)
    np.testing.assert_array_equal(traced.steps_run, eager.steps_run)
    np.testing.assert_allclose(traced.objective, eager.objective, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("path", ["chunked", "scan"])
def test_an_answer_does_not_depend_on_its_batch_mates(problem, path, monkeypatch):
    """Whitened, early-stopped (the fast path): 8 images solved as one batch, inside a batch
    of 64, beside 24 others and each alone get the same answers, from per-image keys."""
    g, measure, *_ = problem
    _use_path(monkeypatch, path)
    y = jax.vmap(measure)(jax.vmap(g)(0.7 * jax.random.normal(jax.random.key(27),
                                                              (64, LATENT))))
    keys = jax.random.split(jax.random.key(28), 64)
    kw = dict(latent_dim=LATENT, num_restarts=2, steps=200, tol=5e-2, whiten=True)

    def solve(rows):
        return gejax.reconstruct(g, measure, y[rows], key=keys[rows], **kw)

    eight = np.arange(8)
    def rows(out, i, j):
        return gejax.Reconstruction(*(a[i:j] for a in out))

    alone = [solve(np.array([b])) for b in eight]
    ways = [solve(eight), rows(solve(np.arange(64)), 0, 8),
            rows(solve(np.r_[np.arange(40, 52), eight, np.arange(52, 64)]), 12, 20),
            gejax.Reconstruction(*(np.concatenate(a) for a in zip(*alone, strict=True)))]
    assert len(np.unique(np.asarray(ways[0].steps_run))) > 1  # the early stop did act
    for other in ways[1:]:
        np.testing.assert_array_equal(other.steps_run, ways[0].steps_run)
        np.testing.assert_allclose(other.x_hat, ways[0].x_hat, atol=1e-5)
        np.testing.assert_allclose(other.objective, ways[0].objective, rtol=1e-4, atol=1e-6)
