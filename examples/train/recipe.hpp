// SPDX-License-Identifier: MIT
#pragma once
// lowbit-train: the fake-quantizer recipe of --quantizer / --act-bits / --first-last-bits / --method sat, chosen at
// run time. The concrete lowbit::ste quantizers are named (and checked) in recipe.cpp and type-erased into
// ste::any_quantizer, so one model type per method covers every choice instead of one per bit width x quantizer.

#include "config.hpp"

#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>

#include <string>

namespace lowbit_train {

/// Weight quantizer of Li et al.'s methods without --quantizer (fp, bc, sr, r): the grid of the PyTorch peer, 2^b
/// levels over [-1, 1] (binary at 1 bit); lowbit-infer builds the same to deploy their sign-activation models.
template <int Bits, class Rounding>
using cli_quantizer = lowbit::quantizer<Bits, Rounding, lowbit::clip::fixed_range, lowbit::grid::symmetric_even>;

struct recipe {
    lowbit::ste::any_quantizer weights;  ///< hidden layers
    lowbit::ste::any_quantizer first;    ///< first layer (input images are not quantized)
    lowbit::ste::any_quantizer last;     ///< classifier; sat wraps it in ste::sat_rescale
    lowbit::ste::any_quantizer acts;     ///< input activations of every layer but the first (empty: float)
};

/// Whether the run trains with lowbit::ste fake quantizers (--quantizer given, or --method sat).
bool uses_recipe(config const& c);

/// The quantizer family the run uses (--quantizer, or the method's default: cg-pact for sat, uniform for sqwa).
std::string quantizer_family(config const& c);

/// Checks the combination of options; returns an error message, or "" if it is valid.
std::string check_recipe(config const& c);

/// The quantizers the options name. Call check_recipe first.
recipe make_recipe(config const& c);

} // namespace lowbit_train
