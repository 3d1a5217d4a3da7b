// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference kernels for quantize / pack / unpack / dequantize: one element at a time, written
/// to be obviously correct. The optimised kernels in kernels/pack.hpp are tested bit-identical to these.
///
/// Bit order: element i occupies bits [i*b, (i+1)*b) of the byte stream, least significant bit first
/// (bit j of the stream is bit j % 8 of byte j / 8). A stream of n codes takes ceil(n*b/8) bytes; unused
/// high bits of the last byte are zero.

#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/random/philox.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lowbit::kernels::reference {

/// @brief Rounds t (already in steps and clamped) with the policy R; u is the uniform draw for stochastic R.
template <RoundingPolicy R>
float round_level(float t, float u) noexcept
{
    if constexpr (StochasticRounding<R>)
        return R::round(t, u);
    else
        return R::round(t);
}

/// @brief The code of one value. `index` is the element's position in the stochastic stream.
template <RoundingPolicy R>
std::uint8_t quantize_code(float x, quantize_params const& p, std::uint64_t index) noexcept
{
    float t = (x - p.shift) * p.inv_step;
    if (std::isnan(t)) t = 0.0f;
    t = std::min(std::max(t, p.lo), p.hi);
    float u = 0.0f;
    if constexpr (StochasticRounding<R>) u = random::uniform_at(p.key, index);
    float const k = round_level<R>(t, u);
    return static_cast<std::uint8_t>(static_cast<std::uint32_t>(static_cast<std::int32_t>(k) - p.qmin) & p.code_mask);
}

/// @brief Codes of x[0..n), elements index0 .. index0 + n of the stochastic stream. Returns the NaN count.
template <RoundingPolicy R>
std::size_t quantize_codes(float const* x, std::uint8_t* codes, std::size_t n, std::uint64_t index0,
                           quantize_params const& p) noexcept
{
    std::size_t nans = 0;
    for (std::size_t i = 0; i < n; ++i) {
        nans += std::isnan(x[i]) ? 1 : 0;
        codes[i] = quantize_code<R>(x[i], p, index0 + i);
    }
    return nans;
}

/// @brief Writes n codes of `bits` bits to out as a bitstream (ceil(n*bits/8) bytes).
inline void pack_codes(std::uint8_t const* codes, std::size_t n, int bits, std::uint8_t* out) noexcept
{
    std::fill(out, out + packed_bytes(n, bits), std::uint8_t{0});
    for (std::size_t i = 0; i < n; ++i)
        for (int j = 0; j < bits; ++j) {
            std::size_t const bit = i * static_cast<std::size_t>(bits) + static_cast<std::size_t>(j);
            if ((codes[i] >> j) & 1u) out[bit / 8] = static_cast<std::uint8_t>(out[bit / 8] | (1u << (bit % 8)));
        }
}

/// @brief Reads n codes of `bits` bits from a bitstream.
inline void unpack_codes(std::uint8_t const* in, std::size_t n, int bits, std::uint8_t* codes) noexcept
{
    for (std::size_t i = 0; i < n; ++i) {
        unsigned c = 0;
        for (int j = 0; j < bits; ++j) {
            std::size_t const bit = i * static_cast<std::size_t>(bits) + static_cast<std::size_t>(j);
            c |= ((in[bit / 8] >> (bit % 8)) & 1u) << j;
        }
        codes[i] = static_cast<std::uint8_t>(c);
    }
}

/// @brief The real value of one code.
inline float dequantize_code(std::uint8_t code, dequantize_params const& p) noexcept
{
    return (static_cast<float>(static_cast<int>(code) + p.qmin) + p.offset) * p.step;
}

/// @brief Values of n codes.
inline void dequantize_codes(std::uint8_t const* codes, std::size_t n, dequantize_params const& p, float* out) noexcept
{
    for (std::size_t i = 0; i < n; ++i) out[i] = dequantize_code(codes[i], p);
}

} // namespace lowbit::kernels::reference
