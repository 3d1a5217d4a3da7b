// SPDX-License-Identifier: MIT
#pragma once
// What every libFuzzer harness of tests/fuzz/ shares: the loaders read paths, so each input is written to one
// scratch file per process (rewritten every run, removed at exit); and the archive-based harnesses can reseal an
// input (declared size and CRC-32 recomputed), since a mutated archive otherwise never gets past its checksum
// and the fuzzer would test crc32() instead of the parser and the model readers behind it.

#include <lowbit/io/crc32.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace lowbit::fuzz {

/// The scratch file of this process: `<tmp>/lowbit-fuzz-<name>-<pid>`, removed when the process exits normally.
/// (Per process, so that harnesses running side by side, or libFuzzer's -jobs, never share one.)
inline std::filesystem::path const& scratch_file(char const* name)
{
    static std::filesystem::path const file = [&] {
        auto p = std::filesystem::temp_directory_path() /
                 ("lowbit-fuzz-" + std::string(name) + "-" + std::to_string(::getpid()));
        static std::filesystem::path to_remove;
        to_remove = p;
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove(to_remove, ec);
        });
        return p;
    }();
    return file;
}

/// Writes @p bytes to the scratch file and returns its path; aborts (a harness bug, not a finding) when the
/// file cannot be written.
inline std::filesystem::path const& write_input(char const* name, std::span<std::uint8_t const> bytes)
{
    std::filesystem::path const& file = scratch_file(name);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) std::abort();
    return file;
}

/// @p bytes with the archive header's file size (bytes 20..27) and the trailing CRC-32 made to match, so the
/// loader goes on to parse the table and the content. Inputs too short for a header and a checksum are kept.
inline std::vector<std::uint8_t> resealed(std::span<std::uint8_t const> bytes)
{
    std::vector<std::uint8_t> out(bytes.begin(), bytes.end());
    if (out.size() < 32) return out;
    auto const size = static_cast<std::uint64_t>(out.size());
    for (std::size_t i = 0; i < 8; ++i) out[20 + i] = static_cast<std::uint8_t>(size >> (8 * i));
    std::uint32_t const crc = io::crc32(std::as_bytes(std::span(out).first(out.size() - 4)));
    for (std::size_t i = 0; i < 4; ++i) out[out.size() - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    return out;
}

} // namespace lowbit::fuzz
