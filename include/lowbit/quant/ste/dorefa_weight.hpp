// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::dorefa_weight<Bits>: DoReFa-Net's weight quantizer ("clamp then quantize", also SAT's), with
/// its backward pass.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
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

/// @brief DoReFa weight quantizer (Zhou et al. 2016, "DoReFa-Net"; the weight quantizer of SAT, Jin et al. 2020).
///
/// For Bits >= 2, per slice (the tensor, or one output channel with per_channel_t):
/// \f[ \tilde W = \frac{\tanh W}{2 \max|\tanh W|} + \frac12, \qquad Q = 2\,q_k(\tilde W) - 1, \qquad
///     q_k(u) = \frac{\operatorname{round}((2^k-1)u)}{2^k-1} \f]
/// with round = nearest, ties to even. Q takes 2^k levels in [-1, 1] (no exact 0). Backward: STE through
/// q_k, exact derivative of tanh, and the max treated as a constant (the N2D2 convention; the authors'
/// PyTorch code also differentiates the max, which only changes the arg-max element's gradient):
/// \f[ \frac{\partial L}{\partial W_i} = \frac{\partial L}{\partial Q_i}\,\frac{1 - \tanh^2 W_i}{\max_j|\tanh W_j|} \f]
/// An all-zero slice has no max; it gives Q = 2 q_k(1/2) - 1 and passes the gradient unchanged.
///
/// For Bits = 1: \f$ w_b = \operatorname{sign}(w)\,E,\ E = \operatorname{sg}(\operatorname{mean}|w|) \f$ with
/// sign(0) = +1, and the identity backward \f$ \partial L/\partial w = \partial L/\partial w_b \f$.
///
/// @code
/// lowbit::ste::dorefa_weight<2> q;
/// std::vector<float> w{-2.0f, -0.1f, 0.1f, 2.0f}, y(4);
/// q.forward(w, y);   // {-1, -1/3, 1/3, 1}
/// @endcode
/// @tparam Bits         1..16
/// @tparam GranularityT per_tensor_t (default, as DoReFa) or per_channel_t (call bind(shape) first)
template <int Bits, Granularity GranularityT = per_tensor_t>
class dorefa_weight {
    static_assert(detail::check_fake_bits<Bits>());

public:
    static constexpr int bits = Bits;
    using granularity_type = GranularityT;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = std::conditional_t<Bits == 1, grid::binary, grid::symmetric_even>;
    using rounding_type = nearest_even_t;
    using bound_type = std::conditional_t<Bits == 1, data_bound_t, fixed_bound_t>;  // mean|w|, or [-1, 1] after tanh

    /// Records the tensor's shape (per_channel_t slices along axis 0).
    void bind(std::span<std::size_t const> shape) noexcept { slices_.bind(shape); }

    /// y = Q(x); keeps the per-element derivative for backward. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "dorefa_weight");
        std::size_t const len = slices_.slice_length(x.size(), "dorefa_weight");
        n_ = x.size();
        if (len == 0) return;
        if constexpr (Bits == 1) {
            for (std::size_t b = 0; b < x.size(); b += len) {
                double s = 0.0;
                for (std::size_t i = b; i < b + len; ++i) s += std::abs(x[i]);
                auto const e = static_cast<float>(s / static_cast<double>(len));
                for (std::size_t i = b; i < b + len; ++i) y[i] = detail::sign_pos(x[i]) * e;
            }
        } else {
            constexpr float n = detail::steps_v<Bits>;
            detail::tanh_and_max(x, len, deriv_, max_);  // deriv_ = tanh(x) until dorefa_levels replaces it
            detail::for_each_slice_run(x.size(), len, [&](std::size_t b, std::size_t e, std::size_t c) {
                lowbit::detail::dorefa_levels(std::span<float>(deriv_).subspan(b, e - b), y.subspan(b, e - b),
                                              max_[c], n);
            });
        }
    }

    /// dx = dy (1 - tanh^2 x) / max|tanh x| (Bits >= 2), dx = dy (Bits = 1).
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, n_, "dorefa_weight");
        for (std::size_t i = 0; i < n_; ++i) {
            if constexpr (Bits == 1)
                dx[i] = dy[i];
            else
                dx[i] = dy[i] * deriv_[i];
        }
    }

private:
    detail::slicing<GranularityT> slices_{};
    std::vector<float> deriv_;
    std::vector<float> max_;  // max|tanh| per slice (0 for an all-zero slice)
    std::size_t n_ = 0;
};

} // namespace lowbit::ste
