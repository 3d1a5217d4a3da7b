// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::xnor_weight: XNOR-Net / BWN binary weights with a per-channel scale, and their backward pass.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief Which backward pass ste::xnor_weight uses.
enum class xnor_gradient : std::uint8_t {
    exact,  ///< chain rule through alpha_c(W) (the XNOR-Net-PyTorch port)
    paper,  ///< the paper's simplified form dW_i = dW~_i (1/n + alpha_c 1{|W_i| <= 1})
};

/// @brief Options of ste::xnor_weight.
struct xnor_options {
    xnor_gradient gradient = xnor_gradient::exact;
    float clip = 1.0f;  ///< the STE through sign passes where |W| <= clip (1 in the paper)
};

/// @brief XNOR-Net / BWN binary weights (Rastegari et al. 2016, "XNOR-Net: ImageNet Classification Using Binary
/// Convolutional Neural Networks"). Per output channel c (n = elements per channel):
/// \f[ \alpha_c = \frac{\|W_c\|_1}{n}, \qquad \tilde W = \alpha_c \operatorname{sign}(W) \f]
/// with sign(0) = +1. The exact backward (the default; the clipped STE on sign, and alpha's dependence on W):
/// \f[ \frac{\partial L}{\partial W_i} = \alpha_c\,\mathbb 1\{|W_i| \le 1\}\frac{\partial L}{\partial \tilde W_i}
///     + \frac{\operatorname{sign}(W_i)}{n} \sum_{j \in c} \operatorname{sign}(W_j)\frac{\partial L}{\partial \tilde W_j} \f]
/// xnor_gradient::paper gives the paper's
/// \f$ \partial L/\partial W_i = \partial L/\partial \tilde W_i\,(1/n + \alpha_c \mathbb 1\{|W_i| \le 1\}) \f$.
/// The official Lua code's extra rescaling and mean-centring are not applied.
/// @tparam GranularityT per_channel_t (default; call bind(shape) first) or per_tensor_t (one alpha per layer)
template <Granularity GranularityT = per_channel_t>
class xnor_weight {
public:
    static constexpr int bits = 1;
    using granularity_type = GranularityT;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::binary;
    using rounding_type = nearest_even_t;  // sign(0) = +1
    using bound_type = data_bound_t;  // alpha = mean|w|

    xnor_weight() = default;
    explicit xnor_weight(xnor_options o) : opts_(o) {}

    /// Records the tensor's shape (per_channel_t: one alpha per slice along axis 0).
    void bind(std::span<std::size_t const> shape) noexcept { slices_.bind(shape); }

    /// The scales alpha_c of the last forward pass.
    std::span<float const> scales() const noexcept { return alpha_; }

    /// y = alpha_c sign(x). Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "xnor_weight");
        std::size_t const len = slices_.slice_length(x.size(), "xnor_weight");
        x_.assign(x.begin(), x.end());
        len_ = len;
        alpha_.assign(len == 0 ? 0 : x.size() / len, 0.0f);
        for (std::size_t c = 0; c < alpha_.size(); ++c) {
            double s = 0.0;
            for (std::size_t i = c * len; i < (c + 1) * len; ++i) s += std::abs(x[i]);
            alpha_[c] = static_cast<float>(s / static_cast<double>(len));
            for (std::size_t i = c * len; i < (c + 1) * len; ++i) y[i] = alpha_[c] * detail::sign_pos(x[i]);
        }
    }

    /// The exact or the paper's gradient (see the class comment).
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, x_.size(), "xnor_weight");
        auto const inv_n = len_ == 0 ? 0.0f : 1.0f / static_cast<float>(len_);
        for (std::size_t c = 0; c < alpha_.size(); ++c) {
            double sum = 0.0;
            if (opts_.gradient == xnor_gradient::exact)
                for (std::size_t i = c * len_; i < (c + 1) * len_; ++i) sum += detail::sign_pos(x_[i]) * dy[i];
            for (std::size_t i = c * len_; i < (c + 1) * len_; ++i) {
                float const ste = std::abs(x_[i]) <= opts_.clip ? alpha_[c] * dy[i] : 0.0f;
                dx[i] = opts_.gradient == xnor_gradient::exact
                            ? ste + detail::sign_pos(x_[i]) * inv_n * static_cast<float>(sum)
                            : ste + inv_n * dy[i];
            }
        }
    }

private:
    xnor_options opts_{};
    detail::slicing<GranularityT> slices_{};
    std::vector<float> x_, alpha_;
    std::size_t len_ = 0;
};

} // namespace lowbit::ste
