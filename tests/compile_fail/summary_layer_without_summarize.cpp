// SPDX-License-Identifier: MIT
// lowbit::summary of a model with a layer that provides no summarize(): the message says what to declare.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/summary.hpp>

namespace user {
struct identity {
    using weight_policies = lowbit::nn::type_list<>;
    template <class X>
    X forward(X const& x, lowbit::nn::forward_context const&) { return x; }
    template <class X>
    X backward(X const& dy) { return dy; }
    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}
};
#if !LOWBIT_SHOULD_FAIL
inline void summarize(identity&, lowbit::nn::summary_context& c)
{
    c.add({.name = "identity", .output_shape = {c.shape().begin(), c.shape().end()}}, c.activation_bits());
}
#endif
} // namespace user

int main()
{
    lowbit::nn::sequential model{lowbit::nn::dense<>({.in = 4, .out = 2}), user::identity{}};
    return lowbit::summary(model, {4}).layers.size() == 2 ? 0 : 1;
}
