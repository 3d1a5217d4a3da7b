// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile for the binarized CNN: a trained nn::cnn -> deploy::packed_cnn. This is the overload
/// of deploy::compile (deploy/compile.hpp, which includes this header) for models of nn::cnn's shape
/// (CnnModel); the MLP overload is the other one.
///
/// What it takes: the model of `nn::cnn(options, W, First, Last, ste::sign_activation{}, nn::bias_head)`:
/// conv3x3<First>-BN-sign, conv3x3<W>-BN-sign, maxpool, conv<W>-BN-sign, conv<W>-BN-sign, maxpool, flatten,
/// dense<W>-BN-sign, dense<Last> with bias (sign activations replace nn::cnn's ReLU: detail::relu_then). Each
/// weight policy is binary or on a mid-rise or mid-tread grid of 2..8 bits (PackableWeightPolicy).
/// Other activations or the batch_norm head are a compile-time error that says what is supported.
///
/// How each layer is lowered (docs/deploy.md has the derivation):
/// - first convolution: the float image becomes 8-bit codes by the input map (x = scale q + offset); im2col
///   of the codes (code 0 at padded taps) and the int8 GEMM give v = sum over the valid taps of q level; the
///   float model computes y_j = (scale v + offset D_j(class)) step_j, D_j(class) the sum of filter j's levels
///   over the valid taps of the pixel's padding class, so BN + sign fold into one set of thresholds per class;
/// - hidden convolutions: kernels::binary_conv2d on sign bits, whose padded taps contribute 0 as in the float
///   model, y_j = alpha_j v; BN + sign fold into one set of thresholds;
/// - max pooling: the OR of the sign bits of each window (max of +-1, bit 1 = +1);
/// - flatten: the NHWC bit rows back to back; the dense layer's weight columns are permuted from nn::flatten's
///   (c, y, x) order to (y, x, c);
/// - dense layers: deploy::packed_dense, as the MLP's hidden and last layers.
/// Thresholds come from fold_sign_thresholds with the model's own BatchNorm layers, exact for every v.
///
/// @code
/// namespace ste = lowbit::ste;
/// auto cnn = lowbit::nn::cnn({}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
///                            ste::sign_activation{}, lowbit::nn::bias_head);
/// // ... train it with lowbit::train::binary_connect ...
/// lowbit::deploy::packed_cnn const packed = lowbit::deploy::compile(cnn);   // images in [0, 1]
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/deploy/weight_lowering.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>
#include <lowbit/quant/ste/sign_activation.hpp>

#include <xtensor/xtensor.hpp>

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::deploy {

namespace detail {

/// A block conv2d - batch_norm - activation of nn::cnn, with any policy and activation.
template <class B>
struct conv_block : std::false_type {};
template <class P, class A>
struct conv_block<nn::sequential<nn::conv2d<P>, nn::batch_norm<4>, A>> : std::true_type {
    using policy = P;
    static constexpr bool sign = std::same_as<A, nn::quantize_activation<ste::sign_activation>>;
    using activation = A;
};

/// The classifier of nn::cnn: with bias_head, a dense layer with its policy.
template <class H>
struct bias_head_of : std::false_type {
    using policy = void;
};
template <class P>
struct bias_head_of<nn::dense<P>> : std::true_type {
    using policy = P;
};

/// The layers of nn::cnn's model, whatever its policies, activations and head.
template <class M>
struct cnn_parts : std::false_type {};
template <class B1, class B2, class B3, class B4, class W, class A, class H>
    requires(conv_block<B1>::value && conv_block<B2>::value && conv_block<B3>::value && conv_block<B4>::value)
struct cnn_parts<nn::sequential<B1, B2, nn::max_pool2d, B3, B4, nn::max_pool2d, nn::flatten, nn::dense<W>,
                                nn::batch_norm<2>, A, H>> : std::true_type {
    using first = typename conv_block<B1>::policy;
    using policies = std::tuple<typename conv_block<B1>::policy, typename conv_block<B2>::policy,
                                typename conv_block<B3>::policy, typename conv_block<B4>::policy, W,
                                typename bias_head_of<H>::policy>;
    static constexpr bool binarized = conv_block<B1>::sign && conv_block<B2>::sign && conv_block<B3>::sign &&
                                      conv_block<B4>::sign &&
                                      std::same_as<A, nn::quantize_activation<ste::sign_activation>> &&
                                      bias_head_of<H>::value;
    /// Whether every activation is the same code activation (CodeActivationLayer: PACT, DoReFa, unsigned LSQ, or
    /// one chosen at run time, whose code width compile() checks) and the head has a bias.
    static constexpr bool kbit = CodeActivationLayer<A> && std::same_as<typename conv_block<B1>::activation, A> &&
                                 std::same_as<typename conv_block<B2>::activation, A> &&
                                 std::same_as<typename conv_block<B3>::activation, A> &&
                                 std::same_as<typename conv_block<B4>::activation, A> && bias_head_of<H>::value;
};

template <class... P>
constexpr bool all_deployable(std::tuple<P...>*) noexcept
{
    return (require_deployable<P>() && ...);
}

/// The window of a max pooling layer.
inline pool_window pool_of(nn::max_pool2d const& pool) noexcept
{
    nn::pool_options const o = pool.options();
    return {.kernel = o.kernel, .stride = o.stride};
}

/// A convolution's weight columns in the packed patch order (ky, kx, c): column (ky k + kx) C + c is
/// nn::conv2d's [in][k][k] index c k^2 + ky k + kx.
inline std::vector<std::size_t> patch_order(std::size_t channels, std::size_t k)
{
    std::vector<std::size_t> order(channels * k * k);
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t c = 0; c < channels; ++c) order[(ky * k + kx) * channels + c] = (c * k + ky) * k + kx;
    return order;
}

template <class P>
kernels::binary_conv2d_shape conv_shape(nn::conv2d<P>& conv, std::size_t height, std::size_t width)
{
    nn::conv2d_options const& o = conv.options();
    return {.channels = o.in, .height = height, .width = width, .filters = o.out, .kernel = o.kernel,
            .stride = o.stride, .padding = o.padding};
}

/// The sizes of every layer of nn::cnn's model for compile_options' input size (inferred from the dense
/// layer's width when it is 0), and the order of the first dense layer's weight columns that reads the packed
/// NHWC feature map.
struct cnn_layout {
    std::array<pool_window, 4> pools{};      ///< after each convolution (kernel 0: none)
    std::array<std::size_t, 4> heights{};    ///< each convolution's input height
    std::array<std::size_t, 4> widths{};     ///< and width
    std::vector<std::size_t> flatten_order;  ///< column k of the packed dense layer is the model's column order[k]
};

template <class Model>
cnn_layout cnn_layout_of(Model& model, compile_options const& options)
{
    auto& b1 = model.template layer<0>();
    auto& b2 = model.template layer<1>();
    auto& b3 = model.template layer<3>();
    auto& b4 = model.template layer<4>();
    auto& hidden = model.template layer<7>();
    std::array<pool_window, 4> const pools{pool_window{}, pool_of(model.template layer<2>()), pool_window{},
                                           pool_of(model.template layer<5>())};
    std::array<kernels::binary_conv2d_shape, 4> const geometry{
        conv_shape(b1.template layer<0>(), 0, 0), conv_shape(b2.template layer<0>(), 0, 0),
        conv_shape(b3.template layer<0>(), 0, 0), conv_shape(b4.template layer<0>(), 0, 0)};
    std::string const who = "lowbit::deploy::compile: ";
    // The side after every layer for an input side, 0 where a layer does not fit.
    auto const forward_side = [&](std::size_t side, std::array<std::size_t, 4>& at) {
        for (std::size_t i = 0; i < 4; ++i) {
            kernels::binary_conv2d_shape const& g = geometry[i];
            at[i] = side;
            if (side == 0 || side + 2 * g.padding < g.kernel) return std::size_t{0};
            side = pools[i].out((side + 2 * g.padding - g.kernel) / g.stride + 1);
        }
        return side;
    };
    std::size_t const c4 = geometry[3].filters, flat = hidden.options().in;
    std::size_t height = options.height, width = options.width;
    if (height == 0 || width == 0) {
        // The smallest square input whose last feature map has flat / c4 pixels: invert each layer by its
        // smallest preimage, then check by running the sizes forward.
        auto const side = static_cast<std::size_t>(std::llround(std::sqrt(static_cast<double>(flat / c4))));
        std::size_t s = side;
        for (std::size_t i = 4; i-- > 0;) {
            kernels::binary_conv2d_shape const& g = geometry[i];
            if (!pools[i].none()) s = (s - 1) * pools[i].stride + pools[i].kernel;
            std::size_t const in = (s - 1) * g.stride + g.kernel;
            s = in > 2 * g.padding ? in - 2 * g.padding : 1;
        }
        std::array<std::size_t, 4> at{};
        if (flat % c4 != 0 || side * side * c4 != flat || side == 0 || forward_side(s, at) != side)
            throw invalid_input(who + "cannot infer the CNN's input size from its dense layer of " +
                                std::to_string(flat) + " inputs after " + std::to_string(c4) +
                                " channels; set compile_options::height and width");
        height = height == 0 ? s : height;
        width = width == 0 ? s : width;
    }
    std::array<std::size_t, 4> hs{}, ws{};
    std::size_t const h_out = forward_side(height, hs), w_out = forward_side(width, ws);
    if (h_out * w_out * c4 != flat)
        throw invalid_input(who + "a " + std::to_string(height) + "x" + std::to_string(width) + " input gives a " +
                            std::to_string(c4) + " x " + std::to_string(h_out) + " x " + std::to_string(w_out) +
                            " feature map, but the dense layer reads " + std::to_string(flat) + " features");
    cnn_layout g{.pools = pools, .heights = hs, .widths = ws, .flatten_order = std::vector<std::size_t>(flat)};
    // nn::flatten orders the features (c, y, x); the packed rows are (y, x, c).
    std::size_t const pixels = h_out * w_out;
    for (std::size_t p = 0; p < pixels; ++p)
        for (std::size_t c = 0; c < c4; ++c) g.flatten_order[p * c4 + c] = c * pixels + p;
    return g;
}

/// A convolution's geometry for a @p height x @p width input, and its weights lowered in the packed patch
/// order (ky, kx, c).
struct lowered_conv {
    kernels::binary_conv2d_shape shape;
    lowered_dense weights;
};

template <class P>
lowered_conv lower_conv(nn::conv2d<P>& conv, std::size_t height, std::size_t width, std::string const& which)
{
    kernels::binary_conv2d_shape const s = conv_shape(conv, height, width);
    if (s.height + 2 * s.padding < s.kernel || s.width + 2 * s.padding < s.kernel)
        throw invalid_input("lowbit::deploy::compile: the " + which + " convolution's " + std::to_string(height) + "x" +
                            std::to_string(width) + " input is smaller than its kernel");
    return {s, lower_weights(evaluated_values(conv.weight(), false), describe(conv.weight().policy()), s.filters,
                             s.patch_bits(), patch_order(s.channels, s.kernel), conv.bias(), which + " convolution")};
}

/// Lowers a conv - BN - sign block of size @p height x @p width. The first layer (@p map non-null) reads
/// input codes and gets one set of thresholds per padding class; the others read sign bits.
template <class P>
packed_conv2d lower_conv_block(nn::conv2d<P>& conv, nn::batch_norm<4> const& bn, std::size_t height,
                               std::size_t width, input_map const* map, std::string const& which)
{
    auto [s, l] = lower_conv(conv, height, width, which);
    std::vector<sign_thresholds> t;
    if (map != nullptr) {
        std::int64_t const v_max = integer_bound(l, 255);
        padding_classes const classes = padding_classes::of(s);
        for (padding_classes::taps const& taps : classes.valid)
            t.push_back(fold_layer(bn, l, map->scale, map->offset, v_max, class_level_sums(l, s, taps)));
    } else {
        t.push_back(fold_layer(bn, l, 1.0, 0.0, integer_bound(l, 1)));
    }
    l.w.scale.clear();  // folded into the thresholds
    return packed_conv2d(map != nullptr ? layer_input::codes : layer_input::signs, s, std::move(l.w), std::move(t));
}

} // namespace detail

/// @brief Models of nn::cnn's shape (two conv blocks, max pooling, two conv blocks, max pooling, flatten,
/// dense - batch_norm - activation, classifier), with any policies, activations and head.
template <class M>
concept CnnModel = detail::cnn_parts<M>::value;

/// @brief nn::cnn's binarized CNN (sign activations everywhere, the bias head): the models this overload of
/// compile() takes. Other CNNs (float activations, the BatchNorm head) lower layer by layer (deploy/lower.hpp).
template <class M>
concept BinarizedCnnModel = CnnModel<M> && detail::cnn_parts<M>::binarized;

template <BinarizedCnnModel Model>
packed_cnn compile(Model& model, compile_options const& options = {})
{
    using parts = detail::cnn_parts<Model>;
    using policies = typename parts::policies;
    // Policies chosen at run time (ste::any_quantizer) are checked when compile() lowers their layer.
    constexpr bool packable = parts::binarized && detail::all_deployable(static_cast<policies*>(nullptr));
    if constexpr (packable) {
        options.input.check();
        auto& b1 = model.template layer<0>();
        auto& b2 = model.template layer<1>();
        auto& b3 = model.template layer<3>();
        auto& b4 = model.template layer<4>();
        auto& hidden = model.template layer<7>();
        auto& last = model.template layer<10>();
        detail::cnn_layout const g = detail::cnn_layout_of(model, options);
        auto const& hs = g.heights;
        auto const& ws = g.widths;
        std::vector<packed_conv2d> convs;
        convs.push_back(detail::lower_conv_block(b1.template layer<0>(), b1.template layer<1>(), hs[0], ws[0],
                                                 &options.input, "first"));
        convs.push_back(detail::lower_conv_block(b2.template layer<0>(), b2.template layer<1>(), hs[1], ws[1], nullptr,
                                                 "second"));
        convs.push_back(detail::lower_conv_block(b3.template layer<0>(), b3.template layer<1>(), hs[2], ws[2], nullptr,
                                                 "third"));
        convs.push_back(detail::lower_conv_block(b4.template layer<0>(), b4.template layer<1>(), hs[3], ws[3], nullptr,
                                                 "fourth"));
        detail::lowered_dense l5 = detail::lower_dense(hidden, "hidden dense", g.flatten_order);
        detail::lowered_dense l6 = detail::lower_dense(last, "last");
        sign_thresholds t5 = detail::fold_layer(model.template layer<8>(), l5, 1.0, 0.0, detail::integer_bound(l5, 1));
        (void)detail::integer_bound(l6, 1);
        l5.w.scale.clear();
        std::vector<float> bias = std::move(l6.bias);
        bias.resize(l6.w.out, 0.0f);
        std::vector<packed_dense> dense;
        dense.emplace_back(layer_input::signs, std::move(l5.w), std::move(t5));
        dense.emplace_back(layer_input::signs, std::move(l6.w), std::move(bias));
        return packed_cnn(options.input, std::move(convs), std::vector<pool_window>(g.pools.begin(), g.pools.end()),
                          std::move(dense));
    }
    return {};
}

} // namespace lowbit::deploy
