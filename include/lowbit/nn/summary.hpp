// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::summary(model, input_shape): the model_summary of a trained (or untrained) lowbit::nn model,
/// read layer by layer through the customization point `summarize(layer, nn::summary_context&)`, which each
/// layer type provides as a function found by argument-dependent lookup; a user's own layer provides one in its
/// own namespace. A weight's bits are read through lowbit::describe (policy_traits, or ste::any_quantizer's
/// run-time info) and the weight's state: a weight that the training method keeps in float (full_precision)
/// counts 32 bits whatever its policy.
///
/// @code
/// auto model = lowbit::nn::mlp({.inputs = 784, .hidden = 1024}, lowbit::ste::xnor_weight<>{},
///                              lowbit::ste::dorefa_weight<8>{}, lowbit::ste::dorefa_weight<8>{},
///                              lowbit::ste::sign_activation{}, lowbit::nn::bias_head);
/// lowbit::model_summary const s = lowbit::summary(model, {784});
/// std::fputs(s.table().c_str(), stdout);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/model_summary.hpp>
#include <lowbit/nn/avg_pool2d.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/hardtanh.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/residual.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/quant/policy_info.hpp>

#include <cstddef>
#include <functional>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::nn {

/// @brief What summarize() reads and writes: the per-sample shape and the bits of the activations between
/// layers, and the rows so far.
class summary_context {
public:
    explicit summary_context(std::vector<std::size_t> input_shape) : shape_(std::move(input_shape)) {}

    std::span<std::size_t const> shape() const noexcept { return shape_; }
    /// The number of values per sample.
    std::size_t features() const noexcept
    {
        return std::accumulate(shape_.begin(), shape_.end(), std::size_t{1}, std::multiplies<>{});
    }
    /// The bits of the current activations (float_bits until a quantizer makes them fewer).
    int activation_bits() const noexcept { return bits_; }

    /// @throws invalid_input naming @p layer unless the current activations have the rank and sizes @p want
    /// (0: any size in that place).
    void expect(std::string const& layer, std::vector<std::size_t> const& want) const
    {
        bool ok = want.size() == shape_.size();
        for (std::size_t i = 0; ok && i < want.size(); ++i) ok = want[i] == 0 || want[i] == shape_[i];
        if (!ok)
            throw invalid_input("lowbit::summary: " + layer + " expects inputs of shape " + text(want) + " per sample, "
                                "the layer before gives " + text(shape_));
    }

    /// Adds @p row; its output shape becomes the current shape, and @p output_bits the current bits.
    void add(layer_summary row, int output_bits)
    {
        shape_ = row.output_shape;
        bits_ = output_bits;
        rows_.push_back(std::move(row));
    }
    /// Sets the current shape and bits without a row (the end of a residual block's inner branch).
    void restore(std::vector<std::size_t> shape, int bits)
    {
        shape_ = std::move(shape);
        bits_ = bits;
    }

    std::vector<layer_summary> take_rows() && { return std::move(rows_); }

    /// The row of a layer holding weight @p w (count values, @p out output channels) and @p extra float values
    /// (a bias): its bits, parameters, bytes and the multiply-accumulates @p macs at the current activation bits.
    template <class P>
    layer_summary weight_row(std::string name, std::vector<std::size_t> output_shape, weight<P>& w,
                             std::size_t out, std::size_t extra, std::uint64_t macs) const
    {
        std::optional<policy_info> const info = describe(w.policy());
        bool const quantized = info && info->quantizes() && w.quantized_size() != 0;
        layer_summary r{.name = std::move(name), .output_shape = std::move(output_shape),
                        .weight_bits = quantized ? info->bits : float_bits, .activation_bits = bits_,
                        .weights = w.size()};
        std::size_t learned = 0;  // a learned bound (LSQ's step) of the weight's policy
        w.for_each_parameter([&](parameter& p) { learned += p.value.size(); });
        r.parameters = w.size() + extra + learned;
        r.float_bytes = 4 * r.parameters;
        // Packed: the weights at their bits, a step per channel (or per tensor), the float values.
        std::size_t const steps = quantized ? (info->per_channel ? out : 1) : 0;
        r.packed_bytes = r.weight_bytes() + 4 * (steps + extra + learned);
        r.macs[static_cast<std::size_t>(mac_kind_of(r.weight_bits, bits_))] = macs;
        return r;
    }

private:
    static std::string text(std::span<std::size_t const> s)
    {
        std::string t = "[";
        for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + (s[i] == 0 ? std::string("*") : std::to_string(s[i]));
        return t + "]";
    }

    std::vector<std::size_t> shape_;
    int bits_ = float_bits;
    std::vector<layer_summary> rows_;
};

// ---- the library's layers ----

template <class W>
void summarize(dense<W>& d, summary_context& c)
{
    dense_options const& o = d.options();
    c.expect("dense " + std::to_string(o.in) + " -> " + std::to_string(o.out), {o.in});
    c.add(c.weight_row("dense " + std::to_string(o.in) + " -> " + std::to_string(o.out), {o.out}, d.weight(), o.out,
                       d.bias().size(), static_cast<std::uint64_t>(o.in) * o.out),
          float_bits);
}

template <class W>
void summarize(conv2d<W>& l, summary_context& c)
{
    conv2d_options const& o = l.options();
    std::string const name = "conv2d " + std::to_string(o.kernel) + "x" + std::to_string(o.kernel) + " " +
                             std::to_string(o.in) + " -> " + std::to_string(o.out);
    c.expect(name, {o.in, 0, 0});
    std::size_t const h = c.shape()[1] + 2 * o.padding, w = c.shape()[2] + 2 * o.padding;
    if (h < o.kernel || w < o.kernel) c.expect(name + " (input smaller than the kernel)", {o.in, o.kernel, o.kernel});
    std::size_t const ho = (h - o.kernel) / o.stride + 1, wo = (w - o.kernel) / o.stride + 1;
    auto const macs = static_cast<std::uint64_t>(ho * wo) * o.out * o.in * o.kernel * o.kernel;
    c.add(c.weight_row(name, {o.out, ho, wo}, l.weight(), o.out, l.bias().size(), macs), float_bits);
}

template <std::size_t Rank>
void summarize(batch_norm<Rank>& bn, summary_context& c)
{
    std::size_t const ch = bn.options().channels;
    std::vector<std::size_t> want{ch};
    if constexpr (Rank == 4) want = {ch, 0, 0};
    c.expect("batch_norm", want);
    std::size_t const params = bn.options().affine ? 2 * ch : 0;
    layer_summary r{.name = "batch_norm", .output_shape = {c.shape().begin(), c.shape().end()},
                    .activation_bits = c.activation_bits(), .parameters = params};
    r.float_bytes = r.packed_bytes = 4 * (params + 2 * ch);  // gamma, beta and the running mean and variance
    c.add(std::move(r), float_bits);
}

template <class Q>
void summarize(quantize_activation<Q>& q, summary_context& c)
{
    std::optional<policy_info> const info = describe(q.quantizer());
    int const bits = info ? info->bits : float_bits;
    std::size_t learned = 0;
    q.for_each_parameter([&](parameter& p) { learned += p.value.size(); });
    layer_summary r{.name = "quantize " + (bits < float_bits ? std::to_string(bits) + "-bit" : std::string("(float)")),
                    .output_shape = {c.shape().begin(), c.shape().end()}, .activation_bits = c.activation_bits(),
                    .parameters = learned};
    r.float_bytes = r.packed_bytes = 4 * learned;
    c.add(std::move(r), bits);
}

namespace detail {
/// A layer without parameters that keeps the shape: ReLU, hardtanh.
inline void summarize_elementwise(char const* name, summary_context& c, int output_bits)
{
    c.add(layer_summary{.name = name, .output_shape = {c.shape().begin(), c.shape().end()},
                        .activation_bits = c.activation_bits()},
          output_bits);
}
inline void summarize_pool(std::string name, std::size_t kernel, std::size_t stride, summary_context& c,
                           int output_bits)
{
    c.expect(name, {0, 0, 0});
    if (c.shape()[1] < kernel || c.shape()[2] < kernel) c.expect(name + " (input smaller than the window)", {0, kernel, kernel});
    std::vector<std::size_t> const out{c.shape()[0], (c.shape()[1] - kernel) / stride + 1,
                                       (c.shape()[2] - kernel) / stride + 1};
    c.add(layer_summary{.name = std::move(name), .output_shape = out, .activation_bits = c.activation_bits()},
          output_bits);
}
} // namespace detail

inline void summarize(relu&, summary_context& c) { detail::summarize_elementwise("relu", c, c.activation_bits()); }
inline void summarize(hardtanh&, summary_context& c) { detail::summarize_elementwise("hardtanh", c, float_bits); }

inline void summarize(max_pool2d& p, summary_context& c)
{
    pool_options const o = p.options();
    detail::summarize_pool("max_pool2d " + std::to_string(o.kernel) + "x" + std::to_string(o.kernel), o.kernel,
                           o.stride, c, c.activation_bits());  // a maximum of codes is a code
}
inline void summarize(avg_pool2d& p, summary_context& c)
{
    pool_options const o = p.options();
    detail::summarize_pool("avg_pool2d " + std::to_string(o.kernel) + "x" + std::to_string(o.kernel), o.kernel,
                           o.stride, c, float_bits);
}
inline void summarize(global_avg_pool2d&, summary_context& c)
{
    c.expect("global_avg_pool2d", {0, 0, 0});
    c.add(layer_summary{.name = "global_avg_pool2d", .output_shape = {c.shape()[0]}, .activation_bits = c.activation_bits()},
          float_bits);
}
inline void summarize(flatten&, summary_context& c)
{
    c.add(layer_summary{.name = "flatten", .output_shape = {c.features()}, .activation_bits = c.activation_bits()},
          c.activation_bits());
}

template <class... Layers>
void summarize(sequential<Layers...>& s, summary_context& c);

template <class Inner>
void summarize(residual<Inner>& r, summary_context& c)
{
    std::vector<std::size_t> const in(c.shape().begin(), c.shape().end());
    int const bits = c.activation_bits();
    summarize(r.inner(), c);
    c.expect("residual add", in);
    c.restore(in, bits);
    c.add(layer_summary{.name = "residual add", .output_shape = in, .activation_bits = bits}, float_bits);
}

namespace detail {
template <class L>
concept summarizable = requires(L& l, summary_context& c) { summarize(l, c); };
} // namespace detail

template <class... Layers>
void summarize(sequential<Layers...>& s, summary_context& c)
{
    s.for_each_layer([&]<class L>(L& l) {
        static_assert(detail::summarizable<L>,
                      "lowbit::summary: this layer type provides no summarize(layer&, lowbit::nn::summary_context&); "
                      "declare one in the layer's namespace (see lowbit/nn/summary.hpp)");
        summarize(l, c);
    });
}

} // namespace lowbit::nn

namespace lowbit {

/// @brief The summary of a lowbit::nn model (an nn::sequential, or any layer) for samples of @p input_shape
/// (e.g. {784} for an MLP, {1, 28, 28} for a CNN).
/// @throws invalid_input when a layer does not accept the shape the layer before gives.
template <class Model>
model_summary summary(Model& model, std::vector<std::size_t> input_shape)
{
    nn::summary_context c(std::move(input_shape));
    summarize(model, c);
    return model_summary{.layers = std::move(c).take_rows()};
}

} // namespace lowbit
