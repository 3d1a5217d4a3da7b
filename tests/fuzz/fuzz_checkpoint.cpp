// SPDX-License-Identifier: MIT
// libFuzzer harness: train::load_checkpoint of resealed bytes (fuzz_input.hpp) into a small nn::mlp, the model
// of the seed corpus (make_corpus.cpp). io::io_error is the documented outcome for a bad file or one that does
// not fit the model; anything else escapes and is a finding.
#include "fuzz_input.hpp"

#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static auto model =
        lowbit::nn::mlp<lowbit::nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    try {
        (void)lowbit::train::load_checkpoint(
            lowbit::fuzz::write_input("checkpoint", lowbit::fuzz::resealed(std::span(data, size))), model,
            {{"model", "mlp"}});
    } catch (lowbit::io::io_error const&) {
    }
    return 0;
}
