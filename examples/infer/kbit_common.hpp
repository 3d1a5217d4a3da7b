// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: what the runners of k-bit PACT models (kbit.cpp: the MLP; kbit_cnn.cpp: the CNN) share -- the
// recipes they compile, read from a lowbit-train checkpoint's metadata, the concrete quantizer types of each
// recipe, and the code-by-code comparison of a fake-quant PACT activation with the packed model's codes.
//
// deploy::compile needs the model's concrete quantizer types, and every type is one more instantiation of the
// model, its fake-quant forward and the compiler, so lowbit-infer builds a fixed set of recipes -- the ones
// docs/deploy.md measures -- and refuses every other checkpoint with a message that names the file, what it was
// trained with and this set (never loading its weights into a model of other quantizers, which would succeed
// and compile a different model):
//
//   lowbit-train [--model cnn] --method bc --quantizer xnor --bits 1 --act-bits 2|4 --first-last-bits 8
//   lowbit-train [--model cnn] --method bc --quantizer pact|cg-pact --bits 2 --act-bits 2|4 --first-last-bits 8
//
// i.e. XNOR or 2-bit DoReFa hidden weights, 8-bit DoReFa first and last layers, 2- or 4-bit PACT activations,
// the bias head. CG-PACT differs from PACT only in alpha's gradient, so its model is compiled as PACT's: the
// forward pass, which is all inference runs, is the same (deploy::compile takes either).
#include "common.hpp"
#include "infer.hpp"

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

/// The models of k-bit runners: lowbit-train --model mlp or cnn.
enum class kbit_model { mlp, cnn };

/// The hidden-layer weights of the supported recipes.
enum class hidden_weights { xnor, dorefa2 };

struct kbit_recipe {
    hidden_weights hidden = hidden_weights::xnor;
    int act_bits = 2;
    bool calibrated = false;  // CG-PACT, compiled as PACT
};

/// The supported set, as the refusals state it.
inline std::string supported_kbit_recipes(kbit_model m)
{
    return std::string("lowbit-infer compiles PACT ") + (m == kbit_model::cnn ? "CNNs of lowbit-train --model cnn"
                                                                                : "MLPs of lowbit-train") +
           " --method bc --act-bits 2 or 4 --first-last-bits 8 with --quantizer xnor --bits 1, or --quantizer pact "
           "(or cg-pact) --bits 2";
}

/// The recipe of a lowbit-train checkpoint with k-bit activations (its metadata: method, quantizer, bits,
/// act_bits, first_last_bits, head), if it is one of the supported set for model @p m.
/// @throws io::io_error naming the file, what it was trained with and the supported set otherwise.
inline kbit_recipe kbit_recipe_of(options const& o, lowbit::io::archive const& a, kbit_model m)
{
    std::string const supported = supported_kbit_recipes(m);
    for (char const* key : {"method", "quantizer", "bits", "act_bits", "first_last_bits"})
        if (!a.meta().contains(key))
            throw lowbit::io::io_error{a.source(), std::string("metadata '") + key + "' is missing: not a checkpoint "
                                                   "of lowbit-train's recipes (--save-model); " + supported};
    std::string const method = meta_value(a, "method"), bits = meta_value(a, "bits"), act = meta_value(a, "act_bits"),
                      edge = meta_value(a, "first_last_bits"), head = meta_value(a, "head");
    // lowbit-train writes the --quantizer it was given; without one, --method sat uses cg-pact.
    std::string const quantizer = meta_value(a, "quantizer").empty() && method == "sat" ? "cg-pact"
                                                                                        : meta_value(a, "quantizer");
    std::string const trained = std::string(m == kbit_model::cnn ? "--model cnn " : "") + "--method " + method +
                                (quantizer.empty() ? "" : " --quantizer " + quantizer) + " --bits " + bits +
                                " --act-bits " + act + " --first-last-bits " + edge;
    auto const refuse = [&](std::string const& why) {
        return lowbit::io::io_error{a.source(), why + " (trained with lowbit-train " + trained + "); " + supported};
    };
    if (method == "sat")
        throw refuse("--method sat rescales the last layer's weights (ste::sat_rescale), which deploy::compile has "
                     "no packed form for");
    if (method != "bc") throw refuse("--method " + method + " is not among the compiled recipes");
    if (act == "32") throw refuse("the activations are float (--act-bits 32), not PACT codes");
    if (quantizer == "dorefa" || quantizer == "lsq")
        throw refuse("--quantizer " + quantizer + " quantizes the activations with " +
                     (quantizer == "lsq" ? "LSQ's learned step" : "DoReFa") + ", not PACT");
    if (quantizer == "uniform" || quantizer == "twn")
        throw refuse("--quantizer " + quantizer + " weights have no packed form (deploy::compile packs XNOR and "
                     "DoReFa weights)");
    if (act != "2" && act != "4") throw refuse("--act-bits " + act + " is not among the compiled widths 2 and 4");
    if (edge != "8")
        throw refuse("--first-last-bits " + edge + " is not among the compiled edge layers (8-bit DoReFa)");
    kbit_recipe r{.act_bits = act == "2" ? 2 : 4, .calibrated = quantizer == "cg-pact"};
    if (quantizer == "xnor" && bits == "1")
        r.hidden = hidden_weights::xnor;
    else if ((quantizer == "pact" || quantizer == "cg-pact") && bits == "2")
        r.hidden = hidden_weights::dorefa2;
    else
        throw refuse("--quantizer " + quantizer + " --bits " + bits + " is not among the compiled hidden weights");
    if (!head.empty() && head != "bias")
        throw refuse("--head " + head + " is not the bias head PACT " + (m == kbit_model::cnn ? "CNNs" : "MLPs") +
                     " use");
    if (o.first_last_bits_given && o.first_last_bits != 8)
        throw lowbit::io::io_error{a.source(), "--first-last-bits " + std::to_string(o.first_last_bits) +
                                                   " contradicts the checkpoint's first_last_bits 8"};
    return r;
}

/// Calls @p run(std::type_identity<HiddenWeights>{}, std::integral_constant<int, ActBits>{}) with the concrete
/// types of recipe @p r and returns its result: the one place that lists the compiled recipes' types.
template <class Run>
int with_kbit_types(kbit_recipe const& r, Run&& run)
{
    using xnor = std::type_identity<lowbit::ste::xnor_weight<>>;
    using dorefa2 = std::type_identity<lowbit::ste::dorefa_weight<2>>;
    using two = std::integral_constant<int, 2>;
    using four = std::integral_constant<int, 4>;
    if (r.hidden == hidden_weights::xnor) return r.act_bits == 2 ? run(xnor{}, two{}) : run(xnor{}, four{});
    return r.act_bits == 2 ? run(dorefa2{}, two{}) : run(dorefa2{}, four{});
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
