"""Sparse deviations (gejax.deviation): x = G(z) + nu, nu sparse in a basis, solved beside z."""

import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt
from jax.tree_util import Partial
from sklearn.linear_model import Lasso

import gejax
from gejax import curvature, deviation, operators, solver

LATENT = 4


def _generator(params, z):
    h = jnp.tanh(params["w1"] @ z)
    return jax.nn.sigmoid(params["w2"] @ h).reshape(8, 8, 1)


@pytest.fixture(scope="module")
def problem():
    k1, k2 = jax.random.split(jax.random.key(0))
    g = Partial(_generator, {"w1": jax.random.normal(k1, (16, LATENT)) / 2,
                             "w2": jax.random.normal(k2, (64, 16)) / 2})
    x = jax.vmap(g)(0.5 * jax.random.normal(jax.random.key(1), (6, LATENT)))
    # Off G's range: a few DCT atoms on top of G's images.
    c = np.zeros((6, 8, 8, 1), np.float32)
    c[:, 1, 2], c[:, 5, 0] = 0.8, -0.6
    x = x + jax.vmap(deviation.idct)(jnp.asarray(c))
    measure = gejax.ga_measure(operators.gaussian_matrix(jax.random.key(2), 48, 64))
    return g, measure, jax.vmap(measure)(x), x


@pytest.mark.parametrize("basis", deviation.BASES)
def test_bases_are_orthonormal_and_invert(basis):
    x = jax.random.uniform(jax.random.key(0), (16, 8, 3))
    c = deviation.analysis(basis)(x)
    np.testing.assert_allclose(deviation.synthesis(basis)(c), x, atol=1e-5)
    np.testing.assert_allclose(jnp.linalg.norm(c), jnp.linalg.norm(x), rtol=1e-5)


def test_haar_is_pywavelets_haar():
    x = np.random.RandomState(0).rand(16, 16).astype(np.float32)
    want, _ = pywt.coeffs_to_array(pywt.wavedec2(x, "haar", mode="periodization"))
    np.testing.assert_allclose(deviation.haar(jnp.asarray(x)[..., None])[..., 0], want,
                               atol=1e-5)


def test_soft_threshold_by_hand():
    c = jnp.array([-3.0, -0.5, 0.0, 0.2, 2.0])
    np.testing.assert_allclose(deviation.soft_threshold(c, 1.0), [-2.0, 0.0, 0.0, 0.0, 1.0])


def test_proximal_step_by_hand():
    """FISTA's point and step: now + k/(k+3)(now - before), then soft(point - eta g, eta mu)."""
    now = jnp.array([[[1.0, -1.0, 0.5]]])  # (B, R, P) = (1, 1, 3)
    before = jnp.array([[[0.0, -1.0, 1.0]]])
    c = deviation.Coefficients(now, before, jnp.zeros_like(now))
    point = c.point(jnp.array([3]))  # k / (k + 3) = 1/2
    np.testing.assert_allclose(point, [[[1.5, -1.0, 0.25]]])
    new = c.step(point, jnp.array([[[1.0, 2.0, -1.0]]]), jnp.array([0.5]), jnp.array([1.0]),
                 jnp.array([[True]]))
    # point - 0.5 g = [1.0, -2.0, 0.75]; thresholded by 0.5
    np.testing.assert_allclose(new.now, [[[0.5, -1.5, 0.25]]])
    np.testing.assert_allclose(new.before, now)
    np.testing.assert_allclose(new.best, point)


def test_lipschitz_of_a_matrix_is_its_largest_squared_singular_value():
    a = operators.gaussian_matrix(jax.random.key(0), 20, 36)
    got = curvature.lipschitz(gejax.ga_measure(a), jnp.zeros((6, 6, 1)), ())
    np.testing.assert_allclose(got, np.linalg.norm(np.asarray(a), 2) ** 2, rtol=2e-2)


def test_large_mu_returns_the_solver_without_deviation(problem):
    g, measure, y, _ = problem
    kw = dict(key=jax.random.key(3), latent_dim=LATENT, steps=60, num_restarts=2)
    plain = gejax.reconstruct(g, measure, y, **kw)
    off = gejax.reconstruct(g, measure, y, deviation=gejax.Deviation(float("inf")), **kw)
    large = gejax.reconstruct(g, measure, y, deviation=gejax.Deviation(1e6), **kw)
    for a, b in zip(plain, off, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.any(np.asarray(large.nu))
    np.testing.assert_allclose(large.x_hat, plain.x_hat, atol=1e-5)
    np.testing.assert_allclose(large.objective, plain.objective, rtol=1e-5)


@pytest.mark.parametrize("basis", deviation.BASES)
def test_with_g_constant_the_answer_is_the_lasso_in_the_basis(basis):
    """G(z) = g0: min_c ||A (g0 + Psi^T c) - y||^2 + mu ||c||_1, which scikit-learn's Lasso
    solves as (1 / 2m) ||b - X c||^2 + alpha ||c||_1 with X = A Psi^T, b = y - A g0,
    alpha = mu / 2m."""
    m, mu = 40, 2.0
    a = np.asarray(operators.gaussian_matrix(jax.random.key(0), m, 64))
    truth = np.zeros(64, np.float32)
    truth[[3, 17, 40]] = [1.5, -1.0, 0.8]
    synth = deviation.synthesis(basis)
    psi_t = np.stack([np.asarray(synth(e.reshape(8, 8, 1))).reshape(-1)
                      for e in np.eye(64, dtype=np.float32)], axis=1)
    g0 = np.full((8, 8, 1), 0.3, np.float32)
    y = a @ (g0.reshape(-1) + psi_t @ truth)
    x64 = (a @ psi_t).astype(np.float64)
    want = Lasso(alpha=mu / (2 * m), fit_intercept=False, tol=1e-10, max_iter=100_000).fit(
        x64, (y - a @ g0.reshape(-1)).astype(np.float64)).coef_
    out = gejax.reconstruct(lambda z: jnp.asarray(g0) + 0.0 * z.sum(), gejax.ga_measure(a),
                            y[None], key=jax.random.key(1), latent_dim=2, num_restarts=1,
                            steps=800, reg=0.0, deviation=gejax.Deviation(mu, basis))
    got = np.asarray(deviation.analysis(basis)(out.nu[0])).reshape(-1)
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose(out.x_hat[0], g0 + out.nu[0], atol=1e-6)


def test_deviation_reaches_what_g_cannot(problem):
    g, measure, y, x = problem
    kw = dict(key=jax.random.key(3), latent_dim=LATENT, steps=400, num_restarts=2)
    plain = gejax.reconstruct(g, measure, y, **kw)
    dev = gejax.reconstruct(g, measure, y, deviation=gejax.Deviation(0.05), **kw)
    err = [float(jnp.mean((out.x_hat - x) ** 2)) for out in (plain, dev)]
    assert err[1] < 0.1 * err[0]


def _use_path(monkeypatch, path):
    rec = sys.modules["gejax.reconstruct"]
    monkeypatch.setattr(rec, "_schedule", lambda b, r, mesh: (
        min(b, max(1, solver.CPU_SLOT_ROWS // r)), 1) if path == "chunked"
        else (b, solver.CPU_CHUNK))


@pytest.mark.parametrize("tol", [0.0, 1e-2])
def test_every_path_gives_the_same_answer(problem, monkeypatch, tol):
    """Host windows a few images at a time, every image at once, inside the caller's jit,
    and each image alone, with per-image operators (a mask each) and the early stop."""
    g, _, _, x = problem
    masks = jax.random.bernoulli(jax.random.key(5), 0.6, x.shape).astype(jnp.float32)
    measure = Partial(operators.apply_mask)
    y = masks * x
    keys = jax.random.split(jax.random.key(6), len(x))
    kw = dict(latent_dim=LATENT, steps=120, num_restarts=2, tol=tol,
              deviation=gejax.Deviation(0.02, "haar"))
    outs = []
    for path in ("chunked", "scan"):
        _use_path(monkeypatch, path)
        outs.append(gejax.reconstruct(g, measure, y, key=keys, measure_params=masks, **kw))
    outs.append(jax.jit(lambda y, m: gejax.reconstruct(g, measure, y, key=keys,
                                                       measure_params=m, **kw))(y, masks))
    alone = [gejax.reconstruct(g, measure, y[i:i + 1], key=keys[i:i + 1],
                               measure_params=masks[i:i + 1], **kw) for i in range(len(x))]
    outs.append(gejax.Reconstruction(*(np.concatenate(a) for a in zip(*alone, strict=True))))
    assert np.abs(np.asarray(outs[0].nu)).max() > 1e-3  # the deviation did act
    if tol:
        assert np.asarray(outs[0].steps_run).min() < 120  # and so did the early stop
    for other in outs[1:]:
        np.testing.assert_array_equal(other.steps_run, outs[0].steps_run)
        np.testing.assert_allclose(other.x_hat, outs[0].x_hat, atol=1e-4)
        np.testing.assert_allclose(other.nu, outs[0].nu, atol=1e-4)


def test_bad_deviation_is_refused(problem):
    g, measure, y, _ = problem
    kw = dict(key=jax.random.key(0), latent_dim=LATENT, steps=1)
    with pytest.raises(TypeError, match="Deviation"):
        gejax.reconstruct(g, measure, y, deviation=0.1, **kw)
    with pytest.raises(ValueError, match="basis"):
        gejax.reconstruct(g, measure, y, deviation=gejax.Deviation(0.1, "fourier"), **kw)
    with pytest.raises(ValueError, match="mu"):
        gejax.reconstruct(g, measure, y, deviation=gejax.Deviation(-1.0), **kw)


def test_a_deviation_is_chosen_only_where_it_wins_significantly(tmp_path):
    from gejax.experiments import deviation as rows
    from gejax.experiments.solve import SolverConfig

    rng = np.random.default_rng(0)
    base = rng.uniform(1, 2, 32)
    steady = {(3.0, "dct"): 0.8 * base}  # 20% lower on every image
    e = rng.normal(0, 0.5, 32)
    noisy = {(3.0, "dct"): base + e - e.mean() - 0.05}  # lower in the mean, by chance

    def scorer(table):
        return lambda dev: table.get((dev.mu, dev.basis), base + 0.1) if dev else base

    got = rows.tuned(tmp_path, "cs_m4/ga", "ga_dev", scorer(steady), "train", SolverConfig(),
                     log=lambda *_: None)
    assert (got["mu"], got["basis"]) == (3.0, "dct")
    assert rows.of(got) == gejax.Deviation(3.0, "dct")
    got = rows.tuned(tmp_path, "cs_m5/ga", "ga_dev", scorer(noisy), "train", SolverConfig(),
                     log=lambda *_: None)
    mu, _, best, _ = min(got["grid"], key=lambda row: row[2])
    assert mu == 3.0 and best < got["grid"][0][2]  # the lowest mean, but not by enough
    assert got["mu"] is None and rows.of(got) is None
    # Saved, and read back under the same settings without scoring again.
    assert rows.tuned(tmp_path, "cs_m4/ga", "ga_dev", None, "train", SolverConfig())["mu"] == 3.0


def test_the_shipped_choices_are_not_overwritten_by_other_settings():
    from gejax import workdir
    from gejax.experiments import deviation as rows
    from gejax.experiments.solve import SolverConfig

    path = rows.Path(workdir.default_workdir(), rows.FILE)
    before = path.read_text()
    got = rows.tuned(workdir.default_workdir(), "cs_m128/ga", "ga_dev",
                     lambda dev: np.ones(4) * (0.5 if dev else 1.0), "train",
                     SolverConfig(steps=3), log=lambda *_: None)
    assert got["mu"] is not None and got["solver"]["steps"] == 3
    assert path.read_text() == before


def test_the_shipped_choices_hold_for_the_default_settings():
    """The main command and evaluate.restore read them, and choose nothing anew."""
    from gejax import workdir
    from gejax.experiments import deviation as rows
    from gejax.experiments.solve import SolverConfig

    saved = json.loads(rows.Path(workdir.default_workdir(), rows.FILE).read_text())
    assert set(saved) == {"cs_m128/ga", "cs_m128/ge1", "denoise/ge1", "deblur/ge1",
                          "superres/ge1", "inpaint_block/ge1", "inpaint_lines/ge1"}
    default = {k: v for k, v in dataclasses.asdict(SolverConfig()).items() if k != "batch_size"}
    for record in saved.values():
        assert record["solver"] == default
