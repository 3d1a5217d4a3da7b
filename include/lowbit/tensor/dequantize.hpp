// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief dequantize(): a qtensor back to floats, into a new xt::xarray or into an existing container.

#include <lowbit/config.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/tensor/qtensor.hpp>

#include <xtensor/xarray.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace lowbit {

namespace detail {
template <Quantizer Q>
void dequantize_to(qtensor<Q> const& q, float* out)
{
    std::vector<kernels::dequantize_params> params(q.channels());
    for (std::size_t c = 0; c < params.size(); ++c)
        params[c] = kernels::make_dequantize_params(qtensor<Q>::levels, q.steps()[c]);
    kernels::unpack_dequantize(q.codes().data(), q.size(), std::max<std::size_t>(q.channel_size(), 1), params.data(),
                               Q::bits, out);
}

inline std::string shape_string(auto const& shape)
{
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
}
} // namespace detail

/// @brief The real values of q as a new row-major xt::xarray<float> of q's shape.
template <Quantizer Q>
xt::xarray<float> dequantize(qtensor<Q> const& q)
{
    xt::xarray<float> out = xt::xarray<float>::from_shape(std::vector<std::size_t>(q.shape().begin(), q.shape().end()));
    detail::dequantize_to(q, out.data());
    return out;
}

/// @brief Writes the real values of q into `out` (a row-major float xtensor / xarray of q's shape).
/// @throws invalid_input when the shapes differ; `out` is then left untouched.
template <Quantizer Q, class C>
    requires requires(C& c) { { c.data() } -> std::convertible_to<float*>; c.shape(); }
void dequantize(qtensor<Q> const& q, C& out)
{
    if (!std::equal(out.shape().begin(), out.shape().end(), q.shape().begin(), q.shape().end()))
        throw invalid_input("lowbit::dequantize: shape mismatch: the qtensor has shape " +
                            detail::shape_string(q.shape()) + ", the output has shape " +
                            detail::shape_string(out.shape()));
    detail::dequantize_to(q, out.data());
}

} // namespace lowbit
