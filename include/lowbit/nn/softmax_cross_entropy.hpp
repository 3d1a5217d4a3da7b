// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Softmax cross-entropy: the mean over the batch of -log softmax(z)_y, and its gradient
/// (softmax(z) - onehot(y)) / batch. Computed with the log-sum-exp shift for stability.

#include <lowbit/config.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace lowbit::nn {

/// @brief Loss value, gradient with respect to the logits, and the number of correct argmax predictions.
struct loss_result {
    float loss = 0.0f;
    xt::xtensor<float, 2> grad;
    std::size_t correct = 0;
};

/// @brief Mean softmax cross-entropy of logits [batch, classes] against labels. The gradient is that of the
/// mean over @p global_rows rows (0: this batch's), which data-parallel training sets to the global batch's
/// size so that each process's rows get the same gradient they get in one process; the loss is this batch's mean.
/// @throws invalid_input for a label count that differs from the batch, or a label >= classes.
inline loss_result softmax_cross_entropy(xt::xtensor<float, 2> const& logits, std::span<std::uint8_t const> labels,
                                         std::size_t global_rows = 0)
{
    std::size_t const n = logits.shape(0), k = logits.shape(1);
    std::size_t const mean_over = global_rows == 0 ? n : global_rows;
    if (labels.size() != n)
        throw invalid_input("lowbit::nn::softmax_cross_entropy: shape mismatch: " + std::to_string(n) +
                            " rows of logits but " + std::to_string(labels.size()) + " labels");
    loss_result r;
    r.grad = xt::xtensor<float, 2>::from_shape({n, k});
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        if (labels[i] >= k)
            throw invalid_input("lowbit::nn::softmax_cross_entropy: label " + std::to_string(labels[i]) +
                                " at row " + std::to_string(i) + " is not below the " + std::to_string(k) + " classes");
        float const* z = logits.data() + i * k;
        float* g = r.grad.data() + i * k;
        std::size_t const arg = static_cast<std::size_t>(std::max_element(z, z + k) - z);
        float const m = z[arg];
        double s = 0.0;
        for (std::size_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(z[j] - m));
        double const lse = std::log(s) + m;
        total += lse - z[labels[i]];
        for (std::size_t j = 0; j < k; ++j)
            g[j] = static_cast<float>(std::exp(static_cast<double>(z[j]) - lse) / static_cast<double>(mean_over));
        g[labels[i]] -= 1.0f / static_cast<float>(mean_over);
        r.correct += arg == labels[i] ? 1 : 0;
    }
    r.loss = static_cast<float>(total / static_cast<double>(std::max<std::size_t>(n, 1)));
    return r;
}

} // namespace lowbit::nn
