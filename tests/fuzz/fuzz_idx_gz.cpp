// SPDX-License-Identifier: MIT
// libFuzzer harness: the IDX reader's gzip path. The first input byte picks the mode: even, the rest is IDX
// content that the harness gzips (the reader's header and growth logic on a stream whose size it cannot know in
// advance); odd, the rest is written as it is (a damaged or lying gzip stream). data::data_error is the
// documented outcome for a bad file; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/data/data_error.hpp>
#include <lowbit/data/idx.hpp>

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

/// @p content as a gzip stream (deflate with a gzip wrapper: window bits 15 + 16).
std::vector<std::uint8_t> gzip(std::span<std::uint8_t const> content)
{
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
    std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(content.size())) + 32);
    z.next_in = const_cast<Bytef*>(content.data());
    z.avail_in = static_cast<uInt>(content.size());
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    if (size == 0) return 0;
    std::span<std::uint8_t const> const rest(data + 1, size - 1);
    std::vector<std::uint8_t> const bytes =
        data[0] % 2 == 0 ? gzip(rest) : std::vector<std::uint8_t>(rest.begin(), rest.end());
    auto const& file = lowbit::fuzz::write_input("idx-gz", bytes);
    try {
        (void)lowbit::data::read_idx_images(file);
    } catch (lowbit::data::data_error const&) {
    }
    try {
        (void)lowbit::data::read_idx_labels(file);
    } catch (lowbit::data::data_error const&) {
    }
    return 0;
}
