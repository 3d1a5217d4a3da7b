// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Ready-made models for 28x28 inputs (MNIST, Fashion-MNIST):
/// - mlp: 784-1024-1024-10 with BatchNorm after every dense layer (the BinaryConnect / Li et al. MLP);
/// - cnn: a small VGG-style network, 2x[conv3x3-BN-ReLU] - maxpool - 2x[conv3x3-BN-ReLU] - maxpool -
///   dense-BN-ReLU - dense-BN.
/// The classifier head is dense-BN by default, or dense with bias (bias_head).
/// Every weight follows the policy W; First and Last let the first and last layers differ (8-bit or float
/// first/last layers, a common recipe). Act, a lowbit::ste fake quantizer, quantizes the input activations of
/// every layer but the first (ReLU, then Act, as PACT and SAT do; the image itself is not quantized);
/// float_activations (the default) leaves them in float.

#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/execution.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/quant/policy_traits.hpp>

#include <xtensor/xtensor.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace lowbit::nn {

/// @brief Activations stay in float (the Act policy of mlp() and cnn()).
struct float_activations_t : float_policy {};
inline constexpr float_activations_t float_activations{};

/// @brief An activation policy of the ready-made models: float, or a lowbit::ste fake quantizer.
template <class A>
concept ActivationPolicy = std::same_as<A, float_activations_t> || ste::FakeQuantizer<A>;

/// @brief Classifier heads of the ready-made models (tags): the last dense layer without bias followed by
/// BatchNorm (BinaryConnect, Li et al.), or with a bias and nothing after it (PACT, SAT: the logits are the
/// layer's output, which is what SAT's rescaling of the last layer is about -- a BatchNorm after it would
/// undo the rescaling).
struct batch_norm_head_t {};
inline constexpr batch_norm_head_t batch_norm_head{};
struct bias_head_t {};
inline constexpr bias_head_t bias_head{};

template <class H>
concept ClassifierHead = std::same_as<H, batch_norm_head_t> || std::same_as<H, bias_head_t>;

namespace detail {
/// The last dense layer, and its BatchNorm for batch_norm_head_t.
template <WeightPolicy Last, ClassifierHead Head>
auto classifier(std::size_t in, std::size_t classes, nn::init init, std::uint64_t seed, Last last, Head)
{
    if constexpr (std::same_as<Head, batch_norm_head_t>)
        return sequential{dense<Last>({.in = in, .out = classes, .bias = false, .init = init, .seed = seed}, last),
                          batch_norm<2>({.channels = classes})};
    else
        return dense<Last>({.in = in, .out = classes, .bias = true, .init = init, .seed = seed}, last);
}

/// ReLU, followed by the activation quantizer unless activations stay in float; a quantizer of signed
/// activations (`Act::signed_domain`, e.g. ste::sign_activation) replaces the ReLU instead.
template <ActivationPolicy Act>
auto relu_then(Act const& act)
{
    if constexpr (std::same_as<Act, float_activations_t>)
        return relu{};
    else if constexpr (requires { requires Act::signed_domain; })
        return quantize_activation<Act>(act);
    else
        return sequential{relu{}, quantize_activation<Act>(act)};
}
} // namespace detail

/// @brief Options of mlp().
struct mlp_options {
    std::size_t inputs = 784;
    std::size_t hidden = 1024;
    std::size_t classes = 10;
    nn::init init = nn::init::glorot_uniform;
    std::uint64_t seed = 0;
};

/// @brief The MLP inputs-hidden-hidden-classes with BatchNorm; dense layers have no bias (BN follows).
template <WeightPolicy W, WeightPolicy First = W, WeightPolicy Last = W, ActivationPolicy Act = float_activations_t,
          ClassifierHead Head = batch_norm_head_t>
auto mlp(mlp_options const& o = {}, W w = {}, First first = {}, Last last = {}, Act act = {}, Head head = {})
{
    return sequential{dense<First>({.in = o.inputs, .out = o.hidden, .bias = false, .init = o.init, .seed = o.seed + 1}, first),
                      batch_norm<2>({.channels = o.hidden}),
                      detail::relu_then(act),
                      dense<W>({.in = o.hidden, .out = o.hidden, .bias = false, .init = o.init, .seed = o.seed + 2}, w),
                      batch_norm<2>({.channels = o.hidden}),
                      detail::relu_then(act),
                      detail::classifier(o.hidden, o.classes, o.init, o.seed + 3, last, head)};
}

/// @brief Options of cnn().
struct cnn_options {
    std::size_t channels = 1;   ///< input channels
    std::size_t size = 28;      ///< input height = width (must be divisible by 4)
    std::size_t width1 = 16;    ///< channels of the first block
    std::size_t width2 = 32;    ///< channels of the second block
    std::size_t hidden = 128;   ///< dense layer width
    std::size_t classes = 10;
    std::uint64_t seed = 0;
    nn::execution execution = nn::execution::automatic;  ///< the convolutions' kernels or their im2col reference
};

/// @brief The small VGG-style CNN; input [N, channels, size, size].
template <WeightPolicy W, WeightPolicy First = W, WeightPolicy Last = W, ActivationPolicy Act = float_activations_t,
          ClassifierHead Head = batch_norm_head_t>
auto cnn(cnn_options const& o = {}, W w = {}, First first = {}, Last last = {}, Act act = {}, Head head = {})
{
    auto block = [&act, &o](std::size_t in, std::size_t out, std::uint64_t seed, auto policy) {
        using P = decltype(policy);
        return sequential{conv2d<P>({.in = in, .out = out, .kernel = 3, .stride = 1, .padding = 1, .bias = false,
                                     .seed = seed, .execution = o.execution},
                                    policy),
                          batch_norm<4>({.channels = out}), detail::relu_then(act)};
    };
    std::size_t const flat = o.width2 * (o.size / 4) * (o.size / 4);
    return sequential{block(o.channels, o.width1, o.seed + 1, first),
                      block(o.width1, o.width1, o.seed + 2, w),
                      max_pool2d{},
                      block(o.width1, o.width2, o.seed + 3, w),
                      block(o.width2, o.width2, o.seed + 4, w),
                      max_pool2d{},
                      flatten{},
                      dense<W>({.in = flat, .out = o.hidden, .bias = false, .seed = o.seed + 5}, w),
                      batch_norm<2>({.channels = o.hidden}),
                      detail::relu_then(act),
                      detail::classifier(o.hidden, o.classes, nn::init::glorot_uniform, o.seed + 6, last, head)};
}

/// @brief Views flat images [N, c*h*w] as [N, c, h, w] (a copy).
inline xt::xtensor<float, 4> as_images(xt::xtensor<float, 2> const& flat, std::size_t c, std::size_t h, std::size_t w)
{
    xt::xtensor<float, 4> out = xt::xtensor<float, 4>::from_shape({flat.shape(0), c, h, w});
    std::copy(flat.data(), flat.data() + flat.size(), out.data());
    return out;
}

} // namespace lowbit::nn
