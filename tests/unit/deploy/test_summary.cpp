// SPDX-License-Identifier: MIT
// lowbit::summary: a trained model's table and its packed model's (deploy::compile's packed_model) agree on
// every weight layer's bits and bytes; the rows follow the layers (a user's own layer, a residual block, a CNN); a
// shape that does not chain is an error.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/model_summary.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/summary.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;

namespace {

/// (bits, bytes) of each row with weights.
std::vector<std::pair<int, std::size_t>> weight_layers(model_summary const& s)
{
    std::vector<std::pair<int, std::size_t>> w;
    for (layer_summary const& l : s.layers)
        if (l.weights != 0) w.emplace_back(l.weight_bits, l.weight_bytes());
    return w;
}

} // namespace

namespace user {
/// A user's layer, outside lowbit: it scales its input, and says so to lowbit::summary by its own summarize().
struct scale {
    using weight_policies = lowbit::nn::type_list<>;
    float factor = 2.0f;
    template <class X>
    X forward(X const& x, lowbit::nn::forward_context const&) { return x * factor; }
    template <class X>
    X backward(X const& dy) { return dy * factor; }
    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}
};
inline void summarize(scale&, lowbit::nn::summary_context& c)
{
    c.add({.name = "user scale", .output_shape = {c.shape().begin(), c.shape().end()},
           .activation_bits = c.activation_bits()},
          c.activation_bits());
}
} // namespace user

TEST_CASE("the summaries of a binarized MLP and of its packed model agree on each weight layer's bits and bytes")
{
    auto model = nn::mlp({.inputs = 784, .hidden = 96, .classes = 10, .seed = 3}, ste::xnor_weight<>{},
                         ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    model_summary const t = summary(model, {784});
    REQUIRE(t.layers.size() == 7);
    layer_summary const& hidden = t.layers[3];
    CHECK(hidden.name == "dense 96 -> 96");
    CHECK(hidden.weight_bits == 1);
    CHECK(hidden.activation_bits == 1);  // after the sign
    CHECK(hidden.weight_bytes() == 96 * 96 / 8);
    CHECK(hidden.packed_bytes == 96 * 96 / 8 + 4 * 96);  // XNOR: one alpha per channel; no bias
    CHECK(hidden.macs[static_cast<std::size_t>(mac_kind::binary)] == 96 * 96);
    CHECK(t.layers[0].macs[static_cast<std::size_t>(mac_kind::float32)] == 784 * 96);  // float images
    CHECK(t.layers[6].macs[static_cast<std::size_t>(mac_kind::int8)] == 96 * 10);      // 8-bit weights x signs
    CHECK(t.layers[6].output_shape == std::vector<std::size_t>{10});
    std::size_t params = 0;  // the weights, and the other parameters (biases, BatchNorm's gamma and beta)
    model.for_each_weight([&](auto& w) { params += w.size(); });
    model.for_each_parameter([&](nn::parameter& p) { params += p.value.size(); });
    CHECK(t.parameters() == params);
    CHECK(t.float_bytes() > t.packed_bytes());
    CHECK(t.compression() == doctest::Approx(static_cast<double>(t.float_bytes()) / t.packed_bytes()));

    deploy::packed_model const packed = deploy::compile(model);
    model_summary const p = summary(packed);
    // A row per step: the input codes, then the three integer layers (BatchNorm and sign folded into thresholds).
    REQUIRE(p.layers.size() == 4);
    CHECK(p.layers[0].name == "input codes (8-bit)");
    CHECK(weight_layers(p) == weight_layers(t));
    CHECK(p.layers[1].activation_bits == 8);  // the packed model's first layer reads 8-bit codes
    CHECK(p.layers[1].macs[static_cast<std::size_t>(mac_kind::int8)] == 784 * 96);
    CHECK(p.layers[2].activation_bits == 1);  // the hidden layer reads sign bits: XNOR-popcount
    CHECK(p.layers[2].macs[static_cast<std::size_t>(mac_kind::binary)] == 96 * 96);
    CHECK(p.layers[3].macs[static_cast<std::size_t>(mac_kind::int8)] == 96 * 10);  // 8-bit weights x signs
    CHECK(p.layers[3].output_shape == std::vector<std::size_t>{10});
    CHECK(p.stored_bytes == deploy::packed_bytes(packed));
    std::string const table = p.table();
    CHECK(table.find("dense 96 -> 96 (thresholds, sign)") != std::string::npos);
    CHECK(table.find("dense 96 -> 10 (integer, float outputs)") != std::string::npos);
    CHECK(table.find("stored: " + std::to_string(p.stored_bytes) + " bytes") != std::string::npos);
}

TEST_CASE("the summaries of a PACT CNN and of its packed model agree, and the rows follow the layers")
{
    auto model = nn::cnn({.channels = 1, .size = 12, .width1 = 8, .width2 = 16, .hidden = 24, .classes = 3, .seed = 2},
                         ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::pact<2>{},
                         nn::bias_head);
    model_summary const t = summary(model, {1, 12, 12});
    deploy::packed_model const packed = deploy::compile(model, {.height = 12, .width = 12});
    model_summary const p = summary(packed);
    CHECK(weight_layers(p) == weight_layers(t));
    CHECK(weight_layers(t).size() == 6);  // four convolutions, two dense layers
    bool pooled = false;
    for (layer_summary const& l : t.layers)
        if (l.name == "max_pool2d 2x2") {
            pooled = true;
            CHECK(l.output_shape == std::vector<std::size_t>{8, 6, 6});
            break;
        }
    CHECK(pooled);
    // The packed model pools where the model does: twice, on 2-bit codes.
    std::size_t packed_pools = 0;
    for (layer_summary const& l : p.layers)
        if (l.name == "max_pool2d 2x2") {
            ++packed_pools;
            CHECK(l.activation_bits == 2);
        }
    CHECK(packed_pools == 2);
    CHECK(t.macs(mac_kind::kbit) == p.macs(mac_kind::kbit));  // 2-bit weights x 2-bit codes, the same in both
    CHECK(p.stored_bytes == deploy::packed_bytes(packed));
}

TEST_CASE("summary reads a user's layer, a residual block and the weights' states")
{
    using w1 = quantizer<1, nearest_even_t, clip::fixed_range>;
    nn::sequential model{nn::dense<w1>({.in = 20, .out = 16}), user::scale{},
                         nn::residual{nn::sequential{nn::relu{}, nn::dense<w1>({.in = 16, .out = 16})}},
                         nn::dense<>({.in = 16, .out = 4})};
    model_summary const s = summary(model, {20});
    REQUIRE(s.layers.size() == 6);
    CHECK(s.layers[1].name == "user scale");
    CHECK(s.layers[4].name == "residual add");
    CHECK(s.layers[4].output_shape == std::vector<std::size_t>{16});
    CHECK(s.layers[3].weight_bits == 1);
    CHECK(s.layers[5].weight_bits == 32);  // float_weights_t
    CHECK(s.layers[0].packed_bytes == 20 * 16 / 8 + 4 * (1 + 16));  // a per-tensor step and the bias
    // Trained with full_precision, a quantizer's weights stay float: 32 bits.
    model.for_each_weight([](auto& w) { w.bind(nn::float_state{}, 0); });
    CHECK(summary(model, {20}).layers[0].weight_bits == 32);

    CHECK_THROWS_WITH_AS((void)summary(model, {21}), doctest::Contains("dense 20 -> 16 expects inputs of shape [20]"),
                         invalid_input);
    auto cnn = nn::cnn({.channels = 1, .size = 12, .width1 = 8, .width2 = 16, .hidden = 24, .classes = 3},
                       ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                       nn::bias_head);
    CHECK_THROWS_WITH_AS((void)summary(cnn, {3, 12, 12}), doctest::Contains("expects inputs of shape [1, *, *]"),
                         invalid_input);
}
