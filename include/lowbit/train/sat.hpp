// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::sat<Base>: scale-adjusted training (Jin, Yang, Liao, "Neural Network Quantization with
/// Scale-Adjusted Training", BMVC 2020; arXiv 1912.10207).
///
/// SAT is quantization-aware training with shadow weights (Base, binary_connect by default) in which
///  - the last dense layer's quantized weights are rescaled to a fixed variance before use,
///    \f[ Q^* = \frac{Q}{\sqrt{n_{out}\,\mathrm{Var}[Q]}} \f]
///    (the variance unbiased over the layer and detached from the gradient; conv layers optionally),
///    so the logits cannot push softmax into saturation (the paper's "efficient training rule" I);
///  - activations are quantized with PACT whose alpha gradient is calibrated (CG-PACT):
///    \f$ \partial y_q/\partial\alpha = q_k(x/\alpha) - x/\alpha \f$ for \f$ x < \alpha \f$, 1 otherwise;
///  - the weights use DoReFa's clamp-then-quantize, and the first and last layers may keep a higher precision
///    (8 bit in the paper's recipe).
/// The update itself is Base's: \f$ w \leftarrow w - s_t(\nabla_w f(Q^*(w))) \f$ on the float weights, with
/// the straight-through estimator through the quantizer; PACT's alpha gets no weight decay. The paper trains
/// with SGD (momentum, Nesterov) under a cosine schedule; any lowbit optimizer and schedule compose.
///
/// The model carries the recipe as types -- ste::sat_rescale<ste::dorefa_weight<B>> on the last layer,
/// nn::quantize_activation<ste::calibrated_t<ste::pact<B>>> on the activations -- and train::sat checks at
/// compile time that the rescaling is there (without it this is plain PACT/DoReFa training, and the name
/// would be a lie). For a full-precision model SAT is ste::sat_rescale<ste::tanh_clamp<>> on the last layer.
///
/// @code
/// using namespace lowbit;
/// using w4 = ste::dorefa_weight<4>;
/// auto model = nn::mlp({.hidden = 64}, w4{}, ste::dorefa_weight<8>{}, ste::sat_rescale<ste::dorefa_weight<8>>{},
///                      ste::calibrated_t<ste::pact<4>>({.alpha = 10.0f}));
/// train::trainer t{model, train::sat{}, optim::sgd({.lr = 0.05f, .momentum = 0.9f, .nesterov = true}),
///                  optim::schedule::cosine{.lr_max = 0.05f, .epochs = 2}};
/// @endcode

#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/quant/ste/sat_rescale.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <span>
#include <string_view>
#include <type_traits>

namespace lowbit::train {

namespace detail {
template <class P>
struct is_sat_rescaled : std::false_type {};
template <class Inner>
struct is_sat_rescaled<ste::sat_rescale<Inner>> : std::true_type {};

template <class List>
struct any_sat_rescaled;
template <class... Ps>
struct any_sat_rescaled<nn::type_list<Ps...>> : std::bool_constant<(is_sat_rescaled<Ps>::value || ...)> {};

template <class Base>
consteval bool check_sat_base()
{
    static_assert(ShadowWeightMethod<Base>,
                  "lowbit::train::sat<Base> trains float shadow weights through a fake quantizer, so Base must be "
                  "a ShadowWeightMethod such as train::binary_connect; stochastic_rounding and rounded keep no "
                  "shadow weights");
    return true;
}
} // namespace detail

/// @brief Whether a weight policy is SAT's rescaling around a weight quantizer.
template <class P>
concept SatRescaled = detail::is_sat_rescaled<P>::value;

/// @brief Scale-adjusted training over a shadow-weight method Base.
template <class Base = binary_connect>
struct sat {
    static_assert(detail::check_sat_base<Base>());

    using weight_state = typename Base::weight_state;
    static constexpr std::string_view name() noexcept { return "sat"; }
    /// Base's update rule.
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key key)
    {
        Base::update(w, s, key);
    }
    /// Base's projection, where Base's rule is a subtraction and a projection (train::SubtractingMethod).
    template <class Weight>
        requires requires(Weight& w) { Base::project(w); }
    static void project(Weight& w)
    {
        Base::project(w);
    }

    template <class Policies>
    static consteval bool check()
    {
        static_assert(detail::any_sat_rescaled<Policies>::value,
                      "lowbit::train::sat needs the last dense layer's weights rescaled: give that layer the weight "
                      "policy ste::sat_rescale<Q> (e.g. ste::sat_rescale<ste::dorefa_weight<8>>, or "
                      "ste::sat_rescale<ste::tanh_clamp<>> for a float model); without it use train::binary_connect");
        return Base::template check<Policies>();
    }
};

} // namespace lowbit::train
