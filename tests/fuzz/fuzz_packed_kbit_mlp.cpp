// SPDX-License-Identifier: MIT
// libFuzzer harness: deploy::load_packed_kbit (`lowbit-packed-kbit-mlp` files) on resealed bytes
// (fuzz_input.hpp), so that mutations reach the model reader behind the archive's checksum. A model that loads
// runs one image of zero codes, which finds a file that loads into a model its forward() cannot run.
// io::io_error is the documented outcome for a bad file; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/io/io_error.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    try {
        auto const m = lowbit::deploy::load_packed_kbit(
            lowbit::fuzz::write_input("packed-kbit-mlp", lowbit::fuzz::resealed(std::span(data, size))));
        // Small inputs only: a valid model of a large image is legitimate, and its forward() slow under ASan.
        if (m.inputs() <= 65536)
            (void)m.forward(xt::xtensor<std::uint8_t, 2>::from_shape({1, m.inputs()}));
    } catch (lowbit::io::io_error const&) {
    }
    return 0;
}
