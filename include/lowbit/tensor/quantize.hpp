// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief quantize(): an xtensor expression to a bit-packed qtensor<Q>.
///
/// @code
/// using w2 = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::l2_optimal>;
/// xt::xtensor<float, 2> w = {{0.3f, -0.9f}, {0.05f, 1.2f}};
/// lowbit::qtensor<w2> q = lowbit::quantize<w2>(w);          // 2 bits per value + one step
/// xt::xarray<float> back = lowbit::dequantize(q);
/// @endcode
///
/// Non-finite input: +-Inf saturates to the outermost level (data-derived bounds ignore it). NaN has no
/// quantized value: quantize() throws lowbit::invalid_input naming the count, unless the options say
/// `.allow_nan = true`, in which case NaN is coded as level 0 (the code of 0 on grids that contain it).

#include <lowbit/config.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/tensor/qtensor.hpp>

#include <xtensor/xarray.hpp>
#include <xtensor/xexpression.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit {

/// @brief Options of quantize().
struct quantize_options {
    random::counter_key key{};  ///< (seed, step, stream) of the stochastic rounding draws
    bool allow_nan = false;     ///< false: NaN input throws invalid_input; true: NaN is coded as level 0
};

namespace detail {

/// Row-major contiguous float data of an expression: the expression's own buffer when it has one,
/// otherwise an evaluated copy held in `keep`.
template <class E>
float const* contiguous_floats(xt::xexpression<E> const& e, xt::xarray<float>& keep)
{
    E const& x = e.derived_cast();
    if constexpr (std::is_same_v<typename E::value_type, float> && requires { x.data(); } &&
                  E::static_layout == xt::layout_type::row_major) {
        return x.data();
    } else {
        keep = x;
        return keep.data();
    }
}

/// Steps per slice (per tensor or per channel), from the quantizer's clipping policy.
template <Quantizer Q>
std::vector<float> slice_steps(Q const& q, float const* x, std::size_t n, std::size_t channels)
{
    constexpr level_range levels = Q::grid_type::template levels<Q::bits>();
    std::size_t const len = channels == 0 ? 0 : n / channels;
    std::vector<float> steps(channels);
    for (std::size_t c = 0; c < channels; ++c)
        steps[c] = levels.step_for_range(q.clipping.range(std::span<float const>(x + c * len, len), levels));
    return steps;
}

} // namespace detail

/// @brief Quantizes an xtensor expression with the quantizer q.
/// @throws invalid_input for NaN input (unless opts.allow_nan) or a per-channel quantizer on a 0-d tensor.
template <Quantizer Q, class E>
qtensor<Q> quantize(xt::xexpression<E> const& e, Q const& q = {}, quantize_options const& opts = {})
{
    constexpr level_range levels = Q::grid_type::template levels<Q::bits>();
    constexpr bool by_channel = std::is_same_v<typename Q::granularity_type, per_channel_t>;
    auto const& x = e.derived_cast();
    std::vector<std::size_t> shape(x.shape().begin(), x.shape().end());
    if (by_channel && shape.empty())
        throw invalid_input("lowbit::quantize: a per_channel quantizer needs a tensor of rank >= 1 "
                            "(channels along axis 0); use per_tensor_t for a scalar");
    xt::xarray<float> keep;
    float const* data = detail::contiguous_floats(e, keep);
    std::size_t const n = x.size();
    std::size_t const channels = by_channel ? shape[0] : 1;

    std::vector<float> mapped;
    if constexpr (TransformingClipping<typename Q::clipping_type>) {
        mapped.resize(n);
        std::size_t const len = channels == 0 ? 0 : n / channels;
        for (std::size_t c = 0; c < channels; ++c)
            q.clipping.transform(std::span<float const>(data + c * len, len), std::span<float>(mapped.data() + c * len, len));
        data = mapped.data();
    }

    std::vector<float> steps = detail::slice_steps(q, data, n, channels);
    constexpr bool wraps = std::is_same_v<typename Q::overflow_type, wrap_t>;
    std::vector<kernels::quantize_params> params(channels);
    for (std::size_t c = 0; c < channels; ++c)
        params[c] = kernels::make_quantize_params(levels, Q::bits, steps[c], wraps, opts.key);

    std::vector<std::uint8_t> codes(kernels::packed_bytes(n, Q::bits));
    std::size_t const nans = kernels::quantize_pack<typename Q::rounding_type>(
        data, n, channels == 0 ? 1 : n / channels, params.data(), Q::bits, codes.data());
    if (nans != 0 && !opts.allow_nan)
        throw invalid_input("lowbit::quantize: the input holds " + std::to_string(nans) +
                            " NaN value(s), which have no quantized value; fix the data or gradients, or pass "
                            "quantize_options{.allow_nan = true} to code NaN as level 0");
    return qtensor<Q>(std::move(shape), std::move(codes), std::move(steps));
}

} // namespace lowbit
