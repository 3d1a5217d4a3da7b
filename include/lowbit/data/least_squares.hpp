// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief least_squares_problem: a synthetic linear regression with a known optimum, for the
/// convex-theory experiments (convergence of quantized SGD to \f$ f^\star \f$).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "lowbit/data/detail/gaussian_design.hpp"
#include "lowbit/data/detail/small_linalg.hpp"

namespace lowbit::data {

/// @brief Options of least_squares_problem.
struct least_squares_options {
    std::size_t samples = 1000;  ///< n, rows of A; at least `dim`.
    std::size_t dim = 10;        ///< d, columns of A and entries of w.
    double noise = 0.1;          ///< Standard deviation of the Gaussian noise added to b.
    std::uint64_t seed = 0;      ///< Seeds the std::mt19937_64 all the draws come from.
    double condition = 1.0;      ///< Approximate condition number of A (>= 1); see gaussian columns below.
};

/// @brief The least-squares problem
/// \f[ f(w) = \frac{1}{2n} \lVert A w - b \rVert^2 = \frac{1}{n} \sum_{i=1}^{n} \tfrac12 (a_i^\top w - b_i)^2,
///     \qquad b = A w^\star + \sigma \varepsilon, \f]
/// with A (n x d) and \f$ w^\star \f$ (d) standard normal and \f$ \varepsilon \f$ standard normal noise.
///
/// Column j of A is scaled by \f$ \kappa^{-j/(d-1)} \f$ (\f$ \kappa \f$ = `condition`), so that
/// cond(A) is close to \f$ \kappa \f$ and that of the Hessian \f$ H = A^\top A / n \f$ close to
/// \f$ \kappa^2 \f$; smoothness() and strong_convexity() give H's exact extreme eigenvalues.
/// The exact minimizer (the least-squares solution, not \f$ w^\star \f$ unless noise is 0) is
/// computed at construction from the normal equations by Cholesky: O(n d^2 + d^3), meant for d up
/// to a few hundred.
///
/// Everything is drawn from one `std::mt19937_64{seed}` in the order A (row by row), \f$ w^\star \f$,
/// \f$ \varepsilon \f$. The engine is specified by the standard, but std::normal_distribution is
/// not: the problem for a given seed is reproducible with one standard library (libstdc++ here)
/// and may differ under another (libc++, MSVC).
/// @code
/// lowbit::data::least_squares_problem p{{.samples = 500, .dim = 20, .noise = 0.1, .seed = 7}};
/// xt::xtensor<double, 1> w = xt::zeros<double>({p.dim()});
/// for (int step = 0; step < 100; ++step) { w -= (1.0 / p.smoothness()) * p.gradient(w); }
/// double gap = p.loss(w) - p.optimum_loss();
/// @endcode
class least_squares_problem {
public:
    /// @brief Draws the problem described by @p options.
    /// @throws std::invalid_argument when `dim` is 0, `samples < dim`, `noise < 0` or `condition < 1`.
    explicit least_squares_problem(least_squares_options const& options) : options_{options} {
        detail::check_design_options("least_squares_problem", options.samples, options.dim, options.condition);
        if (!(options.noise >= 0.0)) {
            throw std::invalid_argument{"lowbit: least_squares_problem: noise must be >= 0"};
        }
        std::size_t const n = options.samples;
        std::size_t const d = options.dim;
        all_.resize(n);
        std::iota(all_.begin(), all_.end(), std::size_t{0});
        std::mt19937_64 rng{options.seed};
        a_ = detail::gaussian_design(rng, n, d, options.condition);
        planted_ = detail::gaussian_vector(rng, d);
        b_ = xt::xtensor<double, 1>::from_shape({n});
        std::normal_distribution<double> normal{0.0, 1.0};
        for (std::size_t i = 0; i < n; ++i) {
            b_(i) = row_dot(i, planted_) + options.noise * normal(rng);
        }

        // Normal equations (A^T A / n) x = A^T b / n.
        auto hessian = detail::gram(a_.data(), n, d, 1.0 / static_cast<double>(n));
        std::vector<double> rhs(d, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < d; ++j) {
                rhs[j] += a_(i, j) * b_(i);
            }
        }
        for (auto& v : rhs) {
            v /= static_cast<double>(n);
        }
        auto const x = detail::cholesky_solve(hessian, rhs, d);
        minimizer_ = xt::xtensor<double, 1>::from_shape({d});
        std::copy(x.begin(), x.end(), minimizer_.begin());
        optimum_loss_ = loss(minimizer_);
        auto const eig = detail::symmetric_eigenvalues(std::move(hessian), d);
        mu_ = eig.front();
        l_ = eig.back();
    }

    /// @brief The options the problem was drawn with.
    [[nodiscard]] least_squares_options const& options() const noexcept { return options_; }
    /// @brief n, the number of samples (rows of A).
    [[nodiscard]] std::size_t samples() const noexcept { return options_.samples; }
    /// @brief d, the number of weights.
    [[nodiscard]] std::size_t dim() const noexcept { return options_.dim; }
    /// @brief A, n x d.
    [[nodiscard]] xt::xtensor<double, 2> const& features() const noexcept { return a_; }
    /// @brief b, n targets.
    [[nodiscard]] xt::xtensor<double, 1> const& targets() const noexcept { return b_; }
    /// @brief \f$ w^\star \f$, the weights b was generated from (not the minimizer when noise > 0).
    [[nodiscard]] xt::xtensor<double, 1> const& planted() const noexcept { return planted_; }
    /// @brief The exact least-squares solution \f$ (A^\top A)^{-1} A^\top b \f$.
    [[nodiscard]] xt::xtensor<double, 1> const& minimizer() const noexcept { return minimizer_; }
    /// @brief \f$ f^\star = f(\text{minimizer()}) \f$.
    [[nodiscard]] double optimum_loss() const noexcept { return optimum_loss_; }
    /// @brief L, the largest eigenvalue of the Hessian \f$ A^\top A / n \f$ (gradient Lipschitz constant).
    [[nodiscard]] double smoothness() const noexcept { return l_; }
    /// @brief \f$ \mu \f$, the smallest eigenvalue of the Hessian \f$ A^\top A / n \f$.
    [[nodiscard]] double strong_convexity() const noexcept { return mu_; }

    /// @brief \f$ f(w) \f$, the mean over all samples.
    /// @throws std::invalid_argument when @p w does not have dim() entries.
    [[nodiscard]] double loss(xt::xtensor<double, 1> const& w) const { return loss(w, all_samples()); }

    /// @brief The mean of \f$ \tfrac12 (a_i^\top w - b_i)^2 \f$ over the samples @p batch.
    /// @throws std::invalid_argument for a wrong-sized @p w or an empty batch, std::out_of_range
    ///         for an index >= samples().
    [[nodiscard]] double loss(xt::xtensor<double, 1> const& w, std::span<std::size_t const> batch) const {
        detail::check_weights("least_squares_problem", w, dim());
        detail::check_batch("least_squares_problem", batch, samples());
        double sum = 0.0;
        for (auto i : batch) {
            double const r = row_dot(i, w) - b_(i);
            sum += 0.5 * r * r;
        }
        return sum / static_cast<double>(batch.size());
    }

    /// @brief \f$ \nabla f(w) = A^\top (A w - b) / n \f$.
    /// @throws std::invalid_argument when @p w does not have dim() entries.
    [[nodiscard]] xt::xtensor<double, 1> gradient(xt::xtensor<double, 1> const& w) const {
        return gradient(w, all_samples());
    }

    /// @brief The minibatch gradient \f$ \frac{1}{|B|} \sum_{i \in B} a_i (a_i^\top w - b_i) \f$,
    /// an unbiased estimate of gradient(w) when @p batch is drawn uniformly.
    /// @throws as loss(w, batch).
    [[nodiscard]] xt::xtensor<double, 1> gradient(xt::xtensor<double, 1> const& w,
                                                  std::span<std::size_t const> batch) const {
        detail::check_weights("least_squares_problem", w, dim());
        detail::check_batch("least_squares_problem", batch, samples());
        std::size_t const d = dim();
        xt::xtensor<double, 1> g = xt::zeros<double>({d});
        for (auto i : batch) {
            double const r = row_dot(i, w) - b_(i);
            double const* row = a_.data() + i * d;
            for (std::size_t j = 0; j < d; ++j) {
                g(j) += r * row[j];
            }
        }
        g /= static_cast<double>(batch.size());
        return g;
    }

private:
    [[nodiscard]] double row_dot(std::size_t i, xt::xtensor<double, 1> const& w) const {
        double const* row = a_.data() + i * dim();
        double s = 0.0;
        for (std::size_t j = 0; j < dim(); ++j) {
            s += row[j] * w(j);
        }
        return s;
    }

    [[nodiscard]] std::span<std::size_t const> all_samples() const noexcept { return all_; }

    least_squares_options options_;
    xt::xtensor<double, 2> a_;
    xt::xtensor<double, 1> b_;
    xt::xtensor<double, 1> planted_;
    xt::xtensor<double, 1> minimizer_;
    std::vector<std::size_t> all_;  // 0 .. n-1: the batch of the full loss and gradient
    double optimum_loss_ = 0.0;
    double mu_ = 0.0;
    double l_ = 0.0;
};

} // namespace lowbit::data
