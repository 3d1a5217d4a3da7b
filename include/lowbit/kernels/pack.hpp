// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Fused quantize+pack and unpack+dequantize, vectorised with xsimd and threaded for large tensors.
///
/// Quantize+pack runs in blocks that stay in L1: the rounding arithmetic runs on xsimd batches and writes
/// one byte per code, then 8 codes at a time are gathered into 8*b bits (BMI2 `pext` where the target has
/// it, shifts otherwise) and stored. Unpack+dequantize is a table lookup: for b in {1, 2, 4, 8} each packed
/// byte indexes a 256-entry table holding its 8/b ready floats, so the output is written with plain vector
/// copies; other widths go through 8-code groups and a 2^b-entry level table. Every table entry is computed
/// by the scalar reference formula, so the result is bit-identical to kernels/reference/pack.hpp.

#include <lowbit/detail/gcc12_avx512_warnings.hpp>
#include <lowbit/detail/xsimd_compat.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/kernels/reference/pack.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/random/philox.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__BMI2__)
#include <immintrin.h>
#define LOWBIT_HAS_PEXT 1
#else
#define LOWBIT_HAS_PEXT 0
#endif

namespace lowbit::kernels {

namespace detail {

/// Elements per L1 block; a multiple of 8 so every block starts on a byte boundary for every width.
inline constexpr std::size_t block_elems = 1024;
/// Elements per thread task: a kernel over at most this many elements runs on the calling thread only.
inline constexpr std::size_t parallel_grain = std::size_t{1} << 16;

LOWBIT_GCC12_AVX512_WARNINGS_OFF  // to LOWBIT_GCC12_AVX512_WARNINGS_ON: GCC PR 105593, see the header

template <lowbit::detail::rounding_mode M, class B>
B round_batch(B t, B u) noexcept
{
    using lowbit::detail::rounding_mode;
    if constexpr (M == rounding_mode::nearest_even) {
        return xsimd::nearbyint(t);
    } else if constexpr (M == rounding_mode::nearest_away) {
        B const r = xsimd::trunc(t);
        B const d = t - r;
        return xsimd::select(d >= B(0.5f), r + B(1.0f), xsimd::select(d <= B(-0.5f), r - B(1.0f), r));
    } else if constexpr (M == rounding_mode::toward_zero) {
        return xsimd::trunc(t);
    } else if constexpr (M == rounding_mode::floor) {
        return xsimd::floor(t);
    } else if constexpr (M == rounding_mode::ceil) {
        return xsimd::ceil(t);
    } else {
        static_assert(M == rounding_mode::stochastic);
        B const f = xsimd::floor(t);
        return xsimd::select(u < t - f, f + B(1.0f), f);
    }
}

} // namespace detail

/// @brief Codes of x[0..n) (n <= detail::block_elems), elements index0 .. index0 + n of the stochastic
/// stream; returns the NaN count. Bit-identical to reference::quantize_codes<R>.
template <RoundingPolicy R, class Arch = xsimd::default_arch>
std::size_t quantize_codes(float const* x, std::uint8_t* codes, std::size_t n, std::uint64_t index0,
                           quantize_params const& p) noexcept
{
    using lowbit::detail::rounding_mode;
    constexpr rounding_mode mode = lowbit::detail::rounding_mode_of_v<R>;
    if constexpr (mode == rounding_mode::custom) {
        return reference::quantize_codes<R>(x, codes, n, index0, p);
    } else {
        using batch = xsimd::batch<float, Arch>;
        using ibatch = xsimd::batch<std::int32_t, Arch>;
        constexpr std::size_t w = batch::size;
        alignas(64) float u[detail::block_elems];
        alignas(64) std::int32_t k32[detail::block_elems];
        if constexpr (mode == rounding_mode::stochastic) random::uniform_fill<Arch>(p.key, index0, u, n);
        batch const shift(p.shift), inv(p.inv_step), lo(p.lo), hi(p.hi), zero(0.0f);
        ibatch const qmin(p.qmin), mask(static_cast<std::int32_t>(p.code_mask));
        std::size_t const body = n - n % w;
        auto any_nan = xsimd::batch_bool<float, Arch>(false);
        for (std::size_t i = 0; i < body; i += w) {
            batch const v = batch::load_unaligned(x + i);
            any_nan = any_nan || xsimd::isnan(v);
            batch t = (v - shift) * inv;
            t = xsimd::select(xsimd::isnan(t), zero, t);
            t = xsimd::min(xsimd::max(t, lo), hi);
            batch const uu = mode == rounding_mode::stochastic ? batch::load_aligned(u + i) : zero;
            batch const k = detail::round_batch<mode>(t, uu);
            ((xsimd::to_int(k) - qmin) & mask).store_aligned(k32 + i);
        }
        for (std::size_t i = 0; i < body; ++i) codes[i] = static_cast<std::uint8_t>(k32[i]);
        // The tail is shorter than one batch; the reference handles it with the same arithmetic.
        std::size_t nans = reference::quantize_codes<R>(x + body, codes + body, n - body, index0 + body, p);
        if (xsimd::any(any_nan))
            for (std::size_t i = 0; i < body; ++i) nans += x[i] != x[i] ? 1 : 0;
        return nans;
    }
}

LOWBIT_GCC12_AVX512_WARNINGS_ON

namespace detail {

/// Packs groups of 8 codes of B bits: one BMI2 `pext` (or a shift loop) gathers the low B bits of the 8
/// bytes of a word into 8*B contiguous bits, stored as B bytes. B is a template parameter so the store is a
/// fixed-size copy the compiler turns into one move, not a call to memcpy.
template <int B>
void pack_groups(std::uint8_t const* codes, std::size_t groups, std::uint8_t* out) noexcept
{
    [[maybe_unused]] constexpr std::uint64_t byte_mask = 0x0101010101010101ull * ((1u << B) - 1u);
    for (std::size_t g = 0; g < groups; ++g) {
        std::uint64_t v;
        std::memcpy(&v, codes + 8 * g, 8);
#if LOWBIT_HAS_PEXT
        std::uint64_t const packed = _pext_u64(v, byte_mask);
#else
        std::uint64_t packed = 0;
        for (unsigned j = 0; j < 8; ++j) packed |= ((v >> (8 * j)) & 0xFFu) << (j * B);
#endif
        std::memcpy(out + g * B, &packed, B);  // little-endian: the low B bytes
    }
}

} // namespace detail

/// @brief Packs n codes of `bits` bits into a bitstream; bit-identical to reference::pack_codes.
inline void pack_codes(std::uint8_t const* codes, std::size_t n, int bits, std::uint8_t* out) noexcept
{
    if (bits == 8) {
        if (n != 0) std::memcpy(out, codes, n);  // memcpy's pointers must be valid even for 0 bytes
        return;
    }
    std::size_t const groups = n / 8;
    switch (bits) {
    case 1: detail::pack_groups<1>(codes, groups, out); break;
    case 2: detail::pack_groups<2>(codes, groups, out); break;
    case 3: detail::pack_groups<3>(codes, groups, out); break;
    case 4: detail::pack_groups<4>(codes, groups, out); break;
    case 5: detail::pack_groups<5>(codes, groups, out); break;
    case 6: detail::pack_groups<6>(codes, groups, out); break;
    default: detail::pack_groups<7>(codes, groups, out); break;
    }
    auto const b = static_cast<std::size_t>(bits);
    reference::pack_codes(codes + 8 * groups, n - 8 * groups, bits, out + groups * b);
}

/// @brief Unpacks and dequantizes elements first .. first + n of a bitstream `in` (which starts at element 0)
/// with one set of parameters; bit-identical to reference unpack_codes + dequantize_codes.
inline void unpack_dequantize_slice(std::uint8_t const* in, std::size_t first, std::size_t n, int bits,
                                    dequantize_params const& p, float* out) noexcept
{
    auto const b = static_cast<std::size_t>(bits);
    std::array<float, 256> level{};
    for (unsigned c = 0; c < (1u << bits); ++c) level[c] = reference::dequantize_code(static_cast<std::uint8_t>(c), p);
    auto code_at = [&](std::size_t i) {
        std::size_t const bit = i * b;
        unsigned v = in[bit / 8] | (bit % 8 + b > 8 ? static_cast<unsigned>(in[bit / 8 + 1]) << 8 : 0u);
        return (v >> (bit % 8)) & ((1u << b) - 1u);
    };
    std::size_t i = 0;
    // Head: single elements until element first + i starts a group of 8 (then it is byte aligned).
    for (; i < n && (first + i) % 8 != 0; ++i) out[i] = level[code_at(first + i)];
    std::size_t const groups = (n - i) / 8;
    std::uint8_t const* src = in + (first + i) * b / 8;
    float* dst = out + i;
    if ((b == 1 || b == 2 || b == 4) && groups * b >= 64) {
        // Byte table: each packed byte holds 8/b codes; lut[byte] is their floats, copied as one vector.
        std::size_t const per = 8 / b;
        alignas(64) static thread_local float lut[256 * 8];
        for (unsigned byte = 0; byte < 256; ++byte)
            for (std::size_t j = 0; j < per; ++j) lut[byte * per + j] = level[(byte >> (j * b)) & ((1u << b) - 1u)];
        std::size_t const bytes = groups * b;
        // A copy of compile-time size per byte: the compiler makes it one or two vector moves, where a run-time
        // size called the library memcpy for every packed byte (measured: 1-4 GB/s on an AMD EPYC).
        auto copy_all = [&]<std::size_t Per>(std::integral_constant<std::size_t, Per>) {
            for (std::size_t k = 0; k < bytes; ++k) std::memcpy(dst + k * Per, lut + src[k] * Per, Per * sizeof(float));
        };
        if (per == 8)
            copy_all(std::integral_constant<std::size_t, 8>{});
        else if (per == 4)
            copy_all(std::integral_constant<std::size_t, 4>{});
        else
            copy_all(std::integral_constant<std::size_t, 2>{});
    } else if (b == 8) {
        for (std::size_t k = 0; k < groups * 8; ++k) dst[k] = level[src[k]];
    } else {
        for (std::size_t g = 0; g < groups; ++g) {
            std::uint64_t v = 0;
            std::memcpy(&v, src + g * b, b);
            for (std::size_t j = 0; j < 8; ++j) dst[8 * g + j] = level[(v >> (j * b)) & ((1u << b) - 1u)];
        }
    }
    i += groups * 8;
    for (; i < n; ++i) out[i] = level[code_at(first + i)];
}

/// @brief Quantizes and packs x[0..n) into `out` (packed_bytes(n, bits) bytes). The tensor is split into
/// channels of `channel_size` consecutive elements (n for per-tensor scales), channel c using params[c].
/// Threaded over blocks for large n. Returns the number of NaN inputs (they were coded as level 0).
template <RoundingPolicy R, class Arch = xsimd::default_arch>
std::size_t quantize_pack(float const* x, std::size_t n, std::size_t channel_size, quantize_params const* params,
                          int bits, std::uint8_t* out)
{
    std::atomic<std::size_t> nans{0};
    channel_size = std::max<std::size_t>(channel_size, 1);
    parallel_for(n, detail::parallel_grain, [&](std::size_t begin, std::size_t end) {
        alignas(64) std::uint8_t codes[detail::block_elems];
        std::size_t local = 0;
        for (std::size_t s = begin; s < end; s += detail::block_elems) {
            std::size_t const e = std::min(end, s + detail::block_elems);
            for (std::size_t i = s; i < e;) {
                std::size_t const c = i / channel_size;
                std::size_t const ce = std::min(e, (c + 1) * channel_size);
                local += quantize_codes<R, Arch>(x + i, codes + (i - s), ce - i, i, params[c]);
                i = ce;
            }
            pack_codes(codes, e - s, bits, out + s * static_cast<std::size_t>(bits) / 8);
        }
        nans += local;
    });
    return nans.load();
}

/// @brief Unpacks and dequantizes a bitstream of n codes into out[0..n), channel c using params[c].
inline void unpack_dequantize(std::uint8_t const* in, std::size_t n, std::size_t channel_size,
                              dequantize_params const* params, int bits, float* out)
{
    channel_size = std::max<std::size_t>(channel_size, 1);
    parallel_for(n, detail::parallel_grain, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end;) {
            std::size_t const c = i / channel_size;
            std::size_t const ce = std::min(end, (c + 1) * channel_size);
            unpack_dequantize_slice(in, i, ce - i, bits, params[c], out + i);
            i = ce;
        }
    });
}

} // namespace lowbit::kernels
