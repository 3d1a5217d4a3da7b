// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Small dense linear algebra for the synthetic problems (d up to a few hundred): Gram
/// matrix, Cholesky solve and symmetric eigenvalues, on row-major `std::vector<double>`.
// IWYU pragma: private

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::data::detail {

/// `scale * A^T A` for the row-major n x d matrix @p a: d x d, row-major.
inline std::vector<double> gram(double const* a, std::size_t n, std::size_t d, double scale) {
    std::vector<double> g(d * d, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        double const* row = a + i * d;
        for (std::size_t j = 0; j < d; ++j) {
            double const rj = row[j];
            for (std::size_t k = j; k < d; ++k) {
                g[j * d + k] += rj * row[k];
            }
        }
    }
    for (std::size_t j = 0; j < d; ++j) {
        for (std::size_t k = j; k < d; ++k) {
            g[j * d + k] *= scale;
            g[k * d + j] = g[j * d + k];
        }
    }
    return g;
}

/// Solves `M x = rhs` for the symmetric positive definite d x d matrix @p m by Cholesky
/// (M = L L^T, then two triangular solves). Throws std::domain_error when M is not (numerically)
/// positive definite, e.g. a least-squares problem with fewer samples than dimensions.
inline std::vector<double> cholesky_solve(std::vector<double> m, std::vector<double> rhs, std::size_t d) {
    // Lower triangle of m overwritten by L, column by column.
    for (std::size_t j = 0; j < d; ++j) {
        double diag = m[j * d + j];
        for (std::size_t k = 0; k < j; ++k) {
            diag -= m[j * d + k] * m[j * d + k];
        }
        if (!(diag > 0.0)) {
            throw std::domain_error{"lowbit: cholesky_solve: matrix is not positive definite (pivot " +
                                    std::to_string(j) + ")"};
        }
        double const ljj = std::sqrt(diag);
        m[j * d + j] = ljj;
        for (std::size_t i = j + 1; i < d; ++i) {
            double v = m[i * d + j];
            for (std::size_t k = 0; k < j; ++k) {
                v -= m[i * d + k] * m[j * d + k];
            }
            m[i * d + j] = v / ljj;
        }
    }
    // L y = rhs.
    for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t k = 0; k < i; ++k) {
            rhs[i] -= m[i * d + k] * rhs[k];
        }
        rhs[i] /= m[i * d + i];
    }
    // L^T x = y.
    for (std::size_t i = d; i-- > 0;) {
        for (std::size_t k = i + 1; k < d; ++k) {
            rhs[i] -= m[k * d + i] * rhs[k];
        }
        rhs[i] /= m[i * d + i];
    }
    return rhs;
}

/// Eigenvalues of the symmetric d x d matrix @p m, ascending, by the cyclic Jacobi method: plane
/// rotations zero the off-diagonal entries one at a time until their norm is negligible. Slow
/// (O(d^3) per sweep, a handful of sweeps) but simple and accurate for small d.
inline std::vector<double> symmetric_eigenvalues(std::vector<double> m, std::size_t d) {
    auto off_norm = [&] {
        double s = 0.0;
        for (std::size_t p = 0; p < d; ++p) {
            for (std::size_t q = p + 1; q < d; ++q) {
                s += m[p * d + q] * m[p * d + q];
            }
        }
        return s;
    };
    double total = 0.0;
    for (double v : m) {
        total += v * v;
    }
    for (int sweep = 0; sweep < 100 && off_norm() > 1e-30 * total; ++sweep) {
        for (std::size_t p = 0; p < d; ++p) {
            for (std::size_t q = p + 1; q < d; ++q) {
                double const apq = m[p * d + q];
                if (apq == 0.0) {
                    continue;
                }
                // Rotation angle that zeroes m(p, q): t = tan(theta), the smaller root.
                double const theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                double const t = (theta >= 0.0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
                double const c = 1.0 / std::sqrt(t * t + 1.0);
                double const s = t * c;
                for (std::size_t k = 0; k < d; ++k) {  // columns p, q
                    double const mkp = m[k * d + p];
                    double const mkq = m[k * d + q];
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for (std::size_t k = 0; k < d; ++k) {  // rows p, q
                    double const mpk = m[p * d + k];
                    double const mqk = m[q * d + k];
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
            }
        }
    }
    std::vector<double> eig(d);
    for (std::size_t i = 0; i < d; ++i) {
        eig[i] = m[i * d + i];
    }
    std::sort(eig.begin(), eig.end());
    return eig;
}

} // namespace lowbit::data::detail
