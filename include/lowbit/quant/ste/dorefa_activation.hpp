// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::dorefa_activation<Bits>: DoReFa-Net's activation quantizer, with its backward pass.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief DoReFa activation quantizer (Zhou et al. 2016, "DoReFa-Net"): a fixed clip to [0, 1], then k bits.
/// \f[ a_q = q_k(\operatorname{clip}(a, 0, 1)), \qquad q_k(u) = \frac{\operatorname{round}((2^k-1)u)}{2^k-1},
///     \qquad \frac{\partial L}{\partial a} = \frac{\partial L}{\partial a_q}\,\mathbb 1\{0 \le a \le 1\} \f]
/// round = nearest, ties to even (so at 1 bit, a = 0.5 gives 0). No learned parameter; per tensor.
/// @tparam Bits 1..16
template <int Bits>
class dorefa_activation {
    static_assert(detail::check_fake_bits<Bits>());

public:
    static constexpr int bits = Bits;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::unsigned_int;
    using rounding_type = nearest_even_t;
    using granularity_type = per_tensor_t;
    using bound_type = fixed_bound_t;  // [0, 1]

    /// Per tensor: the shape is not needed.
    void bind(std::span<std::size_t const>) noexcept {}

    /// y = q_k(clip(x, 0, 1)); keeps the gate 1{0 <= x <= 1}. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "dorefa_activation");
        constexpr float n = detail::steps_v<Bits>;
        gate_.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            gate_[i] = x[i] >= 0.0f && x[i] <= 1.0f;
            y[i] = detail::q_k(std::clamp(x[i], 0.0f, 1.0f), n);
        }
    }

    /// dx = dy 1{0 <= x <= 1}.
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, gate_.size(), "dorefa_activation");
        for (std::size_t i = 0; i < gate_.size(); ++i) dx[i] = gate_[i] ? dy[i] : 0.0f;
    }

private:
    std::vector<unsigned char> gate_;
};

} // namespace lowbit::ste
