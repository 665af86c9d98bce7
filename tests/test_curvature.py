"""Curvature operators and algorithms against dense float64 matrices on tiny networks."""

import copy
import math

import pytest
import torch
from torch.autograd.functional import hessian, jacobian

from lossatlas.curvature import (
    CurvatureSettings,
    GaussNewtonOperator,
    HVP_MODES,
    HessianOperator,
    MatrixOperator,
    ResidualOperator,
    gradient_overlap,
    hessian_directions,
    hutchinson_trace,
    hutchpp_trace,
    hvp_mode_for,
    lanczos,
    loss_gradient,
    measure_curvature,
    power_iteration,
    seeded_subset,
    spectral_density,
    trace_to_frobenius_ratio,
)
from lossatlas.functional import FunctionalModel
from lossatlas.landscape import line_points
from lossatlas.models import build_model
from lossatlas.stats import count_outliers

CASES = {
    "mlp": dict(name="mlp", norm="none", bn_mode="eval"),
    "mlp-bn-eval": dict(name="mlp", norm="batch", bn_mode="eval"),
    "mlp-bn-batch": dict(name="mlp", norm="batch", bn_mode="batch"),
    "cnn1d": dict(name="cnn1d", norm="none", bn_mode="eval"),
}


def tiny_problem(name="mlp", norm="none", bn_mode="eval", loss="cross_entropy", train_steps=0):
    """A float64 network of ~130 parameters, 64 random samples with 4 classes, θ at init or after a
    few full-batch Adam steps; BN running statistics taken from one pass over the data."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if name == "mlp":
        model = build_model("mlp", (10,), 4, width=8, depth=1, norm=norm)
        x = torch.randn(64, 10, generator=g)
    else:
        model = build_model("cnn1d", (1, 16), 4, width=3, norm=norm)
        x = torch.randn(64, 1, 16, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    model, x = model.double(), x.double()
    if norm == "batch":
        model.train()
        with torch.no_grad():
            model(x)
    fmodel = FunctionalModel(model, bn_mode=bn_mode, loss=loss)
    theta = fmodel.theta0.clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=0.05)
    for _ in range(train_steps):
        optimizer.zero_grad()
        fmodel.loss(theta, x, y).backward()
        optimizer.step()
    return fmodel, theta.detach(), x, y


def dense_hessian(fmodel, theta, x, y):
    return hessian(lambda t: fmodel.loss(t, x, y), theta)


def dense_of(operator):
    """The operator's matrix, from its products with the standard basis."""
    return operator(torch.eye(operator.dim, dtype=torch.float64))


@pytest.fixture(scope="module")
def trained_mlp():
    fmodel, theta, x, y = tiny_problem(train_steps=200)
    return fmodel, theta, x, y, dense_hessian(fmodel, theta, x, y)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["double_backward", "forward_over_reverse"])
def test_hessian_operator_equals_dense_hessian(case, mode):
    fmodel, theta, x, y = tiny_problem(**CASES[case])
    h = dense_hessian(fmodel, theta, x, y)
    vectors = torch.randn(5, fmodel.layout.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    operator = HessianOperator(fmodel, theta, x, y, hvp_mode=mode)
    assert operator.hvp_mode == mode
    assert torch.allclose(operator(vectors), vectors @ h, rtol=0, atol=1e-10)
    assert operator.products == 5
    if CASES[case]["bn_mode"] != "batch":
        chunked = HessianOperator(fmodel, theta, x, y, chunk_size=20, hvp_mode=mode)
        assert torch.allclose(chunked(vectors), vectors @ h, rtol=0, atol=1e-10)


def test_hvp_modes_agree_and_auto_picks_double_backward_on_cpu():
    fmodel, theta, x, y = tiny_problem("cnn1d", "batch", "batch")
    vectors = torch.randn(3, fmodel.layout.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    products = [HessianOperator(fmodel, theta, x, y, chunk_size=16, hvp_mode=mode)(vectors)
                for mode in HVP_MODES[1:]]
    torch.testing.assert_close(products[0], products[1], rtol=1e-12, atol=1e-13)
    assert hvp_mode_for("auto", torch.device("cpu")) == "double_backward"
    assert hvp_mode_for("auto", torch.device("cuda")) == "forward_over_reverse"
    with pytest.raises(ValueError, match="unknown hvp_mode 'reverse'"):
        HessianOperator(fmodel, theta, x, y, hvp_mode="reverse")


def test_chunks_are_batch_norm_batches_in_batch_mode():
    fmodel, theta, x, y = tiny_problem("mlp", "batch", "batch")
    chunk_weighted = sum(dense_hessian(fmodel, theta, x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)) / 4
    vectors = torch.randn(3, fmodel.layout.dim, dtype=torch.float64)
    chunked = HessianOperator(fmodel, theta, x, y, chunk_size=16)
    assert torch.allclose(chunked(vectors), vectors @ chunk_weighted, rtol=0, atol=1e-10)
    assert not torch.allclose(chunk_weighted, dense_hessian(fmodel, theta, x, y), atol=1e-3)


def test_loss_gradient_chunked_equals_full_gradient():
    fmodel, theta, x, y = tiny_problem()
    full = torch.func.grad(fmodel.loss)(theta, x, y)
    assert torch.allclose(loss_gradient(fmodel, theta, x, y, chunk_size=7), full, rtol=0, atol=1e-14)


def test_seeded_subset_is_reproducible_and_ordered():
    x = torch.arange(100.0)[:, None]
    y = torch.arange(100)
    sub_x, sub_y = seeded_subset(x, y, 10, seed=3)
    again_x, _ = seeded_subset(x, y, 10, seed=3)
    assert torch.equal(sub_x, again_x) and torch.equal(sub_x[:, 0].long(), sub_y)
    assert len(set(sub_y.tolist())) == 10 and torch.equal(sub_y, sub_y.sort().values)
    assert not torch.equal(seeded_subset(x, y, 10, seed=4)[1], sub_y)
    with pytest.raises(ValueError, match="subset size n=101"):
        seeded_subset(x, y, 101, seed=0)


def test_operator_rejects_wrong_shapes():
    fmodel, theta, x, y = tiny_problem()
    operator = HessianOperator(fmodel, theta, x, y)
    with pytest.raises(ValueError, match=r"shape \(k, 124\)"):
        operator(torch.zeros(124, dtype=torch.float64))
    with pytest.raises(ValueError, match="theta has shape"):
        HessianOperator(fmodel, theta[:-1], x, y)
    with pytest.raises(ValueError, match="k=125"):
        lanczos(operator, 125)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("case", ["mlp", "mlp-bn-batch"])
def test_gauss_newton_split(case, loss):
    fmodel, theta, x, y = tiny_problem(**CASES[case], loss=loss, train_steps=20)
    h = dense_hessian(fmodel, theta, x, y)
    g = dense_of(GaussNewtonOperator(fmodel, theta, x, y))
    r = dense_of(ResidualOperator(fmodel, theta, x, y))
    jac = jacobian(lambda t: fmodel.logits(t, x), theta, strategy="forward-mode", vectorize=True)  # (N, C, D)
    if loss == "cross_entropy":
        p = torch.softmax(fmodel.logits(theta, x), -1)
        loss_hessian = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    else:
        loss_hessian = 2 * torch.eye(4, dtype=torch.float64).expand(64, 4, 4)
    expected = torch.einsum("ncd,nce,nef->df", jac, loss_hessian, jac) / 64
    assert torch.allclose(g, expected, rtol=0, atol=1e-12)
    assert torch.allclose(g + r, h, rtol=0, atol=1e-10)
    assert torch.allclose(g, g.T, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(g).min() > -1e-12 * torch.linalg.matrix_norm(g, 2)


@pytest.mark.parametrize("case", CASES)
def test_lanczos_extreme_eigenvalues(case):
    fmodel, theta, x, y = tiny_problem(**CASES[case])
    eigenvalues = torch.linalg.eigvalsh(dense_hessian(fmodel, theta, x, y))
    operator = HessianOperator(fmodel, theta, x, y)
    top = lanczos(operator, 3, "largest", tol=1e-6, max_iter=100)
    bottom = lanczos(operator, 3, "smallest", tol=1e-6, max_iter=100)
    assert top.converged and bottom.converged
    assert top.products < fmodel.layout.dim and bottom.products < fmodel.layout.dim
    assert torch.allclose(top.eigenvalues, eigenvalues[-3:].flip(0), rtol=1e-4, atol=0)
    assert torch.allclose(bottom.eigenvalues, eigenvalues[:3], rtol=1e-4, atol=0)
    assert operator.products == top.products + bottom.products


def test_lanczos_repeated_eigenvalues_need_restarts():
    basis = torch.linalg.qr(torch.randn(30, 30, dtype=torch.float64,
                                        generator=torch.Generator().manual_seed(0))).Q
    spectrum = torch.tensor([5.0, 5.0, 5.0, 3.0] + [1.0] * 20 + [0.5 * i for i in range(6)], dtype=torch.float64)
    operator = MatrixOperator(basis @ torch.diag(spectrum) @ basis.T)
    # one Krylov space holds each distinct eigenvalue once: it converges to 5, 3, 2.5, 2
    distinct = lanczos(operator, 4, "largest", tol=1e-10, eigenvectors=True)
    assert torch.allclose(distinct.eigenvalues, torch.tensor([5.0, 3.0, 2.5, 2.0], dtype=torch.float64),
                          rtol=1e-10, atol=0)
    assert distinct.products == 9
    residuals = operator(distinct.eigenvectors) - distinct.eigenvalues[:, None] * distinct.eigenvectors
    assert residuals.norm(dim=1).max() < 1e-8
    # run to the end, the restarts after each breakdown recover the multiplicities
    full = lanczos(operator, 4, "largest", tol=0.0, max_iter=30)
    assert torch.allclose(full.eigenvalues, torch.tensor([5.0, 5.0, 5.0, 3.0], dtype=torch.float64),
                          rtol=1e-10, atol=0)


def test_lanczos_tolerance_is_relative_to_each_eigenvalue_at_both_ends():
    """Outliers (100, 60, 30) over a dense bulk on both sides of 0: with the tolerance relative to
    ‖A‖ the ends of the bulk were marked converged 42% (smallest) and 9% (largest 8) off; relative
    to each |λ| they are resolved, or marked unconverged with residuals that say how far off."""
    basis = torch.linalg.qr(torch.randn(400, 400, dtype=torch.float64,
                                        generator=torch.Generator().manual_seed(0))).Q
    spectrum = torch.cat([torch.tensor([100.0, 60.0, 30.0], dtype=torch.float64),
                          torch.linspace(-0.5, 2.0, 397, dtype=torch.float64)])
    operator = MatrixOperator(basis @ torch.diag(spectrum) @ basis.T)
    ascending = spectrum.sort().values
    for which, k, exact in (("smallest", 5, ascending[:5]), ("largest", 8, ascending.flip(0)[:8])):
        result = lanczos(operator, k, which, tol=1e-3, max_iter=200)
        assert result.converged and result.products < 200
        assert ((result.eigenvalues - exact).abs() / exact.abs()).max() < 1e-3
        distance = (result.eigenvalues[:, None] - spectrum[None, :]).abs().min(1).values
        assert bool((distance <= result.residuals + 1e-12).all())
        short = lanczos(operator, k, which, tol=1e-3, max_iter=30)
        assert not short.converged
        assert bool((short.residuals >= 1e-3 * short.eigenvalues.abs()).any())
        distance = (short.eigenvalues[:, None] - spectrum[None, :]).abs().min(1).values
        assert bool((distance <= short.residuals + 1e-12).all())


def test_power_iteration_largest_magnitude(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    eigenvalues = torch.linalg.eigvalsh(h)
    by_magnitude = eigenvalues[eigenvalues.abs().argsort(descending=True)][:2]
    result = power_iteration(HessianOperator(fmodel, theta, x, y), 2, tol=1e-10, max_iter=2000)
    assert result.converged
    assert torch.allclose(result.eigenvalues, by_magnitude, rtol=1e-4, atol=0)
    dense_vectors = torch.linalg.eigh(h).eigenvectors[:, -2:].flip(1).T
    assert torch.allclose((result.eigenvectors * dense_vectors).sum(1).abs(),
                          torch.ones(2, dtype=torch.float64), atol=1e-4)


def test_power_iteration_stops_on_relative_rayleigh_change():
    operator = MatrixOperator(torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)))
    start_only_top = power_iteration(operator, 1, tol=0.5, max_iter=50)
    assert start_only_top.products < 10 and start_only_top.converged
    capped = power_iteration(operator, 1, tol=1e-300, max_iter=7)
    assert capped.products == 7 and not capped.converged


def test_hutchinson_within_four_standard_errors(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    exact = torch.trace(h).item()
    # variance of vᵀHv for Rademacher v: 2 (‖H‖_F² − Σ H_ii²)
    std_error = math.sqrt(2 * ((h ** 2).sum() - (torch.diagonal(h) ** 2).sum()).item() / 400)
    estimate = hutchinson_trace(HessianOperator(fmodel, theta, x, y), 400, seed=0, batch_size=100)
    assert estimate.products == 400
    assert abs(estimate.estimate - exact) < 4 * std_error
    # 120 products: a sketch of 40 < D directions, so Hutch++ is not exact here
    plus = hutchpp_trace(HessianOperator(fmodel, theta, x, y), 120, seed=0, batch_size=100)
    assert plus.products == 120
    assert abs(plus.estimate - exact) < 4 * std_error


def test_hutchpp_is_exact_at_full_rank_and_beats_hutchinson_on_low_rank():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64, generator=g)).Q
    spectrum = torch.cat([100.0 / torch.arange(1, 11, dtype=torch.float64), torch.full((190,), 0.01,
                                                                                        dtype=torch.float64)])
    operator = MatrixOperator(basis @ torch.diag(spectrum) @ basis.T)
    exact = spectrum.sum().item()
    assert hutchpp_trace(operator, 600).estimate == pytest.approx(exact, rel=1e-12)
    errors_hutchinson = [abs(hutchinson_trace(operator, 45, seed=s).estimate - exact) for s in range(10)]
    errors_hutchpp = [abs(hutchpp_trace(operator, 45, seed=s).estimate - exact) for s in range(10)]
    assert max(errors_hutchpp) < min(errors_hutchinson) or max(errors_hutchpp) < 1e-3 * exact
    assert sum(errors_hutchpp) < 0.1 * sum(errors_hutchinson)


def test_trace_estimator_that_wins_follows_the_spectrum_decay(trained_mlp):
    """Hutch++ spends 2/3 of its m products deflating the top m/3 directions: it wins where they
    hold most of ‖H‖_F² (the trained MLP's outliers) and loses on a flat spectrum (a linear layer
    under the squared error, H ≈ 2 I), where Hutchinson's variance 2(‖H‖_F² − Σ H_ii²)/m is small.
    Relative RMSE over 20 seeds at m = 60 products, on the exact Hessians."""
    fmodel, theta, x, y, h = trained_mlp
    g = torch.Generator().manual_seed(2)
    x_linear = torch.randn(500, 40, dtype=torch.float64, generator=g)
    y_linear = torch.randint(0, 4, (500,), generator=g)
    linear = FunctionalModel(torch.nn.Linear(40, 4).double(), loss="mse")
    flat = dense_of(HessianOperator(linear, linear.theta0, x_linear, y_linear))

    def tail_share_and_errors(matrix):
        squares = (torch.linalg.eigvalsh(matrix) ** 2).sort(descending=True).values
        exact = torch.trace(matrix).item()
        errors = [math.sqrt(sum((estimator(MatrixOperator(matrix), 60, seed=s).estimate - exact) ** 2
                                for s in range(20)) / 20) / abs(exact)
                  for estimator in (hutchinson_trace, hutchpp_trace)]
        return (squares[20:].sum() / squares.sum()).item(), errors

    tail, (hutchinson, hutchpp) = tail_share_and_errors(h)
    assert tail < 0.05 and hutchpp < 0.5 * hutchinson
    tail, (hutchinson, hutchpp) = tail_share_and_errors(flat)
    assert tail > 0.7 and hutchinson < 0.5 * hutchpp


def test_trace_to_frobenius_ratio(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    result = trace_to_frobenius_ratio(HessianOperator(fmodel, theta, x, y), 400, seed=0, batch_size=100)
    exact_trace, exact_frobenius = torch.trace(h).item(), torch.linalg.matrix_norm(h).item()
    assert result.products == 400
    assert result.frobenius == pytest.approx(exact_frobenius, rel=0.1)
    assert result.ratio == pytest.approx(exact_trace / exact_frobenius, rel=0.1)
    diagonal = MatrixOperator(torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)))
    assert trace_to_frobenius_ratio(diagonal, 5).ratio == pytest.approx(4 / math.sqrt(14), rel=1e-12)


def test_spectral_density_integrates_to_one_and_sits_on_the_spectrum(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    eigenvalues = torch.linalg.eigvalsh(h)
    operator = HessianOperator(fmodel, theta, x, y)
    result = spectral_density(operator, num_vectors=8, steps=40, broadening=0.01, seed=0)
    assert result.products == 8 * 40 and operator.products == 320
    assert torch.trapezoid(result.density, result.grid).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(result.weights.sum(1), torch.ones(8, dtype=torch.float64), atol=1e-12)
    assert result.nodes.max().item() == pytest.approx(eigenvalues[-1].item(), rel=1e-6)
    # Ritz values interlace: every node lies inside the spectrum
    assert eigenvalues[0] - 1e-12 <= result.nodes.min() and result.nodes.max() <= eigenvalues[-1] + 1e-12
    # Gauss quadrature is exact for t ↦ t: the density's mean is the Hutchinson estimate of Tr(H)/D
    # from the same Rademacher vectors; the mass above the 5th eigenvalue ≈ 5/D
    mean = torch.trapezoid(result.density * result.grid, result.grid).item()
    hutchinson = hutchinson_trace(HessianOperator(fmodel, theta, x, y), 8, seed=0).estimate
    assert mean == pytest.approx(hutchinson / len(eigenvalues), rel=1e-6)
    cut = (eigenvalues[-5] + eigenvalues[-6]).item() / 2
    upper = result.grid >= cut
    outlier_mass = torch.trapezoid(result.density[upper], result.grid[upper]).item()
    # standard deviation of that mass over 8 Rademacher starts ≈ √(2·5)/D/√8 ≈ 0.009
    assert outlier_mass == pytest.approx(5 / len(eigenvalues), abs=0.03)


def test_default_density_broadening_keeps_mass_fractions_of_a_dense_spectrum():
    """A tiny MLP with more samples than parameters (dense spectrum, 21% negative): with the
    default broadening the density's mass below 0 and below λ_max/10 are within 0.02 of the exact
    spectrum's (10 starts, 80 steps; their sampling error alone is ≈ 0.015 at D = 184); 1% of the
    span, the former default, spilled 0.07 across 0."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (512,), generator=g)
    fmodel = FunctionalModel(build_model("mlp", (10,), 4, width=12, depth=1).double())
    theta = fmodel.theta0.clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=0.01)
    for _ in range(30):
        optimizer.zero_grad()
        fmodel.loss(theta, x, y).backward()
        optimizer.step()
    operator = HessianOperator(fmodel, theta.detach(), x, y)
    eigenvalues = torch.linalg.eigvalsh(dense_of(operator))
    cuts = [0.0, 0.1 * eigenvalues[-1].item()]

    def mass_errors(density):
        return [abs(torch.trapezoid(density.density[density.grid < cut],
                                    density.grid[density.grid < cut]).item()
                    - (eigenvalues < cut).double().mean().item()) for cut in cuts]

    assert (eigenvalues < 0).double().mean().item() == pytest.approx(0.21, abs=0.02)
    assert max(mass_errors(spectral_density(operator))) < 0.02
    with pytest.raises(ValueError, match="need grid_size >= 3345"):
        spectral_density(operator, grid_size=1000)


def test_spectral_density_full_krylov_space_is_exact_quadrature():
    spectrum = torch.tensor([-1.0, 0.0, 0.5, 2.0, 4.0], dtype=torch.float64)
    result = spectral_density(MatrixOperator(torch.diag(spectrum)), num_vectors=3, steps=5)
    assert torch.allclose(result.nodes, spectrum.expand(3, 5), atol=1e-12)
    # Rademacher starts on a diagonal matrix put weight 1/D on every eigenvalue
    assert torch.allclose(result.weights, torch.full((3, 5), 0.2, dtype=torch.float64), atol=1e-12)


def test_gradient_overlap(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    gradient = loss_gradient(fmodel, theta, x, y)
    vectors = torch.linalg.eigh(h).eigenvectors.flip(1).T
    assert gradient_overlap(gradient, vectors) == pytest.approx(1.0, abs=1e-12)
    top = vectors[:4]
    expected = (top.T @ (top @ gradient)).norm().item() ** 2 / gradient.norm().item() ** 2
    assert gradient_overlap(gradient, top) == pytest.approx(expected, rel=1e-12)
    found = lanczos(HessianOperator(fmodel, theta, x, y), 4, tol=1e-10, eigenvectors=True)
    assert gradient_overlap(gradient, found.eigenvectors) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="gradient is zero"):
        gradient_overlap(torch.zeros_like(gradient), top)


def test_measure_curvature_matches_dense_spectra(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    settings = CurvatureSettings(top_k=5, bottom_k=2, tol=1e-10, max_iter=fmodel.layout.dim,
                                 trace_products=fmodel.layout.dim * 3, density_vectors=4,
                                 density_steps=30, density_broadening=0.01, density_grid=200,
                                 chunk_size=20, eigenvectors=True)
    result = measure_curvature(fmodel, theta, x, y, settings)
    eigenvalues = torch.linalg.eigvalsh(h)
    g = dense_of(GaussNewtonOperator(fmodel, theta, x, y))
    arrays, attrs = result.arrays, result.attrs
    assert torch.allclose(arrays["hessian_top"], eigenvalues.flip(0)[:5], atol=1e-8)
    assert torch.allclose(arrays["hessian_bottom"], eigenvalues[:2], atol=1e-8)
    assert arrays["hessian_bottom_residuals"].shape == (2,)
    assert bool((arrays["hessian_top_residuals"] < 1e-10 * arrays["hessian_top"].abs()).all())
    assert torch.allclose(arrays["gauss_newton_top"], torch.linalg.eigvalsh(g).flip(0)[:5], atol=1e-8)
    assert attrs["lambda_max"] == pytest.approx(eigenvalues[-1].item(), rel=1e-10)
    # Hutch++ with 3D products sketches the whole range: exact
    assert attrs["trace"] == pytest.approx(torch.trace(h).item(), rel=1e-8)
    assert attrs["loss"] == pytest.approx(fmodel.loss(theta, x, y).item(), rel=1e-12)
    gradient = loss_gradient(fmodel, theta, x, y)
    assert attrs["gradient_norm"] == pytest.approx(gradient.norm().item(), rel=1e-12)
    vectors = torch.linalg.eigh(h).eigenvectors.flip(1).T
    expected = [gradient_overlap(gradient, vectors[:k]) for k in range(1, 6)]
    assert arrays["gradient_overlap"].tolist() == pytest.approx(expected, rel=1e-6)
    assert arrays["hessian_eigenvectors"].shape == (5, fmodel.layout.dim)
    assert torch.trapezoid(arrays["density"], arrays["density_grid"]).item() == pytest.approx(1, abs=1e-6)
    assert attrs["slq_density_products"] == 4 * 30
    assert attrs["hutchpp_trace_products"] == settings.trace_products
    assert attrs["hessian_lanczos_converged"] and attrs["gauss_newton_lanczos_converged"]

    assert (attrs["chunk_size"], attrs["bn_mode"], attrs["n_samples"]) == (20, "eval", 64)
    without = measure_curvature(fmodel, theta, x, y, CurvatureSettings(top_k=3, density_steps=10))
    assert "hessian_bottom" not in without.arrays and "hessian_eigenvectors" not in without.arrays
    with pytest.raises(ValueError, match="top_k=1000"):
        measure_curvature(fmodel, theta, x, y, CurvatureSettings(top_k=1000))


def test_count_outliers_splits_at_largest_log_gap():
    assert count_outliers([50.0, 40.0, 30.0, 2.0, 1.5, 1.0, 0.8]) == 3
    assert count_outliers(torch.tensor([9.0, 1.0, 0.9, 0.5])) == 1
    assert count_outliers([1.0, 0.9, 0.8, 0.01]) == 3
    # non-positive eigenvalues are never outliers
    assert count_outliers([5.0, 4.0, 0.0, -3.0]) == 1
    assert count_outliers([2.0, -1.0]) == 1
    assert count_outliers([-2.0, -1.0]) == 0


def test_hessian_directions_profile_has_eigenvalue_curvature(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    result = hessian_directions(fmodel, theta, x, y, k=2, tol=1e-10)
    directions = result.eigenvectors
    assert directions.shape == (2, fmodel.layout.dim)
    assert torch.allclose(directions @ directions.T, torch.eye(2, dtype=torch.float64), atol=1e-8)
    assert (directions.gather(1, directions.abs().argmax(1, keepdim=True)) > 0).all()
    eigenvalues = torch.linalg.eigvalsh(h).flip(0)
    # small enough that no ReLU of the 64 samples switches on the segment (a kink is not curvature)
    step = 1e-4
    for direction, eigenvalue in zip(directions, eigenvalues[:2]):
        losses = [fmodel.loss(point, x, y).item()
                  for point in line_points(theta, direction, [-step, 0.0, step])]
        curvature = (losses[0] - 2 * losses[1] + losses[2]) / step ** 2
        assert curvature == pytest.approx(eigenvalue.item(), rel=1e-5)


def test_measure_curvature_without_spectrum_skips_gauss_newton_and_density(trained_mlp):
    fmodel, theta, x, y, h = trained_mlp
    settings = CurvatureSettings(top_k=3, tol=1e-10, max_iter=fmodel.layout.dim, spectrum=False,
                                 trace_estimator="hutchinson", trace_products=400)
    result = measure_curvature(fmodel, theta, x, y, settings)
    assert set(result.arrays) == {"hessian_top", "hessian_top_residuals", "gradient_overlap"}
    assert result.attrs["hutchinson_trace_products"] == 400
    assert result.attrs["trace"] == pytest.approx(
        hutchinson_trace(HessianOperator(fmodel, theta, x, y), 400).estimate, rel=1e-12)
    with pytest.raises(ValueError, match="unknown trace_estimator 'exact'"):
        measure_curvature(fmodel, theta, x, y, CurvatureSettings(trace_estimator="exact"))
    assert "slq_density_products" not in result.attrs
    assert "gauss_newton_lanczos_products" not in result.attrs
    assert result.attrs["lambda_max"] == pytest.approx(torch.linalg.eigvalsh(h)[-1].item(), rel=1e-10)


def test_float32_residuals_bound_the_distance_to_the_exact_spectrum():
    """A float32 Hessian operator: every returned eigenvalue lies within its residual of an
    eigenvalue of the dense float64 Hessian at the same θ (before the rounding allowance the
    residuals were ~1e-25 |λ| against errors ~1e-7 |λ|), and the file records the HVP mode."""
    fmodel64, theta64, x, y = tiny_problem(train_steps=200)
    model = build_model("mlp", (10,), 4, width=8, depth=1)
    fmodel = FunctionalModel(model)
    theta = theta64.float()
    exact = torch.linalg.eigvalsh(dense_hessian(fmodel64, theta.double(), x, y))
    result = lanczos(HessianOperator(fmodel, theta, x.float(), y), 5, tol=1e-6,
                     max_iter=fmodel.layout.dim)
    distance = (result.eigenvalues[:, None] - exact[None, :]).abs().min(1).values
    assert distance.max() > 1e-9 * exact.abs().max()
    assert bool((distance <= result.residuals).all())
    measured = measure_curvature(fmodel, theta, x.float(), y,
                                 CurvatureSettings(top_k=2, density_steps=10, spectrum=False))
    assert measured.attrs["hvp_mode"] == "double_backward"


def test_a_float32_batch_norm_model_takes_a_float64_theta():
    """Its running statistics are used in float64: the loss equals the float64 model's with the
    statistics rounded to float32, and Hessian products run."""
    fmodel64, theta, x, y = tiny_problem("mlp", "batch", "eval")
    fmodel = FunctionalModel(copy.deepcopy(fmodel64.module).float())
    rounded = {name: b.float().double() if b.is_floating_point() else b
               for name, b in fmodel64.buffers.items()}
    assert fmodel.loss(theta, x, y).item() == fmodel64.loss(theta, x, y, rounded).item()
    products = HessianOperator(fmodel, theta, x, y)(torch.eye(fmodel.layout.dim,
                                                              dtype=torch.float64)[:2])
    assert products.dtype == torch.float64 and products.shape == (2, fmodel.layout.dim)
