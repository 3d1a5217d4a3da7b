// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The random design matrix and planted weights shared by the synthetic convex problems.
// IWYU pragma: private

#include <cmath>
#include <cstddef>
#include <random>
#include <stdexcept>
#include <string>

#include <xtensor/xtensor.hpp>

namespace lowbit::data::detail {

/// Checks the options common to the synthetic problems; @p what names the problem in the message.
inline void check_design_options(char const* what, std::size_t samples, std::size_t dim, double condition) {
    if (dim == 0) {
        throw std::invalid_argument{std::string{"lowbit: "} + what + ": dim must be at least 1"};
    }
    if (samples < dim) {
        throw std::invalid_argument{std::string{"lowbit: "} + what + ": samples (" + std::to_string(samples) +
                                    ") must be at least dim (" + std::to_string(dim) + ")"};
    }
    if (!(condition >= 1.0) || !std::isfinite(condition)) {
        throw std::invalid_argument{std::string{"lowbit: "} + what + ": condition must be finite and >= 1, got " +
                                    std::to_string(condition)};
    }
}

/// An n x d matrix of standard normal draws, row-major (the first row first), whose column j is
/// then multiplied by `condition^(-j / (d - 1))`: column scales from 1 down to 1 / condition, so
/// that the condition number of A is close to @p condition when n is much larger than d.
inline xt::xtensor<double, 2> gaussian_design(std::mt19937_64& rng, std::size_t n, std::size_t d, double condition) {
    std::normal_distribution<double> normal{0.0, 1.0};
    auto a = xt::xtensor<double, 2>::from_shape({n, d});
    double* p = a.data();
    for (std::size_t i = 0; i < n * d; ++i) {
        p[i] = normal(rng);
    }
    if (condition != 1.0 && d > 1) {
        for (std::size_t j = 0; j < d; ++j) {
            double const scale = std::pow(condition, -static_cast<double>(j) / static_cast<double>(d - 1));
            for (std::size_t i = 0; i < n; ++i) {
                p[i * d + j] *= scale;
            }
        }
    }
    return a;
}

/// @p d standard normal draws.
inline xt::xtensor<double, 1> gaussian_vector(std::mt19937_64& rng, std::size_t d) {
    std::normal_distribution<double> normal{0.0, 1.0};
    auto w = xt::xtensor<double, 1>::from_shape({d});
    for (std::size_t j = 0; j < d; ++j) {
        w(j) = normal(rng);
    }
    return w;
}

/// Throws std::invalid_argument unless @p w has @p d entries.
inline void check_weights(char const* what, xt::xtensor<double, 1> const& w, std::size_t d) {
    if (w.size() != d) {
        throw std::invalid_argument{std::string{"lowbit: "} + what + ": weights have " + std::to_string(w.size()) +
                                    " entries, the problem has dim " + std::to_string(d)};
    }
}

/// Throws std::invalid_argument for an empty batch, std::out_of_range for an index >= @p n.
template <class Span>
void check_batch(char const* what, Span const& idx, std::size_t n) {
    if (idx.empty()) {
        throw std::invalid_argument{std::string{"lowbit: "} + what + ": empty batch"};
    }
    for (auto i : idx) {
        if (i >= n) {
            throw std::out_of_range{std::string{"lowbit: "} + what + ": sample index " + std::to_string(i) +
                                    " out of range (" + std::to_string(n) + " samples)"};
        }
    }
}

} // namespace lowbit::data::detail
