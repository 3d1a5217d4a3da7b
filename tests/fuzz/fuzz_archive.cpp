// SPDX-License-Identifier: MIT
// libFuzzer harness: io::load_archive on arbitrary bytes, as they are (the magic, size and checksum checks)
// and resealed (the entry table and payloads behind a valid checksum); every entry of an archive that loads is
// read back in its own type. io::io_error is the documented outcome for a bad file; anything else escapes and
// is a finding.
#include "fuzz_input.hpp"

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace {

void load(std::span<std::uint8_t const> bytes)
{
    using namespace lowbit::io;
    try {
        archive const a = load_archive(lowbit::fuzz::write_input("archive", bytes));
        for (archive_entry const& e : a.entries()) {
            switch (e.dtype) {
            case archive_dtype::float32: (void)a.values(e.name, e.shape); break;
            case archive_dtype::uint8: (void)a.integers<std::uint8_t>(e.name, e.shape); break;
            case archive_dtype::int8: (void)a.integers<std::int8_t>(e.name, e.shape); break;
            case archive_dtype::int32: (void)a.integers<std::int32_t>(e.name, e.shape); break;
            case archive_dtype::uint64: (void)a.integers<std::uint64_t>(e.name, e.shape); break;
            }
        }
    } catch (io_error const&) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    std::span<std::uint8_t const> const bytes(data, size);
    load(bytes);
    load(lowbit::fuzz::resealed(bytes));
    return 0;
}
