// SPDX-License-Identifier: MIT
// libFuzzer harness: deploy::load_packed_model (`lowbit-packed-model` files, the general path's one format) on
// resealed bytes (fuzz_input.hpp), so that mutations reach the step records behind the archive's checksum. A
// model that loads runs one row of zeros, which finds a file that loads into a model its forward() cannot run.
// io::io_error is the documented outcome for a bad file; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/io/io_error.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    try {
        auto const m = lowbit::deploy::load_packed_model(
            lowbit::fuzz::write_input("packed-model", lowbit::fuzz::resealed(std::span(data, size))));
        // Small inputs only: a valid model of a large input is legitimate, and its forward() slow under ASan.
        if (m.inputs() <= 65536) {
            xt::xtensor<float, 2> const zeros = xt::zeros<float>({std::size_t{1}, m.inputs()});
            (void)m.forward(zeros);
        }
    } catch (lowbit::io::io_error const&) {
    }
    return 0;
}
