// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The file of a deploy::packed_model: save_packed / load_packed_model write and read it as a lowbit
/// archive (io/archive.hpp: magic `LOWBITCK`, little-endian, CRC-32 at the end, saved atomically) with the
/// metadata `format = lowbit-packed-model`, `packed_version = 1`, `inputs`, `classes` and `steps`, and one
/// record per step under the prefix `step<i>.` (a residual block's steps under `step<i>.<j>.`), its kind in
/// `<p>kind`:
///
/// | `<p>kind`       | entries                                                                                  |
/// |-----------------|------------------------------------------------------------------------------------------|
/// | `input_codes`   | `<p>map` float32 [2]: the input map's scale and offset                                   |
/// | `integer_dense` | `<p>input` (`codes`/`signs`), `<p>in`, the weights (`<p>bits`, `<p>signs` or `<p>codes`, `<p>levels`), `<p>output`: `signs` (`<p>threshold` int32 [out], `<p>flip` uint64), `codes` (`<p>act_bits`, `<p>threshold` int32 [out, 2^k - 1], `<p>negate` uint8 [out]) or `floats` (`<p>affine` uint64 [2 out + 1]: the float64 bits of a, offsets and steps; `<p>bias` float32 [out]) |
/// | `float_dense`   | `<p>in`, the weights, `<p>scale` float32 [out] (each channel's step, when not the default), `<p>bias` float32 (when the layer has one) |
/// | `batch_norm`    | `<p>stats` float32 [4, channels]: running mean, running variance, gamma, beta; `<p>eps` float32 [1] |
/// | `clamp`         | `<p>range` float32 [2]: lo, hi                                                           |
/// | `sign`          | none                                                                                     |
/// | `codes`         | `<p>threshold` float32 [2^k - 1], `<p>values` float32 [2^k]                              |
/// | `decode`        | `<p>values` float32                                                                      |
/// | `residual`      | `<p>steps`, the inner steps under `<p><j>.`, `<p>shortcut` float32 (the shortcut's decode values) |
/// | `nhwc`          | `<p>channels`, `<p>height`, `<p>width`                                                   |
/// | `integer_conv`  | `<p>input`, the geometry (`<p>channels`, `height`, `width`, `filters`, `kernel`, `stride`, `padding`), the weights, `<p>sets` (one per padding class, or 1), `<p>output`: `signs` (`<p>threshold` int32 [sets, out], `<p>flip` uint64 [sets, words]), `codes` (`<p>act_bits`, `<p>threshold` int32 [sets, out, 2^k - 1], `<p>negate` uint8 [sets, out]) or `floats` (`<p>affine` uint64 [sets, 2 out + 1], `<p>bias` float32 [sets, out]) |
/// | `float_conv`    | the geometry, the weights, `<p>scale`, `<p>bias` as for `float_dense`                     |
/// | `max_pool`      | `<p>kernel`, `<p>stride`                                                                 |
/// | `flatten`       | none                                                                                     |
///
/// Files of the four earlier kinds (deploy/packed_kind.hpp) keep their own loaders.
///
/// @code
/// lowbit::deploy::save_packed("model.lbpk", packed);
/// lowbit::deploy::packed_model const again = lowbit::deploy::load_packed_model("model.lbpk");   // throws io::io_error
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/deploy/packed_kind.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::deploy {

/// @brief The `packed_version` of packed model files this lowbit writes and reads.
inline constexpr std::uint32_t packed_model_version = 1;

/// @brief The largest image side (height, width) a convolution or NHWC step of a packed model file may declare,
/// and the most output pixels of all its convolutions together (sixteen maps of 512 x 512). A convolution step
/// builds a table entry per output pixel (deploy::padding_classes) as it is constructed, so a file's sizes are
/// bounded before that: the same bounds as the fixed-shape CNN files (docs/reliability.md).
inline constexpr std::size_t packed_model_max_side = 512;
inline constexpr std::size_t packed_model_max_pixels = std::size_t{1} << 22;

namespace detail {

inline void add_steps(io::archive& a, std::string const& p, std::span<packed_step const> steps);

inline void add_floats(io::archive& a, std::string const& name, std::span<float const> v)
{
    a.add(name, {v.size()}, std::vector<float>(v.begin(), v.end()));
}

/// A convolution's geometry as metadata numbers under prefix @p p.
inline void add_geometry(io::archive& a, std::string const& p, kernels::binary_conv2d_shape const& g)
{
    std::size_t const v[] = {g.channels, g.height, g.width, g.filters, g.kernel, g.stride, g.padding};
    char const* const k[] = {"channels", "height", "width", "filters", "kernel", "stride", "padding"};
    for (std::size_t i = 0; i < 7; ++i) a.meta()[p + k[i]] = std::to_string(v[i]);
}

/// Bounded as packed_model_max_side and packed_model_max_pixels say: @p pixels counts the output pixels of the
/// file's convolutions read so far.
inline kernels::binary_conv2d_shape read_geometry(io::archive const& a, std::string const& p, std::size_t& pixels)
{
    constexpr std::size_t wide = std::size_t{1} << 16;
    kernels::binary_conv2d_shape const g{
        .channels = meta_number(a, p + "channels", wide), .height = meta_number(a, p + "height", packed_model_max_side),
        .width = meta_number(a, p + "width", packed_model_max_side), .filters = meta_number(a, p + "filters", wide),
        .kernel = meta_number(a, p + "kernel", 64), .stride = meta_number(a, p + "stride", 64),
        .padding = meta_number(a, p + "padding", 64)};
    if (g.kernel == 0 || g.stride == 0 || g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel)
        return g;  // the step's constructor says what is wrong
    std::size_t const out = g.out_height() * g.out_width();
    if (out > packed_model_max_pixels - pixels)
        throw io::io_error{a.source(), "'" + p + "' writes a " + std::to_string(g.out_height()) + "x" +
                                           std::to_string(g.out_width()) + " feature map, over the file's limit of " +
                                           std::to_string(packed_model_max_pixels) + " output pixels in all"};
    pixels += out;
    return g;
}

/// An integer layer's float outputs (one set per padding class, @p n channels each) under prefix @p p:
/// `<p>affine` uint64 [sets, 2 n + 1] (the float64 bits of a, offsets, steps) and `<p>bias` float32 [sets, n].
inline void add_affine(io::archive& a, std::string const& p, std::span<affine_output const> sets, std::size_t n)
{
    std::vector<std::uint64_t> bits;
    std::vector<float> bias;
    for (affine_output const& o : sets) {
        bits.push_back(std::bit_cast<std::uint64_t>(o.a));
        for (double const v : o.offset) bits.push_back(std::bit_cast<std::uint64_t>(v));
        for (double const v : o.step) bits.push_back(std::bit_cast<std::uint64_t>(v));
        bias.insert(bias.end(), o.bias.begin(), o.bias.end());
    }
    a.add(p + "affine", {sets.size(), 2 * n + 1}, bits);
    a.add(p + "bias", {sets.size(), n}, bias);
}

inline std::vector<affine_output> read_affine(io::archive const& a, std::string const& p, std::size_t n, std::size_t sets)
{
    std::vector<std::uint64_t> const bits = a.integers<std::uint64_t>(p + "affine", std::vector<std::size_t>{sets, 2 * n + 1});
    std::span<float const> const bias = a.values(p + "bias", std::vector<std::size_t>{sets, n});
    std::vector<affine_output> out(sets);
    for (std::size_t c = 0; c < sets; ++c) {
        std::uint64_t const* b = bits.data() + c * (2 * n + 1);
        out[c].a = std::bit_cast<double>(b[0]);
        for (std::size_t j = 0; j < n; ++j) {
            out[c].offset.push_back(std::bit_cast<double>(b[1 + j]));
            out[c].step.push_back(std::bit_cast<double>(b[1 + n + j]));
        }
        out[c].bias.assign(bias.begin() + static_cast<std::ptrdiff_t>(c * n), bias.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
    }
    return out;
}

/// Sign thresholds, one set per padding class: `<p>threshold` int32 [sets, n], `<p>flip` uint64 [sets, words].
inline void add_sign_sets(io::archive& a, std::string const& p, std::span<sign_thresholds const> sets, std::size_t n)
{
    std::vector<std::int32_t> t;
    std::vector<std::uint64_t> f;
    for (sign_thresholds const& s : sets) {
        t.insert(t.end(), s.threshold.begin(), s.threshold.end());
        f.insert(f.end(), s.flip.begin(), s.flip.end());
    }
    a.add(p + "threshold", {sets.size(), n}, t);
    a.add(p + "flip", {sets.size(), kernels::words_for_bits(n)}, f);
}

inline std::vector<sign_thresholds> read_sign_sets(io::archive const& a, std::string const& p, std::size_t n, std::size_t sets)
{
    std::size_t const words = kernels::words_for_bits(n);
    std::vector<std::int32_t> const t = a.integers<std::int32_t>(p + "threshold", std::vector<std::size_t>{sets, n});
    std::vector<std::uint64_t> const f = a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{sets, words});
    std::vector<sign_thresholds> out(sets);
    for (std::size_t c = 0; c < sets; ++c) {
        out[c].threshold.assign(t.begin() + static_cast<std::ptrdiff_t>(c * n), t.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
        out[c].flip.assign(f.begin() + static_cast<std::ptrdiff_t>(c * words), f.begin() + static_cast<std::ptrdiff_t>((c + 1) * words));
    }
    return out;
}

inline void add_step(io::archive& a, std::string const& p, packed_step const& s)
{
    auto kind = [&](char const* k) { a.meta()[p + "kind"] = k; };
    std::visit(
        [&]<class S>(S const& step) {
            if constexpr (std::is_same_v<S, input_codes_step>) {
                kind("input_codes");
                a.add(p + "map", {2}, {step.map.scale, step.map.offset});
            } else if constexpr (std::is_same_v<S, integer_dense_step>) {
                kind("integer_dense");
                a.meta()[p + "input"] = step.input() == layer_input::codes ? "codes" : "signs";
                a.meta()[p + "in"] = std::to_string(step.in());
                add_weights(a, p, step.weights());
                std::visit(
                    [&]<class O>(O const& o) {
                        if constexpr (std::is_same_v<O, sign_thresholds>) {
                            a.meta()[p + "output"] = "signs";
                            a.add(p + "threshold", {o.size()}, o.threshold);
                            a.add(p + "flip", {o.flip.size()}, o.flip);
                        } else if constexpr (std::is_same_v<O, level_thresholds>) {
                            a.meta()[p + "output"] = "codes";
                            add_level_thresholds(a, p, p, std::span<level_thresholds const>(&o, 1), false);
                        } else {
                            a.meta()[p + "output"] = "floats";
                            std::vector<std::uint64_t> bits{std::bit_cast<std::uint64_t>(o.a)};
                            for (double const v : o.offset) bits.push_back(std::bit_cast<std::uint64_t>(v));
                            for (double const v : o.step) bits.push_back(std::bit_cast<std::uint64_t>(v));
                            a.add(p + "affine", {bits.size()}, bits);
                            add_floats(a, p + "bias", o.bias);
                        }
                    },
                    step.stage());
            } else if constexpr (std::is_same_v<S, float_dense_step>) {
                kind("float_dense");
                a.meta()[p + "in"] = std::to_string(step.in());
                add_weights(a, p, step.weights());
                if (!step.weights().scale.empty()) add_floats(a, p + "scale", step.weights().scale);
                if (!step.bias().empty()) add_floats(a, p + "bias", step.bias());
            } else if constexpr (std::is_same_v<S, batch_norm_step>) {
                kind("batch_norm");
                nn::batch_norm<2> n = step.norm;
                std::vector<float> stats;
                for (std::span<float> v : {n.running_mean(), n.running_var(), n.gamma(), n.beta()})
                    stats.insert(stats.end(), v.begin(), v.end());
                a.add(p + "stats", {4, n.options().channels}, stats);
                a.add(p + "eps", {1}, {n.options().eps});
            } else if constexpr (std::is_same_v<S, clamp_step>) {
                kind("clamp");
                a.add(p + "range", {2}, {step.lo, step.hi});
            } else if constexpr (std::is_same_v<S, sign_step>) {
                kind("sign");
            } else if constexpr (std::is_same_v<S, codes_step>) {
                kind("codes");
                add_floats(a, p + "threshold", step.threshold);
                add_floats(a, p + "values", step.values);
            } else if constexpr (std::is_same_v<S, decode_step>) {
                kind("decode");
                add_floats(a, p + "values", step.values);
            } else if constexpr (std::is_same_v<S, nhwc_step>) {
                kind("nhwc");
                a.meta()[p + "channels"] = std::to_string(step.channels);
                a.meta()[p + "height"] = std::to_string(step.height);
                a.meta()[p + "width"] = std::to_string(step.width);
            } else if constexpr (std::is_same_v<S, integer_conv_step>) {
                kind("integer_conv");
                a.meta()[p + "input"] = step.input() == layer_input::codes ? "codes" : "signs";
                add_geometry(a, p, step.shape());
                add_weights(a, p, step.weights());
                std::size_t const n = step.shape().filters;
                std::visit(
                    [&]<class O>(O const& o) {
                        a.meta()[p + "sets"] = std::to_string(o.size());
                        if constexpr (std::is_same_v<O, std::vector<sign_thresholds>>) {
                            a.meta()[p + "output"] = "signs";
                            add_sign_sets(a, p, o, n);
                        } else if constexpr (std::is_same_v<O, std::vector<level_thresholds>>) {
                            a.meta()[p + "output"] = "codes";
                            add_level_thresholds(a, p, p, o, true);
                        } else {
                            a.meta()[p + "output"] = "floats";
                            add_affine(a, p, o, n);
                        }
                    },
                    step.stage());
            } else if constexpr (std::is_same_v<S, float_conv_step>) {
                kind("float_conv");
                add_geometry(a, p, step.shape());
                add_weights(a, p, step.weights());
                if (!step.weights().scale.empty()) add_floats(a, p + "scale", step.weights().scale);
                if (!step.bias().empty()) add_floats(a, p + "bias", step.bias());
            } else if constexpr (std::is_same_v<S, max_pool_step>) {
                kind("max_pool");
                a.meta()[p + "kernel"] = std::to_string(step.window.kernel);
                a.meta()[p + "stride"] = std::to_string(step.window.stride);
            } else if constexpr (std::is_same_v<S, flatten_step>) {
                kind("flatten");
            } else {
                kind("residual");
                add_floats(a, p + "shortcut", step.shortcut.values);
                add_steps(a, p, step.inner);
            }
        },
        s.op);
}

inline void add_steps(io::archive& a, std::string const& p, std::span<packed_step const> steps)
{
    a.meta()[p + "steps"] = std::to_string(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) add_step(a, p + std::to_string(i) + ".", steps[i]);
}

/// The float32 vector entry @p name of any length (at most @p max values).
inline std::vector<float> read_floats(io::archive const& a, std::string const& name, std::size_t max)
{
    std::vector<std::size_t> const& shape = entry_shape(a, name);
    std::size_t const n = shape.size() == 1 ? shape[0] : 0;
    if (shape.size() != 1 || n > max)
        throw io::io_error{a.source(), "entry '" + name + "' is not a vector of at most " + std::to_string(max) +
                                           " values"};
    std::span<float const> const v = a.values(name, shape);
    return {v.begin(), v.end()};
}

inline std::vector<packed_step> read_steps(io::archive const& a, std::string const& p, int depth, std::size_t& pixels);

/// The step under prefix @p p; throws invalid_input for values its constructor refuses.
inline packed_step read_step(io::archive const& a, std::string const& p, int depth, std::size_t& pixels)
{
    std::string const k = io::meta_text(a, p + "kind");
    constexpr std::size_t wide = std::size_t{1} << 30;
    if (k == "input_codes") {
        std::span<float const> const m = a.values(p + "map", std::vector<std::size_t>{2});
        input_map const map{.scale = m[0], .offset = m[1]};
        map.check();
        return {input_codes_step{map}};
    }
    if (k == "integer_dense") {
        std::string const input = io::meta_text(a, p + "input");
        if (input != "codes" && input != "signs")
            throw io::io_error{a.source(), "metadata '" + p + "input' is '" + input + "', not 'codes' or 'signs'"};
        packed_weights w = read_weights(a, p, meta_number(a, p + "in", wide));
        std::size_t const n = w.out;
        std::string const output = io::meta_text(a, p + "output");
        integer_dense_step::output out;
        if (output == "signs") {
            out = sign_thresholds{a.integers<std::int32_t>(p + "threshold", std::vector<std::size_t>{n}),
                                  a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{kernels::words_for_bits(n)})};
        } else if (output == "codes") {
            out = std::move(read_level_thresholds(a, p, p, n, 1, false).front());
        } else if (output == "floats") {
            std::vector<std::uint64_t> const bits = a.integers<std::uint64_t>(p + "affine", std::vector<std::size_t>{2 * n + 1});
            affine_output o;
            o.a = std::bit_cast<double>(bits[0]);
            for (std::size_t j = 0; j < n; ++j) {
                o.offset.push_back(std::bit_cast<double>(bits[1 + j]));
                o.step.push_back(std::bit_cast<double>(bits[1 + n + j]));
            }
            std::span<float const> const b = a.values(p + "bias", std::vector<std::size_t>{n});
            o.bias.assign(b.begin(), b.end());
            out = std::move(o);
        } else {
            throw io::io_error{a.source(), "metadata '" + p + "output' is '" + output +
                                               "', not 'signs', 'codes' or 'floats'"};
        }
        return {integer_dense_step(input == "codes" ? layer_input::codes : layer_input::signs, std::move(w), std::move(out))};
    }
    if (k == "float_dense") {
        packed_weights w = read_weights(a, p, meta_number(a, p + "in", wide));
        if (a.find(p + "scale") != nullptr) w.scale = read_floats(a, p + "scale", w.out);
        std::vector<float> bias;
        if (a.find(p + "bias") != nullptr) bias = read_floats(a, p + "bias", w.out);
        return {float_dense_step(std::move(w), std::move(bias))};
    }
    if (k == "batch_norm") {
        std::vector<std::size_t> const& shape = entry_shape(a, p + "stats");
        if (shape.size() != 2 || shape[0] != 4)
            throw io::io_error{a.source(), "entry '" + p + "stats' is not [4, channels]"};
        std::size_t const c = shape[1];
        std::span<float const> const s = a.values(p + "stats", shape);
        float const eps = a.values(p + "eps", std::vector<std::size_t>{1})[0];
        nn::batch_norm<2> n({.channels = c, .eps = eps});
        std::span<float> const dst[] = {n.running_mean(), n.running_var(), n.gamma(), n.beta()};
        for (std::size_t r = 0; r < 4; ++r) std::copy(s.begin() + static_cast<std::ptrdiff_t>(r * c),
                                                      s.begin() + static_cast<std::ptrdiff_t>((r + 1) * c), dst[r].begin());
        return {batch_norm_step{std::move(n)}};
    }
    if (k == "clamp") {
        std::span<float const> const r = a.values(p + "range", std::vector<std::size_t>{2});
        return {clamp_step{r[0], r[1]}};
    }
    if (k == "sign") return {sign_step{}};
    if (k == "codes") {
        codes_step s{read_floats(a, p + "threshold", 255), read_floats(a, p + "values", 256)};
        if (s.values.size() != s.threshold.size() + 1 || !std::is_sorted(s.threshold.begin(), s.threshold.end()))
            throw invalid_input(p + ": codes need ascending thresholds and one value more than thresholds");
        return {std::move(s)};
    }
    if (k == "decode") return {decode_step{read_floats(a, p + "values", 256)}};
    if (k == "nhwc") {
        return {nhwc_step{meta_number(a, p + "channels", std::size_t{1} << 16),
                          meta_number(a, p + "height", packed_model_max_side),
                          meta_number(a, p + "width", packed_model_max_side)}};
    }
    if (k == "integer_conv" || k == "float_conv") {
        kernels::binary_conv2d_shape const g = read_geometry(a, p, pixels);
        packed_weights w = read_weights(a, p, g.kernel * g.kernel * g.channels);
        if (w.out != g.filters)
            throw io::io_error{a.source(), "'" + p + "' has weights of " + std::to_string(w.out) + " filters, not " +
                                               std::to_string(g.filters)};
        if (k == "float_conv") {
            if (a.find(p + "scale") != nullptr) w.scale = read_floats(a, p + "scale", w.out);
            std::vector<float> bias;
            if (a.find(p + "bias") != nullptr) bias = read_floats(a, p + "bias", w.out);
            return {float_conv_step(g, std::move(w), std::move(bias))};
        }
        std::string const input = io::meta_text(a, p + "input");
        if (input != "codes" && input != "signs")
            throw io::io_error{a.source(), "metadata '" + p + "input' is '" + input + "', not 'codes' or 'signs'"};
        std::size_t const sets = meta_number(a, p + "sets", 64);
        std::size_t const n = g.filters;
        std::string const output = io::meta_text(a, p + "output");
        integer_conv_step::output out;
        if (output == "signs")
            out = read_sign_sets(a, p, n, sets);
        else if (output == "codes")
            out = read_level_thresholds(a, p, p, n, sets, true);
        else if (output == "floats")
            out = read_affine(a, p, n, sets);
        else
            throw io::io_error{a.source(), "metadata '" + p + "output' is '" + output + "', not 'signs', 'codes' or 'floats'"};
        return {integer_conv_step(input == "codes" ? layer_input::codes : layer_input::signs, g, std::move(w), std::move(out))};
    }
    if (k == "max_pool") return {max_pool_step{{.kernel = meta_number(a, p + "kernel", 64), .stride = meta_number(a, p + "stride", 64)}}};
    if (k == "flatten") return {flatten_step{}};
    if (k == "residual") {
        if (depth >= 16) throw io::io_error{a.source(), "residual blocks nest deeper than 16 at '" + p + "'"};
        residual_step r;
        r.shortcut.values = read_floats(a, p + "shortcut", 256);
        r.inner = read_steps(a, p, depth + 1, pixels);
        return {std::move(r)};
    }
    throw io::io_error{a.source(), "metadata '" + p + "kind' is '" + k + "', which is no packed step"};
}

inline std::vector<packed_step> read_steps(io::archive const& a, std::string const& p, int depth, std::size_t& pixels)
{
    std::size_t const count = meta_number(a, p + "steps", 4096);
    std::vector<packed_step> steps;
    for (std::size_t i = 0; i < count; ++i) steps.push_back(read_step(a, p + std::to_string(i) + ".", depth, pixels));
    return steps;
}

} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
inline io::archive to_archive(packed_model const& m)
{
    io::archive a;
    a.meta()["format"] = std::string(packed_model_format);
    a.meta()["packed_version"] = std::to_string(packed_model_version);
    a.meta()["inputs"] = std::to_string(m.inputs());
    a.meta()["classes"] = std::to_string(m.classes());
    detail::add_steps(a, "step", m.steps());
    return a;
}

/// @brief The packed model held by @p a (as io::load_archive read it).
/// @throws io::io_error naming a.source() when it is no packed model, a packed model of another kind (naming its
/// loader), of another packed_version, or inconsistent (a missing entry, a shape or type mismatch, a step
/// whose values its constructor refuses).
inline packed_model packed_model_from_archive(io::archive const& a)
{
    detail::expect_kind(a, packed_model_kind::model);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_model_version)
        throw io::io_error{a.source(), "unsupported packed model version " + std::to_string(version) +
                                           ", and this lowbit reads packed version " +
                                           std::to_string(packed_model_version)};
    std::size_t const inputs = detail::meta_number(a, "inputs", std::size_t{1} << 30);
    std::size_t const classes = detail::meta_number(a, "classes", std::size_t{1} << 30);
    try {
        std::size_t pixels = 0;
        return packed_model(inputs, classes, detail::read_steps(a, "step", 0, pixels));
    } catch (invalid_input const& e) {
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically).
/// @throws io::io_error naming @p file when it cannot be written.
inline void save_packed(std::filesystem::path const& file, packed_model const& m) { io::save_archive(file, to_archive(m)); }

/// @brief Reads a packed model written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file, truncated,
/// checksum mismatch) and of packed_model_from_archive.
inline packed_model load_packed_model(std::filesystem::path const& file)
{
    return packed_model_from_archive(io::load_archive(file));
}

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_model const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
