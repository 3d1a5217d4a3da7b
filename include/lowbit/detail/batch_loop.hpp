// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief detail::for_each_batch: an element-wise float loop written once as xsimd batch code, for the
/// passes over every weight of every step (optimizers, DoReFa's tanh).
///
/// Why not a plain loop: the compiler does not vectorize one that calls std::sqrt (errno), that may write
/// through a span aliasing its inputs, or that selects per element; and a scalar tail would round differently
/// from the vector body wherever the compiler contracts a * b + c, so a value's bits would depend on where a
/// thread's range starts. Here every element, the tail included (through a padded copy), runs the same batch
/// code, so results depend only on the element: any split over threads gives the same bits.
// IWYU pragma: private

#include <lowbit/detail/gcc12_avx512_warnings.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cstddef>

namespace lowbit::detail {

LOWBIT_GCC12_AVX512_WARNINGS_OFF  // to LOWBIT_GCC12_AVX512_WARNINGS_ON: GCC PR 105593, see the header

/// Calls `f(in, out)` on [begin, end) one batch of xsimd::batch<float>::size elements at a time: `in` holds
/// pointers to that batch's elements of each input array, `out` of each output array (an output may also be
/// read, as an optimizer's moments are). An output may alias an input when `f` loads all its inputs before
/// it stores an output. The last partial batch runs on zero-padded copies; only its `end - i` outputs are
/// written back.
template <std::size_t In, std::size_t Out, class F>
void for_each_batch(std::size_t begin, std::size_t end, std::array<float const*, In> const& in,
                    std::array<float*, Out> const& out, F&& f)
{
    constexpr std::size_t lanes = xsimd::batch<float>::size;
    std::array<float const*, In> ip{};
    std::array<float*, Out> op{};
    std::size_t i = begin;
    for (; i + lanes <= end; i += lanes) {
        for (std::size_t k = 0; k < In; ++k) ip[k] = in[k] + i;
        for (std::size_t k = 0; k < Out; ++k) op[k] = out[k] + i;
        f(ip, op);
    }
    if (i == end) return;
    std::size_t const rest = end - i;
    alignas(64) float pad_in[In == 0 ? 1 : In][lanes] = {};
    alignas(64) float pad_out[Out == 0 ? 1 : Out][lanes] = {};
    for (std::size_t k = 0; k < In; ++k) {
        std::copy_n(in[k] + i, rest, pad_in[k]);
        ip[k] = pad_in[k];
    }
    for (std::size_t k = 0; k < Out; ++k) {
        std::copy_n(out[k] + i, rest, pad_out[k]);
        op[k] = pad_out[k];
    }
    f(ip, op);
    for (std::size_t k = 0; k < Out; ++k) std::copy_n(pad_out[k], rest, out[k] + i);
}

LOWBIT_GCC12_AVX512_WARNINGS_ON

} // namespace lowbit::detail
