// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::summary(packed model): the model_summary of a deploy::packed_model, a row per packed step (a
/// residual block's steps indented under it). A packed layer's row holds the weights
/// at their bits (as the trained model's summary counts them, so that the two agree on every weight layer's
/// bits and bytes) plus what replaced BatchNorm and the activation: integer thresholds (4 bytes each) and sign
/// flips, or the float outputs' scales and biases. Its activation bits are those of the codes it reads: 8 for the
/// first layer's input codes, 1 for sign bits, k for k-bit codes. `stored_bytes` is the packed file's size.
///
/// @code
/// lowbit::deploy::packed_model const packed = lowbit::deploy::compile(model);
/// std::fputs(lowbit::summary(packed).table().c_str(), stdout);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/model_summary.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::deploy::detail {

/// The row of a packed layer with weights @p w reading @p activation_bits codes, with @p extra_bytes of
/// thresholds, scales and biases (counted as parameters at 4 bytes each, rounded up).
inline layer_summary packed_row(std::string name, std::vector<std::size_t> output_shape, packed_weights const& w,
                                int activation_bits, std::size_t extra_bytes, std::uint64_t macs)
{
    layer_summary r{.name = std::move(name), .output_shape = std::move(output_shape), .weight_bits = w.bits,
                    .activation_bits = activation_bits, .weights = w.in * w.out};
    std::size_t const extra_values = (extra_bytes + 3) / 4;
    r.parameters = r.weights + extra_values;
    r.float_bytes = 4 * r.weights + extra_bytes;
    r.packed_bytes = r.weight_bytes() + extra_bytes;
    r.macs[static_cast<std::size_t>(mac_kind_of(w.bits, activation_bits))] = macs;
    return r;
}

inline std::size_t bytes_of(sign_thresholds const& t) noexcept { return 4 * t.threshold.size() + 8 * t.flip.size(); }
inline std::size_t bytes_of(level_thresholds const& t) noexcept { return 4 * t.threshold.size() + t.negate.size(); }

inline std::string dense_name(std::size_t in, std::size_t out, char const* what)
{
    return "dense " + std::to_string(in) + " -> " + std::to_string(out) + what;
}

/// What flows between packed steps, for their summary rows: the bits, and the channels or features per row of a
/// height x width map (1 x 1: flat).
struct step_flow {
    int bits = 32;
    std::size_t features = 0, height = 1, width = 1;

    std::vector<std::size_t> shape() const
    {
        return height * width == 1 ? std::vector<std::size_t>{features} : std::vector<std::size_t>{features, height, width};
    }
};

/// The bytes of an integer layer's output stage (thresholds, or float outputs: a, offsets, steps, biases).
inline std::size_t stage_bytes(sign_thresholds const& t, std::size_t) noexcept { return bytes_of(t); }
inline std::size_t stage_bytes(level_thresholds const& t, std::size_t) noexcept { return bytes_of(t); }
inline std::size_t stage_bytes(affine_output const&, std::size_t n) noexcept { return 8 * (2 * n + 1) + 4 * n; }

/// The output of an integer layer writing @p kind: its name's suffix and its bits.
inline std::pair<std::string, int> stage_name(encoding kind, int code_bits)
{
    if (kind == encoding::signs) return {" (thresholds, sign)", 1};
    if (kind == encoding::codes) return {" (thresholds, " + std::to_string(code_bits) + "-bit codes)", code_bits};
    return {" (integer, float outputs)", 32};
}

/// The rows of packed model steps @p steps from @p f; returns what flows after them.
inline step_flow step_rows(std::span<packed_step const> steps, step_flow f, std::vector<layer_summary>& rows,
                           std::string const& indent)
{
    for (packed_step const& p : steps) {
        std::visit(
            [&]<class S>(S const& step) {
                auto plain = [&](std::string name, int out_bits) {
                    rows.push_back({.name = indent + std::move(name), .output_shape = f.shape(), .activation_bits = f.bits});
                    f.bits = out_bits;
                };
                if constexpr (std::is_same_v<S, input_codes_step>) {
                    plain("input codes (8-bit)", 8);
                } else if constexpr (std::is_same_v<S, nhwc_step>) {
                    f.features = step.channels;
                    f.height = step.height;
                    f.width = step.width;
                    plain("images (NHWC)", 32);
                } else if constexpr (std::is_same_v<S, integer_dense_step>) {
                    std::size_t const n = step.out();
                    int const code_bits = std::visit(
                        [](auto const& o) {
                            if constexpr (std::is_same_v<std::decay_t<decltype(o)>, level_thresholds>)
                                return static_cast<int>(std::bit_width(static_cast<unsigned>(o.levels)));
                            else
                                return 0;
                        },
                        step.stage());
                    auto const [what, out_bits] = stage_name(step.writes(), code_bits);
                    std::size_t const extra = std::visit([&](auto const& o) { return stage_bytes(o, n); }, step.stage());
                    rows.push_back(packed_row(indent + dense_name(step.in(), n, what.c_str()), {n}, step.weights(),
                                              f.bits, extra, static_cast<std::uint64_t>(step.in()) * n));
                    f = {out_bits, n, 1, 1};
                } else if constexpr (std::is_same_v<S, float_dense_step>) {
                    std::size_t const n = step.out();
                    rows.push_back(packed_row(indent + dense_name(step.in(), n, " (float activations)"), {n},
                                              step.weights(), 32, 4 * (step.bias().size() + step.weights().scale.size()),
                                              static_cast<std::uint64_t>(step.in()) * n));
                    f = {32, n, 1, 1};
                } else if constexpr (std::is_same_v<S, integer_conv_step> || std::is_same_v<S, float_conv_step>) {
                    kernels::binary_conv2d_shape const& g = step.shape();
                    std::string what = " (float activations)";
                    int out_bits = 32;
                    std::size_t extra = 4 * step.weights().scale.size();
                    if constexpr (std::is_same_v<S, integer_conv_step>) {
                        int const code_bits = std::holds_alternative<std::vector<level_thresholds>>(step.stage())
                                                  ? static_cast<int>(std::bit_width(static_cast<unsigned>(
                                                        std::get<std::vector<level_thresholds>>(step.stage()).front().levels)))
                                                  : 0;
                        std::tie(what, out_bits) = stage_name(step.writes(), code_bits);
                        extra = std::visit(
                            [&](auto const& sets) {
                                std::size_t b = 0;
                                for (auto const& o : sets) b += stage_bytes(o, g.filters);
                                return b;
                            },
                            step.stage());
                    } else {
                        extra += 4 * step.bias().size();
                    }
                    std::string const name = "conv2d " + std::to_string(g.kernel) + "x" + std::to_string(g.kernel) + " " +
                                             std::to_string(g.channels) + " -> " + std::to_string(g.filters) + what;
                    auto const macs = static_cast<std::uint64_t>(g.out_height() * g.out_width()) * g.filters * g.patch_bits();
                    rows.push_back(packed_row(indent + name, {g.filters, g.out_height(), g.out_width()}, step.weights(),
                                              f.bits, extra, macs));
                    f = {out_bits, g.filters, g.out_height(), g.out_width()};
                } else if constexpr (std::is_same_v<S, max_pool_step>) {
                    f.height = step.window.out(f.height);
                    f.width = step.window.out(f.width);
                    plain("max_pool2d " + std::to_string(step.window.kernel) + "x" + std::to_string(step.window.kernel), f.bits);
                } else if constexpr (std::is_same_v<S, flatten_step>) {
                    f.features *= f.height * f.width;
                    f.height = f.width = 1;
                    plain("flatten", f.bits);
                } else if constexpr (std::is_same_v<S, batch_norm_step>) {
                    std::size_t const c = step.norm.options().channels;
                    rows.push_back({.name = indent + "batch_norm", .output_shape = f.shape(), .activation_bits = f.bits,
                                    .parameters = 2 * c, .float_bytes = 16 * c, .packed_bytes = 16 * c});
                } else if constexpr (std::is_same_v<S, clamp_step>) {
                    plain(step.lo == 0.0f && std::isinf(step.hi) ? "relu" : "clamp", 32);
                } else if constexpr (std::is_same_v<S, sign_step>) {
                    plain("sign", 1);
                } else if constexpr (std::is_same_v<S, codes_step>) {
                    int const k = static_cast<int>(std::bit_width(step.threshold.size()));
                    plain(std::to_string(k) + "-bit codes", k);
                } else if constexpr (std::is_same_v<S, decode_step>) {
                    plain("decode", 32);
                } else {
                    rows.push_back({.name = indent + "residual", .output_shape = f.shape(), .activation_bits = f.bits});
                    step_flow const inner = step_rows(step.inner, f, rows, indent + "  ");
                    rows.push_back({.name = indent + "add shortcut", .output_shape = inner.shape(), .activation_bits = 32});
                    f = inner;
                    f.bits = 32;
                }
            },
            p.op);
    }
    return f;
}

} // namespace lowbit::deploy::detail

namespace lowbit {

/// @brief The summary of a packed model of any shape: a row per step (a residual block's steps indented under it).
inline model_summary summary(deploy::packed_model const& m)
{
    model_summary s;
    (void)deploy::detail::step_rows(m.steps(), {.bits = 32, .features = m.inputs()}, s.layers, "");
    s.stored_bytes = deploy::packed_bytes(m);
    return s;
}

} // namespace lowbit
