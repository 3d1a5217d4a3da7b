// SPDX-License-Identifier: MIT
#pragma once
// Test support: IDX files (plain and gzip-compressed) written from bytes, for the data/ readers' tests.

#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace lowbit::test {

using bytes = std::vector<std::uint8_t>;

/// The bytes of an IDX file: magic 0x0000TTDD, big-endian sizes, then @p data as is.
inline bytes make_idx(std::vector<std::uint32_t> const& shape, bytes const& data, std::uint8_t type = 0x08)
{
    bytes out{0, 0, type, static_cast<std::uint8_t>(shape.size())};
    for (auto size : shape)
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(size >> shift));
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

/// Writes @p content to @p file as is; returns @p file.
inline std::filesystem::path write_raw(std::filesystem::path const& file, bytes const& content)
{
    std::ofstream out{file, std::ios::binary};
    out.write(reinterpret_cast<char const*>(content.data()), static_cast<std::streamsize>(content.size()));
    REQUIRE(out.good());
    return file;
}

/// @p content gzip-compressed by zlib.
inline bytes gzip_bytes(bytes const& content)
{
    temp_dir dir{"gzip"};
    auto const file = dir / "tmp.gz";
    gzFile gz = gzopen(file.c_str(), "wb");
    REQUIRE(gz != nullptr);
    if (!content.empty())
        REQUIRE(gzwrite(gz, content.data(), static_cast<unsigned>(content.size())) == static_cast<int>(content.size()));
    REQUIRE(gzclose(gz) == Z_OK);
    std::ifstream in{file, std::ios::binary};
    return bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Writes @p content gzip-compressed to @p file; returns @p file.
inline std::filesystem::path write_gz(std::filesystem::path const& file, bytes const& content)
{
    return write_raw(file, gzip_bytes(content));
}

} // namespace lowbit::test
