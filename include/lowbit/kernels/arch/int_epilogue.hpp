// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The fused output transforms of the integer GEMMs (kernels/int_gemm_output.hpp), lowered to one
/// struct, with a scalar, an AVX2 (8 columns) and an AVX-512 (16 columns, masked) implementation. The
/// vector ones are bit-identical to the scalar one: integer adds and compares, and vcvtdq2ps + vfmadd round
/// exactly as static_cast<float> + std::fma.
///
/// The value of element (i, j) is the kernel's integer result plus two optional corrections, then the
/// transform: v = raw + column_offset[j] + class_offset[row_class[i % class_period] * n + j]. int8_gemm
/// uses column_offset for signed activations, binary_conv2d uses class_offset for its zero padding.
///
/// Bit rows are written a whole tile row at a time (write_bits), never straddling a 64-bit word: tiles are
/// 8, 16, 32 or 64 columns wide and aligned to their width. A tile starting a word overwrites the whole
/// word (so bits past n end up 0), a later tile of the same word keeps the bits below it. The kernels write
/// the tiles of a word in increasing column order and from one thread (tasks own 64-column blocks).
// IWYU pragma: private

#include <lowbit/kernels/arch/targets.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

#if LOWBIT_X86_DISPATCH
#include <immintrin.h>
#endif

namespace lowbit::kernels::detail {

/// The output transform and corrections of one GEMM call, as the kernels see them.
struct int_epilogue {
    enum class kind : std::uint8_t { int32, float32, bits };
    kind what = kind::int32;
    void* data = nullptr;
    std::size_t ld = 0;
    float const* scale = nullptr;
    float const* bias = nullptr;
    std::int32_t const* threshold = nullptr;
    std::uint64_t const* flip = nullptr;
    std::int32_t const* column_offset = nullptr;
    std::int32_t const* class_offset = nullptr;
    std::uint32_t const* row_class = nullptr;
    std::size_t class_period = 1;
    std::size_t n = 0;
};

inline int_epilogue lower_output(int32_output const& o, std::size_t n) noexcept
{
    int_epilogue e;
    e.what = int_epilogue::kind::int32;
    e.data = o.data;
    e.ld = o.ld;
    e.n = n;
    return e;
}

inline int_epilogue lower_output(float_output const& o, std::size_t n) noexcept
{
    int_epilogue e;
    e.what = int_epilogue::kind::float32;
    e.data = o.data;
    e.ld = o.ld;
    e.scale = o.scale;
    e.bias = o.bias;
    e.n = n;
    return e;
}

inline int_epilogue lower_output(sign_output const& o, std::size_t n) noexcept
{
    int_epilogue e;
    e.what = int_epilogue::kind::bits;
    e.data = o.data;
    e.ld = o.ld;
    e.threshold = o.threshold;
    e.flip = o.flip;
    e.n = n;
    return e;
}

/// Pointer to the class corrections of row i, or null.
inline std::int32_t const* class_row(int_epilogue const& e, std::size_t i) noexcept
{
    return e.class_offset ? e.class_offset + e.row_class[i % e.class_period] * e.n : nullptr;
}

/// Writes `count` sign bits (bit c for column j0 + c) of row i; see the file comment for the word rule.
inline void write_bits(int_epilogue const& e, std::size_t i, std::size_t j0, std::uint64_t bits,
                       std::size_t count) noexcept
{
    std::uint64_t const mask = count >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
    unsigned const shift = static_cast<unsigned>(j0 % 64);
    if (e.flip) bits ^= e.flip[j0 / 64] >> shift;
    bits &= mask;
    std::uint64_t* w = static_cast<std::uint64_t*>(e.data) + i * e.ld + j0 / 64;
    *w = shift == 0 ? bits : (*w & ((std::uint64_t{1} << shift) - 1)) | (bits << shift);
}

/// The transform of `count` values of row i, columns j0 .. j0 + count - 1 (count <= 64, within one 64-column
/// word for sign output), in plain C++: the scalar path and the definition the vector paths must match.
inline void store_scalar(int_epilogue const& e, std::size_t i, std::size_t j0, std::int64_t const* raw,
                         std::size_t count) noexcept
{
    std::int32_t const* cls = class_row(e, i);
    std::uint64_t bits = 0;
    for (std::size_t c = 0; c < count; ++c) {
        std::size_t const j = j0 + c;
        auto v = static_cast<std::int32_t>(raw[c]);
        if (e.column_offset) v += e.column_offset[j];
        if (cls) v += cls[j];
        switch (e.what) {
        case int_epilogue::kind::int32: static_cast<std::int32_t*>(e.data)[i * e.ld + j] = v; break;
        case int_epilogue::kind::float32:
            static_cast<float*>(e.data)[i * e.ld + j] =
                std::fma(static_cast<float>(v), e.scale ? e.scale[j] : 1.0f, e.bias ? e.bias[j] : 0.0f);
            break;
        case int_epilogue::kind::bits: bits |= std::uint64_t{v >= e.threshold[j]} << c; break;
        }
    }
    if (e.what == int_epilogue::kind::bits) write_bits(e, i, j0, bits, count);
}

#if LOWBIT_X86_DISPATCH

/// Lane mask of the first `valid` (1..8) int32 lanes, for AVX2 masked loads and stores.
[[LOWBIT_TARGET_AVX2, gnu::always_inline]] inline __m256i lanes_below(std::size_t valid) noexcept
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

[[LOWBIT_TARGET_AVX2, gnu::always_inline]] inline __m256i load8_epi32(std::int32_t const* p, std::size_t valid,
                                                                          __m256i mask) noexcept
{
    return valid == 8 ? _mm256_loadu_si256(reinterpret_cast<__m256i const*>(p)) : _mm256_maskload_epi32(p, mask);
}

/// The transform of 8 int32 values (the first `valid` of them real) of row i, columns j .. j + 7, with AVX2:
/// stores int32 / float results, and returns the sign bits (bit c for column j + c) for sign output.
/// Bit-identical to store_scalar: integer adds, and vcvtdq2ps + vfmadd round as static_cast + std::fma.
[[LOWBIT_TARGET_AVX2, gnu::always_inline]] inline unsigned store8_avx2(int_epilogue const& e, std::size_t i,
                                                                           std::size_t j, __m256i v,
                                                                           std::size_t valid) noexcept
{
    __m256i const mask = lanes_below(valid);
    if (e.column_offset) v = _mm256_add_epi32(v, load8_epi32(e.column_offset + j, valid, mask));
    if (std::int32_t const* cls = class_row(e, i)) v = _mm256_add_epi32(v, load8_epi32(cls + j, valid, mask));
    switch (e.what) {
    case int_epilogue::kind::int32: {
        std::int32_t* dst = static_cast<std::int32_t*>(e.data) + i * e.ld + j;
        if (valid == 8)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
        else
            _mm256_maskstore_epi32(dst, mask, v);
        return 0;
    }
    case int_epilogue::kind::float32: {
        __m256 const s = e.scale ? (valid == 8 ? _mm256_loadu_ps(e.scale + j) : _mm256_maskload_ps(e.scale + j, mask))
                                 : _mm256_set1_ps(1.0f);
        __m256 const b = e.bias ? (valid == 8 ? _mm256_loadu_ps(e.bias + j) : _mm256_maskload_ps(e.bias + j, mask))
                                : _mm256_setzero_ps();
        __m256 const r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), s, b);
        float* dst = static_cast<float*>(e.data) + i * e.ld + j;
        if (valid == 8)
            _mm256_storeu_ps(dst, r);
        else
            _mm256_maskstore_ps(dst, mask, r);
        return 0;
    }
    case int_epilogue::kind::bits: {
        // v >= t is !(t > v): AVX2 compares only for greater-than.
        __m256i const below = _mm256_cmpgt_epi32(load8_epi32(e.threshold + j, valid, mask), v);
        auto const lt = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(below)));
        return ~lt & ((1u << valid) - 1u);
    }
    }
    return 0;
}

/// The transform of 16 int32 values (the first `valid` of them real) of row i, columns j .. j + 15, with
/// AVX-512 masked loads and stores; returns the sign bits for sign output (bit c for column j + c). `cls`
/// is class_row(e, i), computed once per row by the caller. `Fast`: the caller guarantees 16 valid columns and no offsets, which removes the masks and the tests.
/// Full vectors use plain stores: masked stores are much slower on some CPUs (measured on Zen 5: a binary
/// GEMM spent 20 % of its time in all-ones masked stores of its int32 output).
template <bool Fast>
[[LOWBIT_TARGET_AVX512, gnu::always_inline]] inline unsigned
store16_avx512(int_epilogue const& e, std::int32_t const* cls, std::size_t i, std::size_t j, __m512i v,
               std::size_t valid) noexcept
{
    bool const full = Fast || valid >= 16;
    auto const mask = static_cast<__mmask16>(full ? 0xFFFFu : (1u << valid) - 1u);
    if constexpr (!Fast) {
        if (e.column_offset) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, e.column_offset + j));
        if (cls) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, cls + j));
    }
    switch (e.what) {
    case int_epilogue::kind::int32: {
        std::int32_t* dst = static_cast<std::int32_t*>(e.data) + i * e.ld + j;
        if (full)
            _mm512_storeu_si512(dst, v);
        else
            _mm512_mask_storeu_epi32(dst, mask, v);
        return 0;
    }
    case int_epilogue::kind::float32: {
        __m512 const s = !e.scale ? _mm512_set1_ps(1.0f) : full ? _mm512_loadu_ps(e.scale + j) : _mm512_maskz_loadu_ps(mask, e.scale + j);
        __m512 const b = !e.bias ? _mm512_setzero_ps() : full ? _mm512_loadu_ps(e.bias + j) : _mm512_maskz_loadu_ps(mask, e.bias + j);
        __m512 const r = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(mask, v), s, b);
        float* dst = static_cast<float*>(e.data) + i * e.ld + j;
        if (full)
            _mm512_storeu_ps(dst, r);
        else
            _mm512_mask_storeu_ps(dst, mask, r);
        return 0;
    }
    case int_epilogue::kind::bits: {
        __m512i const t = full ? _mm512_loadu_si512(e.threshold + j) : _mm512_maskz_loadu_epi32(mask, e.threshold + j);
        return _mm512_mask_cmpge_epi32_mask(mask, v, t);
    }
    }
    return 0;
}

/// Whether the AVX-512 epilogue of a tile of `cols` columns (of `tile_cols`) can take the Fast path.
inline bool fast_epilogue(int_epilogue const& e, std::size_t cols, std::size_t tile_cols) noexcept
{
    return !e.column_offset && !e.class_offset && cols == tile_cols;
}

#endif // LOWBIT_X86_DISPATCH

} // namespace lowbit::kernels::detail
