// SPDX-License-Identifier: MIT
// deploy::compile of a model with a layer that provides no lower(layer&, deploy::lowering&): no packed form, and
// the message says why and what to do (the instantiation names the layer). Its twin has the same model with
// nn::relu, which lowers.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <xtensor/xtensor.hpp>

namespace ste = lowbit::ste;

namespace user {
/// A layer of a user's own, with no deploy customization point.
struct leaky {
    using weight_policies = lowbit::nn::type_list<>;
    xt::xtensor<float, 2> forward(xt::xtensor<float, 2> const& x, lowbit::nn::forward_context const&) { return x; }
    xt::xtensor<float, 2> backward(xt::xtensor<float, 2> const& dy) { return dy; }
    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}
};
} // namespace user

int main()
{
    using xnor = lowbit::nn::dense<ste::xnor_weight<>>;
#if LOWBIT_SHOULD_FAIL
    lowbit::nn::sequential model(xnor({.in = 4, .out = 8, .bias = false}), user::leaky{},
                                 xnor({.in = 8, .out = 2, .bias = true}));
#else
    lowbit::nn::sequential model(xnor({.in = 4, .out = 8, .bias = false}), lowbit::nn::relu{},
                                 xnor({.in = 8, .out = 2, .bias = true}));
#endif
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
