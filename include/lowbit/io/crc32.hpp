// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief io::crc32: the CRC-32 of zlib, PNG and gzip (reflected polynomial 0xEDB88320, initial value and
/// final xor 0xFFFFFFFF), table-driven. Checkpoints end with it. Written here rather than taken from zlib so
/// that the core library keeps needing no zlib (only lowbit::data links it).

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace lowbit::io {

namespace detail {
/// crc32_table[b]: the CRC register after shifting the byte b through it, one bit at a time.
inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t c = b;
        for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[b] = c;
    }
    return t;
}();
} // namespace detail

/// @brief The CRC-32 of @p data. Pass the CRC of the bytes before as @p crc to continue a running checksum:
/// `crc32(b, crc32(a))` is the CRC-32 of a followed by b. `crc32("123456789") == 0xCBF43926`.
constexpr std::uint32_t crc32(std::span<std::byte const> data, std::uint32_t crc = 0) noexcept
{
    std::uint32_t c = ~crc;
    for (std::byte const b : data) c = detail::crc32_table[(c ^ static_cast<std::uint32_t>(b)) & 0xFFu] ^ (c >> 8);
    return ~c;
}

/// @brief The CRC-32 of the bytes of @p text.
constexpr std::uint32_t crc32(std::string_view text, std::uint32_t crc = 0) noexcept
{
    std::uint32_t c = ~crc;
    for (char const ch : text)
        c = detail::crc32_table[(c ^ static_cast<std::uint32_t>(static_cast<unsigned char>(ch))) & 0xFFu] ^ (c >> 8);
    return ~c;
}

} // namespace lowbit::io
