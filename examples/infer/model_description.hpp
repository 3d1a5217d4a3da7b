// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: what a deploy::packed_model is, read from its steps -- lowbit-train's MLP or CNN with sign or k-bit
// code activations ("mlp", "cnn", "mlp-kbit", "cnn-kbit", with their widths and bits), or any other model
// ("packed_model", with its step count) -- plus what the steps cannot tell of the checkpoint it came from
// (lowbit-train's options, the activation quantizer, the float model's bytes), which lowbit-infer --save-packed
// records in the packed file's metadata. A checkpoint's report and its packed file's are made by the same
// function from the same steps, so that the two describe the model alike.

#include "common.hpp"

#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit_infer {

/// What a packed model does not hold of the checkpoint it was compiled from. lowbit-infer --save-packed
/// writes it into the packed file's metadata (the keys below, which deploy::packed_model_from_archive does
/// not read), so that --packed reports the recipe and the compression as --checkpoint did; a packed file
/// written otherwise has none of it.
struct provenance {
    std::string trained_with;     ///< lowbit-train's options (trained_with()), "" when unknown
    std::string activations;      ///< code activations' quantizer ("PACT", "CG-PACT", "DoReFa", "LSQ"), "" when unknown
    std::size_t float_bytes = 0;  ///< the trained model's checkpoint bytes, 0 when unknown
};

inline constexpr char const* trained_with_key = "lowbit_train.options";
inline constexpr char const* activations_key = "lowbit_train.activations";
inline constexpr char const* float_bytes_key = "lowbit_train.float_bytes";

/// @p a (deploy::to_archive of a packed model) with @p p in its metadata.
inline lowbit::io::archive with_provenance(lowbit::io::archive a, provenance const& p)
{
    if (!p.trained_with.empty()) a.meta()[trained_with_key] = p.trained_with;
    if (!p.activations.empty()) a.meta()[activations_key] = p.activations;
    if (p.float_bytes != 0) a.meta()[float_bytes_key] = std::to_string(p.float_bytes);
    return a;
}

/// The provenance a packed file @p a records (empty fields for what it does not).
/// @throws io::io_error naming the file for a float byte count that is not a number.
inline provenance provenance_of(lowbit::io::archive const& a)
{
    provenance p{.trained_with = meta_value(a, trained_with_key), .activations = meta_value(a, activations_key)};
    std::string const bytes = meta_value(a, float_bytes_key);
    if (!bytes.empty()) {
        auto const [end, ec] = std::from_chars(bytes.data(), bytes.data() + bytes.size(), p.float_bytes);
        if (ec != std::errc{} || end != bytes.data() + bytes.size())
            throw lowbit::io::io_error{a.source(), std::string("metadata '") + float_bytes_key + "' is '" + bytes +
                                                       "', not a byte count"};
    }
    return p;
}

/// A weight layer of a packed model (a dense or convolution step, integer or float) and what reaches it.
struct weight_layer {
    bool conv = false;
    std::size_t out = 0;  ///< output features, or filters
    int bits = 0;         ///< its weights' bits
    lowbit::deploy::activation_shape reads{};
};

/// What the steps of a packed model say about its shape.
struct step_walk {
    std::vector<weight_layer> layers;
    std::size_t channels = 0, height = 0, width = 0;  ///< a CNN's input images (its NHWC step); 0: flat input
    bool residual = false;
    /// The steps after which a layer's codes are written (an integer layer with level thresholds, or a code
    /// quantizer on floats; not the input codes, not a pooling of codes), with the top code of each.
    std::vector<std::pair<std::size_t, std::size_t>> code_steps;
};

inline step_walk walk_steps(lowbit::deploy::packed_model const& p)
{
    namespace deploy = lowbit::deploy;
    step_walk w;
    deploy::activation_shape a{.kind = deploy::encoding::floats, .features = p.inputs()};
    for (std::size_t i = 0; i < p.steps().size(); ++i) {
        deploy::packed_step const& s = p.steps()[i];
        deploy::activation_shape const before = a;
        a = deploy::shape_after(s, a);
        std::visit(
            [&]<class S>(S const& step) {
                if constexpr (std::is_same_v<S, deploy::integer_dense_step> ||
                              std::is_same_v<S, deploy::float_dense_step>)
                    w.layers.push_back(
                        {.conv = false, .out = step.out(), .bits = step.weights().bits, .reads = before});
                if constexpr (std::is_same_v<S, deploy::integer_conv_step> ||
                              std::is_same_v<S, deploy::float_conv_step>)
                    w.layers.push_back(
                        {.conv = true, .out = step.shape().filters, .bits = step.weights().bits, .reads = before});
                if constexpr (std::is_same_v<S, deploy::nhwc_step>) {
                    w.channels = step.channels;
                    w.height = step.height;
                    w.width = step.width;
                }
                if constexpr (std::is_same_v<S, deploy::residual_step>) w.residual = true;
                if constexpr (std::is_same_v<S, deploy::integer_dense_step> ||
                              std::is_same_v<S, deploy::integer_conv_step> || std::is_same_v<S, deploy::codes_step>)
                    if (a.kind == deploy::encoding::codes && a.codes > 0) w.code_steps.emplace_back(i + 1, a.codes - 1);
            },
            s.op);
    }
    return w;
}

/// The report's description of a packed model.
struct model_description {
    std::string kind = "packed_model";  ///< "mlp", "cnn", "mlp-kbit", "cnn-kbit" or "packed_model"
    /// What every hidden weight layer reads: sign bits or codes (then deploy::audit compares them value by
    /// value), floats for anything else (float activations, or a mix).
    lowbit::deploy::encoding hidden = lowbit::deploy::encoding::floats;
    int first_last_bits = 0;  ///< the first layer's weight bits (lowbit-train's last layer has the same)
    int bits = 0;             ///< the second weight layer's, lowbit-train's --bits
    int act_bits = 0;         ///< the hidden codes' bits (1: signs)
    std::string text;         ///< after "model " on the report's first line
    std::string json_shape;   ///< the JSON head's fields after "mode"
    std::vector<std::pair<std::size_t, std::size_t>> code_steps;  ///< step_walk's, for inner_codes()
};

/// The description of @p p: lowbit-train's MLP (784-H-H-10) or CNN (nn::cnn's four convolutions of 1x28x28 images,
/// a hidden dense layer and 10 classes) when its first layer reads the input's 8-bit codes and every later one
/// sign bits, or every later one codes of the same width; any other model as "packed_model" with its step count.
/// @p from names what the steps do not hold (the activation quantizer, lowbit-train's options).
inline model_description describe(lowbit::deploy::packed_model const& p, provenance const& from)
{
    using lowbit::deploy::encoding;
    step_walk const w = walk_steps(p);
    model_description d;
    d.code_steps = w.code_steps;
    std::vector<weight_layer> const& l = w.layers;
    auto const z = [](std::size_t v) { return std::to_string(v); };
    bool const encoded = !w.residual && l.size() >= 2 && l[0].reads.kind == encoding::codes &&
                         l[0].reads.codes == 256 && l[1].reads.kind != encoding::floats &&
                         std::ranges::all_of(l.begin() + 1, l.end(), [&](weight_layer const& x) {
                             return x.reads.kind == l[1].reads.kind && x.reads.codes == l[1].reads.codes;
                         });
    bool const mlp = encoded && l.size() == 3 && !l[0].conv && !l[1].conv && !l[2].conv && l[0].out == l[1].out &&
                     w.channels == 0 && p.inputs() == 784 && p.classes() == 10;
    bool const cnn = encoded && l.size() == 6 && l[0].conv && l[1].conv && l[2].conv && l[3].conv && !l[4].conv &&
                     !l[5].conv && l[0].out == l[1].out && l[2].out == l[3].out && w.channels == 1 && w.height == 28 &&
                     w.width == 28 && p.classes() == 10;
    if (!mlp && !cnn) {
        d.text = (w.channels != 0 ? "cnn " + z(w.channels) + "x" + z(w.height) + "x" + z(w.width) + ", "
                                  : z(p.inputs()) + "-...-" + z(p.classes()) + ", ") +
                 z(p.steps().size()) + " packed steps" +
                 (from.trained_with.empty() ? std::string() : " (lowbit-train " + from.trained_with + ")");
        d.json_shape = "\"steps\": " + z(p.steps().size()) + ", ";
        return d;
    }
    bool const codes = l[1].reads.kind == encoding::codes;
    d.hidden = l[1].reads.kind;
    d.kind = std::string(mlp ? "mlp" : "cnn") + (codes ? "-kbit" : "");
    d.first_last_bits = l[0].bits;
    d.bits = l[1].bits;
    d.act_bits = codes ? static_cast<int>(std::bit_width(l[1].reads.codes - 1)) : 1;
    std::string const shape = mlp ? "784-" + z(l[0].out) + "-" + z(l[1].out) + "-10"
                                  : "cnn 1x28x28 (conv " + z(l[0].out) + "-" + z(l[1].out) + ", conv " + z(l[2].out) +
                                        "-" + z(l[3].out) + ", dense " + z(l[4].out) + "-10";
    std::string const widths = mlp ? "\"hidden\": " + z(l[0].out)
                                   : "\"widths\": [" + z(l[0].out) + ", " + z(l[2].out) + ", " + z(l[4].out) + "]";
    if (!codes) {  // sign activations: the binarized models' head, which names no activation or hidden bits
        d.text = shape + (mlp ? "" : ")");
        d.json_shape = widths + ", \"first_last_bits\": " + std::to_string(d.first_last_bits) + ", ";
        return d;
    }
    d.text = shape + (mlp ? " (" : "; ") + std::to_string(d.act_bits) + "-bit " +
             (from.activations.empty() ? std::string("code") : from.activations) + " activations, " +
             (d.bits == 1 ? std::string("binary") : std::to_string(d.bits) + "-bit") + " hidden weights, " +
             std::to_string(d.first_last_bits) + "-bit first/last)";
    d.json_shape = widths + ", \"act_bits\": " + std::to_string(d.act_bits) + ", \"bits\": " + std::to_string(d.bits) +
                   ", \"first_last_bits\": " + std::to_string(d.first_last_bits) + ", ";
    return d;
}

/// The packed model's hidden codes strictly between 0 and the top code over @p x (the levels are exercised, not
/// just the clipping ends): every code layer of @p d.code_steps, before any pooling, 1000 images at a time.
inline std::size_t inner_codes(lowbit::deploy::packed_model const& p, model_description const& d,
                               xt::xtensor<float, 2> const& x)
{
    std::size_t inner = 0;
    for (std::size_t s = 0; s < x.shape(0); s += 1000) {
        xt::xtensor<float, 2> const part = xt::view(x, xt::range(s, std::min(x.shape(0), s + 1000)), xt::all());
        lowbit::deploy::activations a = p.run(part, 0);
        std::size_t done = 0;
        for (auto const& [after, top] : d.code_steps) {
            p.advance(a, done, after);
            done = after;
            inner += static_cast<std::size_t>(
                std::ranges::count_if(a.codes, [top](std::uint8_t v) { return v != 0 && std::size_t{v} != top; }));
        }
    }
    return inner;
}

/// Fills @p r's model description and JSON head from @p d (the file's kind in "mode").
inline void describe(report& r, model_description const& d, options const& o)
{
    r.model = d.text;
    r.json_head = "\"model\": \"" + d.kind + "\", \"mode\": \"" + mode_of(o) + "\", " + d.json_shape;
    if (d.hidden == lowbit::deploy::encoding::codes) {
        r.hidden_values = "codes";
        r.differing_key = "hidden_code_diffs";
        r.images_key = "images_with_code_diffs";
    }
}

} // namespace lowbit_infer
