// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Bit matrices: the operand format of the binary kernels (binary_gemm, binary_int8_gemm,
/// binary_conv2d), and conversions from floats and from lowbit's packed 1-bit codes.
///
/// Row r of a bit matrix is `ceil(cols / 64)` 64-bit words starting at `data + r * ld`; column c of the row
/// is bit `c % 64` of word `c / 64`. On a little-endian machine that is the byte stream of
/// kernels/reference/pack.hpp (element c at bit c % 8 of byte c / 8) with each row starting on a word, so a
/// row of a `qtensor` of binary codes is one of these rows when its length is a multiple of 64, and
/// bitstream_to_rows converts the general case.
///
/// Bit 1 means +1 and bit 0 means -1, as lowbit's 1-bit binary grid (grid::binary, code 1 = +a): the
/// dot product of two rows of k bits is k - 2 * popcount(a xor b). That formula does not depend on the
/// convention; binary_int8_gemm, binary_conv2d's padding and sign_output do.
///
/// The kernels ignore the bits of a row past `cols` (they mask the last word when they pack), so rows may
/// carry garbage there.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lowbit::kernels {

/// @brief Words of a bit row of `bits` columns: ceil(bits / 64).
constexpr std::size_t words_for_bits(std::size_t bits) noexcept { return (bits + 63) / 64; }

/// @brief A read-only view of a row-major bit matrix: `rows` rows of `cols` bits, rows `ld` words apart.
struct bit_matrix_view {
    std::uint64_t const* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;  ///< bits per row
    std::size_t ld = 0;    ///< 64-bit words between rows (>= words_for_bits(cols))
};

/// @brief Bit c of row r (tests and references).
inline bool bit_at(bit_matrix_view const& m, std::size_t r, std::size_t c) noexcept
{
    return ((m.data[r * m.ld + c / 64] >> (c % 64)) & 1u) != 0;
}

/// @brief Binarizes a row-major float matrix (`rows` x `cols`, rows `ldx` floats apart) to bit rows of
/// `ld` words: bit 1 (+1) where !(x < 0), i.e. for x >= 0, -0 and NaN, as lowbit's binary quantizer with
/// nearest rounding maps them to +a. Bits past `cols` in the last word are 0.
inline void pack_sign_rows(float const* x, std::size_t rows, std::size_t cols, std::size_t ldx, std::uint64_t* out,
                           std::size_t ld) noexcept
{
    std::size_t const words = words_for_bits(cols);
    for (std::size_t r = 0; r < rows; ++r) {
        float const* src = x + r * ldx;
        std::uint64_t* dst = out + r * ld;
        for (std::size_t w = 0; w < words; ++w) {
            std::size_t const end = std::min(cols, 64 * w + 64);
            std::uint64_t word = 0;
            for (std::size_t c = 64 * w; c < end; ++c) word |= std::uint64_t{!(src[c] < 0.0f)} << (c % 64);
            dst[w] = word;
        }
    }
}

/// @brief Copies `rows` x `cols` 1-bit codes from lowbit's packed bitstream (element (r, c) at stream bit
/// r * cols + c, as quantize_pack writes a row-major tensor) into bit rows of `ld` words; bits past `cols`
/// in the last word are 0.
inline void bitstream_to_rows(std::uint8_t const* stream, std::size_t rows, std::size_t cols, std::uint64_t* out,
                              std::size_t ld) noexcept
{
    std::size_t const words = words_for_bits(cols);
    for (std::size_t r = 0; r < rows; ++r) {
        std::size_t const first = r * cols;  // stream bit of the row's column 0
        std::uint64_t* dst = out + r * ld;
        for (std::size_t w = 0; w < words; ++w) {
            std::size_t const bit = first + 64 * w, count = std::min<std::size_t>(64, cols - 64 * w);
            // 9 bytes hold any 64 bits that start mid-byte; read only the bytes of the stream that exist.
            std::size_t const last_byte = (first + cols - 1) / 8;  // the row's last byte
            std::size_t const nbytes = std::min<std::size_t>(9, last_byte - bit / 8 + 1);
            std::uint8_t buf[9] = {};
            std::memcpy(buf, stream + bit / 8, nbytes);
            std::uint64_t lo = 0;
            std::memcpy(&lo, buf, 8);
            unsigned const s = static_cast<unsigned>(bit % 8);
            std::uint64_t v = s == 0 ? lo : (lo >> s) | (std::uint64_t{buf[8]} << (64 - s));
            if (count < 64) v &= (std::uint64_t{1} << count) - 1;
            dst[w] = v;
        }
    }
}

} // namespace lowbit::kernels
