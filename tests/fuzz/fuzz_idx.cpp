// SPDX-License-Identifier: MIT
// libFuzzer harness: the IDX reader on a plain file of arbitrary bytes, through read_idx_images (rank 3, into an
// xtensor) and read_idx_labels (rank 1), which both run read_idx. data::data_error is the documented outcome
// for a bad file; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/data/data_error.hpp>
#include <lowbit/data/idx.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    auto const& file = lowbit::fuzz::write_input("idx", std::span(data, size));
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
