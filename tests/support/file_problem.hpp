// SPDX-License-Identifier: MIT
#pragma once
// Test support for file formats: read and write a file's bytes, drop an archive entry, and the problem of the
// io_error a loader throws (checking that the error names the file).

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace lowbit::test {

inline std::string read_file(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(std::filesystem::path const& p, std::string const& bytes)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The problem of the io_error that @p load(p) throws, checking that it names p.
template <class Load>
std::string problem(std::filesystem::path const& p, Load load)
{
    try {
        (void)load(p);
    } catch (io::io_error const& e) {
        CHECK(e.file() == p);
        CHECK(std::string(e.what()) == "lowbit: " + p.string() + ": " + e.problem());
        return e.problem();
    }
    FAIL("no io_error for " << p);
    return {};
}

/// @p a without its entry @p name, to damage a file's content behind a valid checksum (the archive has no
/// erase: copy the rest, each in its own type).
inline io::archive without(io::archive const& a, std::string const& name)
{
    io::archive b;
    b.meta() = a.meta();
    for (io::archive_entry const& e : a.entries()) {
        if (e.name == name) continue;
        switch (e.dtype) {
        case io::archive_dtype::float32: b.add(e.name, e.shape, e.values); break;
        case io::archive_dtype::uint8: b.add(e.name, e.shape, a.integers<std::uint8_t>(e.name, e.shape)); break;
        case io::archive_dtype::int8: b.add(e.name, e.shape, a.integers<std::int8_t>(e.name, e.shape)); break;
        case io::archive_dtype::int32: b.add(e.name, e.shape, a.integers<std::int32_t>(e.name, e.shape)); break;
        case io::archive_dtype::uint64: b.add(e.name, e.shape, a.integers<std::uint64_t>(e.name, e.shape)); break;
        }
    }
    return b;
}

inline bool contains(std::string const& s, std::string const& part) { return s.find(part) != std::string::npos; }

} // namespace lowbit::test
