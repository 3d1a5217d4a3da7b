// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief logistic_regression_problem: a synthetic binary classification with labels drawn from a
/// planted logistic model, for the convex-theory experiments.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "lowbit/data/detail/gaussian_design.hpp"
#include "lowbit/data/detail/small_linalg.hpp"

namespace lowbit::data {

/// @brief Options of logistic_regression_problem.
struct logistic_regression_options {
    std::size_t samples = 1000;  ///< n, rows of A; at least `dim`.
    std::size_t dim = 10;        ///< d, columns of A and entries of w.
    double l2 = 0.0;             ///< \f$ \lambda \f$, weight of the ridge term (> 0 makes f strongly convex).
    std::uint64_t seed = 0;      ///< Seeds the std::mt19937_64 all the draws come from.
    double condition = 1.0;      ///< Approximate condition number of A (>= 1), as in least_squares_problem.
};

/// @brief The (optionally ridge-regularized) logistic regression problem
/// \f[ f(w) = \frac{1}{n} \sum_{i=1}^{n} \log\bigl(1 + e^{-y_i a_i^\top w}\bigr) + \frac{\lambda}{2} \lVert w \rVert^2,
///     \qquad P(y_i = +1) = \sigma(a_i^\top w^\star) = \frac{1}{1 + e^{-a_i^\top w^\star}}, \f]
/// with A (n x d) and \f$ w^\star \f$ standard normal, columns of A scaled as in
/// least_squares_problem, and labels \f$ y_i \in \{-1, +1\} \f$ drawn from the planted model, so
/// that the data are not separable and a finite minimizer exists (for n well above d) even with
/// \f$ \lambda = 0 \f$. There is no closed-form minimizer: only loss and gradient.
///
/// Draws come from one `std::mt19937_64{seed}` in the order A (row by row), \f$ w^\star \f$, then
/// one uniform per label (53 bits of one engine output, computed here). std::normal_distribution
/// is implementation-defined, so a seed reproduces the same problem with one standard library only.
/// @code
/// lowbit::data::logistic_regression_problem p{{.samples = 2000, .dim = 10, .l2 = 1e-3, .seed = 1}};
/// xt::xtensor<double, 1> w = xt::zeros<double>({p.dim()});
/// w -= (1.0 / p.smoothness()) * p.gradient(w);
/// @endcode
class logistic_regression_problem {
public:
    /// @brief Draws the problem described by @p options.
    /// @throws std::invalid_argument when `dim` is 0, `samples < dim`, `l2 < 0` or `condition < 1`.
    explicit logistic_regression_problem(logistic_regression_options const& options) : options_{options} {
        detail::check_design_options("logistic_regression_problem", options.samples, options.dim, options.condition);
        if (!(options.l2 >= 0.0)) {
            throw std::invalid_argument{"lowbit: logistic_regression_problem: l2 must be >= 0"};
        }
        std::size_t const n = options.samples;
        std::size_t const d = options.dim;
        std::mt19937_64 rng{options.seed};
        a_ = detail::gaussian_design(rng, n, d, options.condition);
        planted_ = detail::gaussian_vector(rng, d);
        y_ = xt::xtensor<double, 1>::from_shape({n});
        for (std::size_t i = 0; i < n; ++i) {
            double const u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // uniform in [0, 1)
            y_(i) = u < sigmoid(row_dot(i, planted_)) ? 1.0 : -1.0;
        }
        // The logistic loss has curvature at most 1/4: L = lambda_max(A^T A / n) / 4 + l2.
        auto const eig = detail::symmetric_eigenvalues(detail::gram(a_.data(), n, d, 1.0 / static_cast<double>(n)), d);
        l_ = eig.back() / 4.0 + options.l2;
        all_.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            all_[i] = i;
        }
    }

    /// @brief The options the problem was drawn with.
    [[nodiscard]] logistic_regression_options const& options() const noexcept { return options_; }
    /// @brief n, the number of samples.
    [[nodiscard]] std::size_t samples() const noexcept { return options_.samples; }
    /// @brief d, the number of weights.
    [[nodiscard]] std::size_t dim() const noexcept { return options_.dim; }
    /// @brief A, n x d.
    [[nodiscard]] xt::xtensor<double, 2> const& features() const noexcept { return a_; }
    /// @brief The labels, each -1 or +1.
    [[nodiscard]] xt::xtensor<double, 1> const& labels() const noexcept { return y_; }
    /// @brief \f$ w^\star \f$, the weights the labels were drawn from (not the minimizer).
    [[nodiscard]] xt::xtensor<double, 1> const& planted() const noexcept { return planted_; }
    /// @brief L, an upper bound on the Hessian's eigenvalues: \f$ \lambda_{\max}(A^\top A / n) / 4 + \lambda \f$.
    [[nodiscard]] double smoothness() const noexcept { return l_; }
    /// @brief \f$ \mu = \lambda \f$ (`l2`), the global strong-convexity constant (0 without ridge).
    [[nodiscard]] double strong_convexity() const noexcept { return options_.l2; }

    /// @brief \f$ f(w) \f$ over all samples.
    /// @throws std::invalid_argument when @p w does not have dim() entries.
    [[nodiscard]] double loss(xt::xtensor<double, 1> const& w) const { return loss(w, all_); }

    /// @brief The mean logistic loss over the samples @p batch, plus the ridge term.
    /// @throws std::invalid_argument for a wrong-sized @p w or an empty batch, std::out_of_range
    ///         for an index >= samples().
    [[nodiscard]] double loss(xt::xtensor<double, 1> const& w, std::span<std::size_t const> batch) const {
        detail::check_weights("logistic_regression_problem", w, dim());
        detail::check_batch("logistic_regression_problem", batch, samples());
        double sum = 0.0;
        for (auto i : batch) {
            sum += softplus(-y_(i) * row_dot(i, w));
        }
        return sum / static_cast<double>(batch.size()) + 0.5 * options_.l2 * squared_norm(w);
    }

    /// @brief \f$ \nabla f(w) = -\frac{1}{n} \sum_i y_i \sigma(-y_i a_i^\top w) a_i + \lambda w \f$.
    /// @throws std::invalid_argument when @p w does not have dim() entries.
    [[nodiscard]] xt::xtensor<double, 1> gradient(xt::xtensor<double, 1> const& w) const { return gradient(w, all_); }

    /// @brief The minibatch gradient: the mean over @p batch of the per-sample gradients, plus \f$ \lambda w \f$.
    /// @throws as loss(w, batch).
    [[nodiscard]] xt::xtensor<double, 1> gradient(xt::xtensor<double, 1> const& w,
                                                  std::span<std::size_t const> batch) const {
        detail::check_weights("logistic_regression_problem", w, dim());
        detail::check_batch("logistic_regression_problem", batch, samples());
        std::size_t const d = dim();
        xt::xtensor<double, 1> g = xt::zeros<double>({d});
        for (auto i : batch) {
            double const coef = -y_(i) * sigmoid(-y_(i) * row_dot(i, w));
            double const* row = a_.data() + i * d;
            for (std::size_t j = 0; j < d; ++j) {
                g(j) += coef * row[j];
            }
        }
        double const inv = 1.0 / static_cast<double>(batch.size());
        for (std::size_t j = 0; j < d; ++j) {
            g(j) = g(j) * inv + options_.l2 * w(j);
        }
        return g;
    }

    /// @brief The fraction of samples whose label is the sign of \f$ a_i^\top w \f$ (0 counted as +1).
    /// @throws std::invalid_argument when @p w does not have dim() entries.
    [[nodiscard]] double accuracy(xt::xtensor<double, 1> const& w) const {
        detail::check_weights("logistic_regression_problem", w, dim());
        std::size_t right = 0;
        for (std::size_t i = 0; i < samples(); ++i) {
            right += (row_dot(i, w) >= 0.0) == (y_(i) > 0.0) ? 1 : 0;
        }
        return static_cast<double>(right) / static_cast<double>(samples());
    }

private:
    /// \f$ \log(1 + e^{z}) \f$ without overflow for large |z|.
    static double softplus(double z) noexcept { return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

    /// \f$ 1 / (1 + e^{-z}) \f$ without overflow for large |z|.
    static double sigmoid(double z) noexcept {
        if (z >= 0.0) {
            return 1.0 / (1.0 + std::exp(-z));
        }
        double const e = std::exp(z);
        return e / (1.0 + e);
    }

    static double squared_norm(xt::xtensor<double, 1> const& w) noexcept {
        double s = 0.0;
        for (double v : w) {
            s += v * v;
        }
        return s;
    }

    [[nodiscard]] double row_dot(std::size_t i, xt::xtensor<double, 1> const& w) const {
        double const* row = a_.data() + i * dim();
        double s = 0.0;
        for (std::size_t j = 0; j < dim(); ++j) {
            s += row[j] * w(j);
        }
        return s;
    }

    logistic_regression_options options_;
    xt::xtensor<double, 2> a_;
    xt::xtensor<double, 1> y_;
    xt::xtensor<double, 1> planted_;
    std::vector<std::size_t> all_;
    double l_ = 0.0;
};

} // namespace lowbit::data
