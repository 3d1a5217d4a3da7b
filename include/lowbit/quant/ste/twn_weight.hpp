// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::twn_weight: Ternary Weight Networks, with the identity STE.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief Options of ste::twn_weight.
struct twn_options {
    float threshold = 0.7f;  ///< Delta = threshold * mean|W| (0.7 approximates the optimum for Gaussian/uniform W)
};

/// @brief Ternary Weight Networks (Li & Liu 2016, "Ternary Weight Networks"). Per slice (tensor or channel):
/// \f[ \Delta = 0.7\,\overline{|W|}, \qquad I = \{i : |W_i| > \Delta\}, \qquad
///     \alpha = \frac{1}{|I|}\sum_{i \in I}|W_i|, \qquad W^t = \alpha \operatorname{sign}(W)\,\mathbb 1\{|W| > \Delta\} \f]
/// (alpha = 0 when I is empty). Backward: identity STE, \f$ \partial L/\partial W = \partial L/\partial W^t \f$,
/// with Delta and alpha treated as constants (stop-gradient).
/// @tparam GranularityT per_tensor_t (default, as the paper) or per_channel_t (call bind(shape) first)
template <Granularity GranularityT = per_tensor_t>
class twn_weight {
public:
    static constexpr int bits = 2;
    using granularity_type = GranularityT;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::symmetric_odd;
    using rounding_type = nearest_even_t;
    using bound_type = data_bound_t;  // alpha from the weights

    twn_weight() = default;
    explicit twn_weight(twn_options o) : opts_(o) {}

    /// Records the tensor's shape (per_channel_t slices along axis 0).
    void bind(std::span<std::size_t const> shape) noexcept { slices_.bind(shape); }

    /// Delta and alpha of each slice in the last forward pass.
    std::span<float const> thresholds() const noexcept { return delta_; }
    std::span<float const> scales() const noexcept { return alpha_; }

    /// y = alpha sign(x) 1{|x| > Delta}. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "twn_weight");
        std::size_t const len = slices_.slice_length(x.size(), "twn_weight");
        n_ = x.size();
        std::size_t const slices = len == 0 ? 0 : x.size() / len;
        delta_.assign(slices, 0.0f);
        alpha_.assign(slices, 0.0f);
        for (std::size_t c = 0; c < slices; ++c) {
            auto const xs = x.subspan(c * len, len);
            double s = 0.0;
            for (float v : xs) s += std::abs(v);
            float const delta = opts_.threshold * static_cast<float>(s / static_cast<double>(len));
            double sa = 0.0;
            std::size_t k = 0;
            for (float v : xs)
                if (std::abs(v) > delta) { sa += std::abs(v); ++k; }
            float const alpha = k == 0 ? 0.0f : static_cast<float>(sa / static_cast<double>(k));
            for (std::size_t i = 0; i < len; ++i)
                y[c * len + i] = std::abs(xs[i]) > delta ? alpha * detail::sign_pos(xs[i]) : 0.0f;
            delta_[c] = delta;
            alpha_[c] = alpha;
        }
    }

    /// dx = dy (identity STE).
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, n_, "twn_weight");
        std::copy(dy.begin(), dy.end(), dx.begin());
    }

private:
    twn_options opts_{};
    detail::slicing<GranularityT> slices_{};
    std::vector<float> delta_, alpha_;
    std::size_t n_ = 0;
};

} // namespace lowbit::ste
