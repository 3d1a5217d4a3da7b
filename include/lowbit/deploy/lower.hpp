// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The customization point `lower(layer&, deploy::lowering&)` for lowbit's own layers, through which
/// deploy::compile (deploy/compile.hpp) lowers any nn::sequential into a deploy::packed_model.
///
/// | layer                                   | lowered as                                                   |
/// |-----------------------------------------|--------------------------------------------------------------|
/// | nn::dense<P>, P binary or 2..8-bit levels | an integer layer on codes or sign bits; on floats, a float layer with packed weights |
/// | nn::conv2d<P>, P as for dense           | the same, on NHWC feature maps (compile_options' height and width give the input's size); on input codes whose zero point is not 0, an output set per padding class |
/// | nn::batch_norm<2>, nn::batch_norm<4>, nn::relu, nn::hardtanh | folded into the thresholds of the quantizer that follows, else a float step |
/// | nn::max_pool2d                          | on whatever the activations are: OR of sign bits, max of codes or floats |
/// | nn::flatten                             | one row per sample in (y, x, c) order; the next dense layer's columns permuted to match |
/// | nn::quantize_activation<ste::sign_activation> | sign bits                                            |
/// | nn::quantize_activation<Q>, Q unsigned k-bit codes (PACT, DoReFa, unsigned LSQ, ste::any_quantizer) | k-bit codes |
/// | nn::residual<Inner>                     | the block's steps, plus the shortcut in float                 |
/// | nn::sequential<L...>                    | each layer in turn                                           |
///
/// A layer type without a `lower` found by argument-dependent lookup is a compile-time error that names it
/// (average pooling has none yet).
///
/// @code
/// namespace nn = lowbit::nn;
/// namespace ste = lowbit::ste;
/// nn::sequential model(nn::dense<ste::xnor_weight<>>({.in = 784, .out = 256}), nn::batch_norm<2>({.channels = 256}),
///                      nn::quantize_activation<ste::sign_activation>{},
///                      nn::residual(nn::sequential(nn::dense<ste::xnor_weight<>>({.in = 256, .out = 256}),
///                                                  nn::batch_norm<2>({.channels = 256}))),
///                      nn::dense<ste::dorefa_weight<8>>({.in = 256, .out = 10, .bias = true}));
/// lowbit::deploy::packed_model const packed = lowbit::deploy::compile(model);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/lowering.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/weight_lowering.hpp>
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
#include <lowbit/quant/ste/sign_activation.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

namespace lowbit::deploy {

template <class P>
void lower(nn::dense<P>& d, lowering& c);
template <class P>
void lower(nn::conv2d<P>& conv, lowering& c);
void lower(nn::batch_norm<2>& bn, lowering& c);
void lower(nn::batch_norm<4>& bn, lowering& c);
void lower(nn::max_pool2d& p, lowering& c);
void lower(nn::flatten& f, lowering& c);
void lower(nn::relu& r, lowering& c);
void lower(nn::hardtanh& h, lowering& c);
template <class Q>
void lower(nn::quantize_activation<Q>& a, lowering& c);
template <class Inner>
void lower(nn::residual<Inner>& r, lowering& c);
template <class... Layers>
void lower(nn::sequential<Layers...>& s, lowering& c);

/// @brief Layers that provide `lower(layer&, deploy::lowering&)`, found by argument-dependent lookup.
template <class L>
concept LowerableLayer = requires(L& l, lowering& c) { lower(l, c); };

namespace detail {
/// A copy of elementwise layer @p l as a float_map (evaluation mode).
template <class L>
float_map map_of(L const& l)
{
    return [copy = l](xt::xtensor<float, 2>& x) mutable { x = copy.forward(x, {.training = false}); };
}

/// A batch_norm<2> with @p bn's options, statistics, gamma and beta, without what its last training pass cached
/// (for a batch_norm<4>: the same per-channel formula on NHWC rows).
template <std::size_t Rank>
nn::batch_norm<2> evaluation_copy(nn::batch_norm<Rank>& bn)
{
    nn::batch_norm<2> c(bn.options());
    std::copy(bn.gamma().begin(), bn.gamma().end(), c.gamma().begin());
    std::copy(bn.beta().begin(), bn.beta().end(), c.beta().begin());
    std::copy(bn.running_mean().begin(), bn.running_mean().end(), c.running_mean().begin());
    std::copy(bn.running_var().begin(), bn.running_var().end(), c.running_var().begin());
    return c;
}

/// Whether Q is an activation quantizer with a packed encoding: sign, or unsigned codes of 1..8 bits.
template <class Q>
inline constexpr bool encodable_activation_v = std::is_same_v<Q, ste::sign_activation> || code_quantizer<Q>::value;
} // namespace detail

template <class P>
void lower(nn::dense<P>& d, lowering& c)
{
    if constexpr (detail::require_deployable<P>()) {
        std::string const who = c.name("dense");
        // The flatten's column order has one entry per feature it writes: a layer of another width must be refused
        // here, before lower_dense reads its weights in that order.
        std::vector<std::size_t> order = c.take_flatten_order();
        if (!order.empty() && order.size() != d.options().in)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads " + std::to_string(d.options().in) +
                                " features, but the layer before writes " + std::to_string(order.size()));
        c.dense(detail::lower_dense(d, who.c_str(), std::move(order)), who);
    }
}

template <class P>
void lower(nn::conv2d<P>& conv, lowering& c)
{
    if constexpr (detail::require_deployable<P>()) {
        std::string const who = c.name("conv2d");
        c.image_input(conv.options().in, who);
        auto [shape, weights] = detail::lower_conv(conv, c.height(), c.width(), who);
        c.conv(shape, std::move(weights), who);
    }
}

inline void lower(nn::batch_norm<4>& bn, lowering& c)
{
    std::string const who = c.name("batch_norm");
    c.image_input(bn.options().channels, who);
    nn::batch_norm<2> const copy = detail::evaluation_copy(bn);
    c.per_channel(who, {batch_norm_step{copy}}, detail::map_of(copy), bn.options().channels);
}

inline void lower(nn::max_pool2d& p, lowering& c) { c.max_pool(detail::pool_of(p), c.name("max_pool2d")); }

inline void lower(nn::flatten&, lowering& c) { c.flatten(c.name("flatten")); }

inline void lower(nn::batch_norm<2>& bn, lowering& c)
{
    nn::batch_norm<2> const copy = detail::evaluation_copy(bn);
    c.per_channel(c.name("batch_norm"), {batch_norm_step{copy}}, detail::map_of(copy), bn.options().channels);
}

inline void lower(nn::relu& r, lowering& c)
{
    c.per_channel(c.name("relu"), {clamp_step{0.0f, std::numeric_limits<float>::infinity()}}, detail::map_of(r));
}

inline void lower(nn::hardtanh& h, lowering& c)
{
    c.per_channel(c.name("hardtanh"), {clamp_step{h.options().lo, h.options().hi}}, detail::map_of(h));
}

template <class Q>
void lower(nn::quantize_activation<Q>& a, lowering& c)
{
    static_assert(detail::encodable_activation_v<Q>,
                  "lowbit::deploy::compile: an activation quantizer lowers to sign bits (ste::sign_activation) or to "
                  "unsigned codes of 1..8 bits (ste::pact, CG-PACT, ste::dorefa_activation, unsigned ste::lsq, as "
                  "policy_traits reads them); this one has no packed encoding");
    if constexpr (std::is_same_v<Q, ste::sign_activation>) {
        c.sign(c.name("sign"));
    } else if constexpr (detail::encodable_activation_v<Q>) {
        std::string const who = c.name("activation quantizer");
        Q& q = a.quantizer();
        int const bits = detail::code_quantizer<Q>::bits_of(q);  // checked here for a quantizer chosen at run time
        float const top = detail::top_code_value(q);
        if (!(top > 0.0f) || !std::isfinite(top))
            throw invalid_input("lowbit::deploy::compile: " + who + ": the top code's value (PACT's alpha) must be "
                                "finite and positive, got " + std::to_string(top));
        c.codes(who, bits, code_table_of(q, bits, top), [copy = q](std::span<float> x) mutable {
            copy.forward(std::span<float const>(x.data(), x.size()), x);
        });
    }
}

template <class Inner>
void lower(nn::residual<Inner>& r, lowering& c)
{
    c.residual(c.name("residual"), [&](lowering& inner) { lower(r.inner(), inner); });
}

template <class... Layers>
void lower(nn::sequential<Layers...>& s, lowering& c)
{
    s.for_each_layer([&]<class L>(L& l) {
        static_assert(LowerableLayer<L>,
                      "lowbit::deploy::compile: this layer type provides no lower(layer&, lowbit::deploy::lowering&), "
                      "so the model has no packed form; the instantiation below names the layer. Give a layer of your "
                      "own one (deploy/lowering.hpp)");
        if constexpr (LowerableLayer<L>) lower(l, c);
    });
}

} // namespace lowbit::deploy
