// SPDX-License-Identifier: MIT
#pragma once
// Test support for comparing a packed model with the fake-quant model it was compiled from: whether the
// Fashion-MNIST files are installed, the argmax of a row of logits, and the tolerance of the logits.

#include <lowbit/data/fashion_mnist.hpp>

#include <xtensor/xtensor.hpp>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <system_error>
#include <vector>

namespace lowbit::test {

/// Whether Debian's dataset-fashion-mnist is installed (the real-data tests are skipped without it).
inline bool have_fashion_mnist()
{
    std::error_code ec;
    return std::filesystem::is_directory(std::filesystem::path{data::default_fashion_mnist_dir}, ec);
}

inline std::size_t argmax_row(xt::xtensor<float, 2> const& l, std::size_t i)
{
    std::size_t best = 0;
    for (std::size_t j = 1; j < l.shape(1); ++j)
        if (l(i, j) > l(i, best)) best = j;
    return best;
}

/// The tolerance of each logit of the last (dense, with bias) layer @p last whose inputs are at most @p a in
/// magnitude (1 for signs, PACT's alpha for k-bit codes), docs/deploy.md: the fake-quant model sums K float
/// products Q_jk x_k, each within 1.5 2^-23 of exact, then adds b_j; the packed model rounds its exact sum
/// once: |difference| <= (K + 2) 2^-23 (a sum_k |Q_jk| + |b_j| + 2), with a factor 2 to spare.
template <class Dense>
std::vector<double> logit_tolerance(Dense& last, double a)
{
    std::vector<float> const w = last.weight().values();
    auto policy = last.weight().policy();  // a copy: forward keeps state
    std::vector<float> q(w.size());
    policy.forward(w, q);
    std::size_t const k = last.options().in, out = last.options().out;
    std::vector<double> tolerance(out);
    for (std::size_t j = 0; j < out; ++j) {
        double s = std::abs(static_cast<double>(last.bias()[j])) + 2.0;
        for (std::size_t c = 0; c < k; ++c) s += a * std::abs(static_cast<double>(q[j * k + c]));
        tolerance[j] = static_cast<double>(k + 2) * std::ldexp(1.0, -23) * s;
    }
    return tolerance;
}

} // namespace lowbit::test
