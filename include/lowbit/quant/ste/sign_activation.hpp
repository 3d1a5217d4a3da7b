// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::sign_activation: binary activations {-1, +1} with the clipped straight-through estimator, the
/// activation of binarized networks (Hubara, Courbariaux et al. 2016, "Binarized Neural Networks"; XNOR-Net).

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief \f$ y = \operatorname{sign}(x) \f$ with sign(0) = +1, and
/// \f$ \partial L/\partial x = \partial L/\partial y\,\mathbb 1\{|x| \le 1\} \f$ (the derivative of hardtanh).
/// The activations are signed, so a network puts it directly after BatchNorm, not after a ReLU (whose
/// output sign() would map to +1 everywhere): `signed_domain` tells nn::mlp / nn::cnn to drop the ReLU.
/// Two such activations and binary weights make a layer an XNOR-popcount product.
class sign_activation {
public:
    static constexpr int bits = 1;
    static constexpr bool signed_domain = true;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::binary;
    using rounding_type = nearest_even_t;  // sign(0) = +1
    using granularity_type = per_tensor_t;
    using bound_type = fixed_bound_t;  // +-1

    /// Per tensor: the shape is not needed.
    void bind(std::span<std::size_t const>) noexcept {}

    /// y = sign(x), sign(0) = +1; keeps the gate 1{|x| <= 1}. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "sign_activation");
        gate_.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            gate_[i] = x[i] >= -1.0f && x[i] <= 1.0f;
            y[i] = detail::sign_pos(x[i]);
        }
    }

    /// dx = dy 1{|x| <= 1}.
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, gate_.size(), "sign_activation");
        for (std::size_t i = 0; i < gate_.size(); ++i) dx[i] = gate_[i] ? dy[i] : 0.0f;
    }

private:
    std::vector<unsigned char> gate_;
};

} // namespace lowbit::ste
