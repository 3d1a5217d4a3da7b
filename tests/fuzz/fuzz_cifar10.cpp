// SPDX-License-Identifier: MIT
// libFuzzer harness: data::read_cifar10_file on a file of arbitrary bytes. data::data_error is the documented
// outcome for a bad file; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/data/cifar10.hpp>
#include <lowbit/data/data_error.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    try {
        (void)lowbit::data::read_cifar10_file(lowbit::fuzz::write_input("cifar10", std::span(data, size)));
    } catch (lowbit::data::data_error const&) {
    }
    return 0;
}
