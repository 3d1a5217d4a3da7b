// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: the model lowbit-train trained, rebuilt from a checkpoint's metadata with lowbit-train's own recipe
// code (examples/train/recipe.cpp). Its quantizers are type-erased (ste::any_quantizer) as lowbit-train's are, so
// one model type per activation kind (sign bits, k-bit codes, SAT's rescaled classifier) covers every recipe,
// and deploy::compile reads each quantizer's traits when it meets it (policy_traits, through
// any_quantizer::info): a recipe whose weights or activations have a packed form deploys, any other is refused
// with the reason. Li et al.'s methods without --quantizer hold lowbit::quantizer weights (packed storage for SR
// and R), which cannot be erased: their models are built with the concrete grid, one type per bit width (the
// sign-activation ones here, the float-activation ones in float_activations.cpp).
#include "../train/config.hpp"
#include "../train/recipe.hpp"
#include "common.hpp"
#include "infer.hpp"

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <charconv>
#include <cstddef>
#include <exception>
#include <string>
#include <system_error>

namespace lowbit_infer {

/// The options of @p c as lowbit-train takes them, for messages and reports. --first-last-bits only for a recipe
/// (lowbit_train::uses_recipe): Li et al.'s grid quantizes every layer at --bits, whatever the option says.
inline std::string trained_with(lowbit_train::config const& c)
{
    return std::string(c.model == "cnn" ? "--model cnn " : "") + "--method " + c.method +
           (c.quantizer.empty() ? "" : " --quantizer " + c.quantizer) + " --bits " + std::to_string(c.bits) +
           " --act-bits " + std::to_string(c.act_bits) +
           (lowbit_train::uses_recipe(c) ? " --first-last-bits " + std::to_string(c.first_last_bits) : "");
}

/// The activation quantizer of a recipe with code activations (--act-bits 2..8), for the report: "PACT",
/// "CG-PACT", "DoReFa" or "LSQ"; "" for sign or float activations.
inline std::string activation_name(lowbit_train::config const& c)
{
    if (c.act_bits <= 1 || c.act_bits >= 32) return "";
    std::string const f = lowbit_train::quantizer_family(c);
    if (f == "cg-pact") return "CG-PACT";
    if (f == "dorefa") return "DoReFa";
    if (f == "lsq") return "LSQ";
    return "PACT";
}

/// The lowbit-train options a checkpoint of @p model ("mlp" or "cnn") records: its model keys and recipe
/// (method, quantizer, bits, act_bits, first_last_bits, head, rescale_hidden). A binarized checkpoint written
/// before lowbit-train recorded its recipe is XNOR with --first-last-bits's edge layers.
/// @throws io::io_error naming the file for a checkpoint with float weights (--method fp), stochastic
/// BinaryConnect, or a --first-last-bits that contradicts the file.
inline lowbit_train::config trained_config(options const& o, lowbit::io::archive const& a, std::string const& model)
{
    lowbit_train::config c;
    c.model = model;
    if (!a.meta().contains("quantizer")) {  // before recipe metadata: the binarized MLP or CNN
        c.quantizer = "xnor";
        c.act_bits = 1;
        c.first_last_bits = o.first_last_bits == 1 ? 0 : 8;
        return c;
    }
    auto const number = [&](std::string const& key, int fallback) {
        std::string const v = meta_value(a, key);
        int n = fallback;
        if (!v.empty() && std::from_chars(v.data(), v.data() + v.size(), n).ec != std::errc{})
            throw lowbit::io::io_error{a.source(), "metadata '" + key + "' is '" + v + "', not a number"};
        return n;
    };
    c.method = meta_value(a, "method");
    c.quantizer = meta_value(a, "quantizer");
    c.head = meta_value(a, "head");
    c.bits = number("bits", 1);
    c.act_bits = number("act_bits", 32);
    c.first_last_bits = number("first_last_bits", 8);
    c.rescale_hidden = meta_value(a, "rescale_hidden") == "1";
    c.rounding = meta_value(a, "rounding");
    // Whether lowbit-train trained a lowbit::ste recipe or Li et al.'s grid: its `recipe` metadata (the head alone
    // does not tell: Li et al.'s grid with sign activations has the bias head too), else as lowbit-train decides.
    std::string const recipe = meta_value(a, "recipe");
    if (recipe == "0") c.head.clear();  // as it was given: Li et al.'s grid
    bool const uses_recipe = recipe.empty() ? lowbit_train::uses_recipe(c) : recipe == "1";
    bool const li = !uses_recipe;  // Li et al.'s grid: sign activations (act_bits 1) or float ones
    if (c.method == "fp")
        throw lowbit::io::io_error{a.source(), "trained with lowbit-train " + trained_with(c) + ": float weights have "
                                               "no packed form; train with --method bc, sr, r, sqwa or sat"};
    if (li && c.method == "bc" && c.rounding == "stochastic")
        throw lowbit::io::io_error{a.source(), "trained with lowbit-train " + trained_with(c) + " --rounding "
                                               "stochastic: stochastic BinaryConnect evaluates with the real-valued "
                                               "weights (Courbariaux et al.), which have no packed form; train with "
                                               "--rounding nearest, or --method sr"};
    // The edge layers' bits: a recipe's --first-last-bits (0: --bits); Li et al.'s grid has every layer at --bits.
    int const edge = li || c.first_last_bits == 0 ? c.bits : c.first_last_bits;
    if (o.first_last_bits_given && o.first_last_bits != edge)
        throw lowbit::io::io_error{a.source(), "--first-last-bits " + std::to_string(o.first_last_bits) +
                                                   " contradicts the checkpoint's " +
                                                   (li ? "weights (every layer at --bits " + std::to_string(c.bits) + ")"
                                                       : "first_last_bits " + std::to_string(c.first_last_bits))};
    return c;
}

/// lowbit-train's MLP of Li et al.'s B-bit grid with sign activations (--method bc / sr / r --act-bits 1 without
/// --quantizer) of hidden width @p hidden. Nearest rounding whatever the method's: an SR- or R-trained model's
/// weights are on the grid, where rounding keeps them, and BC evaluates with nearest rounding.
template <int Bits>
auto li_sign_mlp(std::size_t hidden)
{
    lowbit_train::cli_quantizer<Bits, lowbit::nearest_even_t> const q{.clipping = {.bound = 1.0f}};
    return lowbit::nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit},
                           q, q, q, lowbit::ste::sign_activation{}, lowbit::nn::bias_head);
}

/// The same for the CNN.
template <int Bits>
auto li_sign_cnn()
{
    lowbit_train::cli_quantizer<Bits, lowbit::nearest_even_t> const q{.clipping = {.bound = 1.0f}};
    return lowbit::nn::cnn({}, q, q, q, lowbit::ste::sign_activation{}, lowbit::nn::bias_head);
}

/// lowbit-train's MLP of a binarized recipe (--act-bits 1: sign activations) of hidden width @p hidden.
inline auto trained_sign_mlp(lowbit_train::config const& c, std::size_t hidden)
{
    lowbit_train::recipe r = lowbit_train::make_recipe(c);
    return lowbit::nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit},
                           r.weights, r.first, r.last, lowbit::ste::sign_activation{}, lowbit::nn::bias_head);
}

/// lowbit-train's CNN of a binarized recipe (nn::cnn's default widths, as lowbit-train uses them).
inline auto trained_sign_cnn(lowbit_train::config const& c)
{
    lowbit_train::recipe r = lowbit_train::make_recipe(c);
    return lowbit::nn::cnn({}, r.weights, r.first, r.last, lowbit::ste::sign_activation{}, lowbit::nn::bias_head);
}

/// Calls @p run(model) with lowbit-train's MLP of hidden width @p hidden for a recipe with code activations @p c
/// (--act-bits 2..8), with SAT's rescaled classifier for --method sat.
template <class Run>
int with_code_mlp(lowbit_train::config const& c, std::size_t hidden, Run&& run)
{
    namespace nn = lowbit::nn;
    lowbit_train::recipe r = lowbit_train::make_recipe(c);
    auto const build = [&](auto last) {
        return run(nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit}, r.weights,
                           r.first, last, r.acts, nn::bias_head));
    };
    if (c.method == "sat") return build(lowbit::ste::sat_rescale<lowbit::ste::any_quantizer>(r.last));
    return build(r.last);
}

/// The same for lowbit-train's CNN (nn::cnn's default widths, as lowbit-train uses them).
template <class Run>
int with_code_cnn(lowbit_train::config const& c, Run&& run)
{
    namespace nn = lowbit::nn;
    lowbit_train::recipe r = lowbit_train::make_recipe(c);
    auto const build = [&](auto last) { return run(nn::cnn({}, r.weights, r.first, last, r.acts, nn::bias_head)); };
    if (c.method == "sat") return build(lowbit::ste::sat_rescale<lowbit::ste::any_quantizer>(r.last));
    return build(r.last);
}

/// Runs @p f, and names the file and what it was trained with in an invalid_input it throws (deploy::compile's
/// refusal of a quantizer without a packed form).
template <class F>
auto naming_the_recipe(lowbit::io::archive const& a, lowbit_train::config const& c, F&& f)
{
    try {
        return f();
    } catch (lowbit::invalid_input const& e) {
        throw lowbit::io::io_error{a.source(), std::string(e.what()) + " (trained with lowbit-train " +
                                                   trained_with(c) + ")"};
    }
}

} // namespace lowbit_infer
