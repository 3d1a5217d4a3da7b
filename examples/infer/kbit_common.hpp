// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: what the runners of models with k-bit code activations (kbit.cpp: the MLP; kbit_cnn.cpp: the CNN)
// share. Their checkpoints' models are lowbit-train's own (trained_model.hpp): every recipe whose quantizers have
// a packed form deploys -- PACT, CG-PACT, DoReFa or unsigned LSQ activations of 1..8 bits; XNOR, DoReFa or SAT's
// rescaled weights -- and deploy::compile refuses any other, naming the quantizer it cannot pack.
#include "common.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace lowbit_infer {

/// The activation quantizer of a recipe with code activations, for the report ("PACT", "CG-PACT", "DoReFa",
/// "LSQ"; a packed file does not record it: "k-bit").
inline std::string activation_name(lowbit_train::config const* c)
{
    if (c == nullptr) return "k-bit";
    std::string const f = lowbit_train::quantizer_family(*c);
    if (f == "cg-pact") return "CG-PACT";
    if (f == "dorefa") return "DoReFa";
    if (f == "lsq") return "LSQ";
    return "PACT";
}

/// The packed model's hidden codes strictly between 0 and n = 2^act_bits - 1 over the test set (the levels are
/// exercised, not just the clipping ends), 1000 images at a time.
template <class Packed, std::size_t Rank>
std::size_t inner_codes(Packed const& packed, xt::xtensor<std::uint8_t, Rank> const& codes, int act_bits)
{
    auto const top = static_cast<std::uint8_t>((1 << act_bits) - 1);
    std::size_t inner = 0;
    for (std::size_t s = 0; s < codes.shape(0); s += 1000) {
        xt::xtensor<std::uint8_t, Rank> const part = xt::view(codes, xt::range(s, std::min(codes.shape(0), s + 1000)));
        auto const count = [&](xt::xtensor<std::uint8_t, 2> const& layer) {
            inner += static_cast<std::size_t>(std::ranges::count_if(layer, [top](std::uint8_t v) { return v != 0 && v != top; }));
        };
        if constexpr (requires { packed.trace(part); }) {
            for (auto const& layer : packed.trace(part)) count(layer);
        } else {
            for (std::size_t layer = 0; layer + 1 < packed.layers().size(); ++layer) count(packed.codes(part, layer));
        }
    }
    return inner;
}

} // namespace lowbit_infer
