// SPDX-License-Identifier: MIT
// deploy::compile on models of a user's own shape (deploy/lower.hpp, deploy/lowering.hpp): any depth, residual
// blocks, float activations after binary weights, k-bit codes, a user's own layer, CNNs (another pooling order, a
// residual conv block, padding classes, nn::cnn with float activations). The models are built so that
// every float sum is exact (weights +-1/2, integer inputs, PACT's alpha = 2^bits - 1 so that a code's value is
// the code), which makes the fake-quant model and the packed model compute the same numbers: the test asks for
// bit-identical outputs, so a wrong threshold, orientation, step or shortcut shows as a difference.
#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/model_summary.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/summary.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include "../../support/file_problem.hpp"
#include "../../support/packed_steps.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lower_test {

using namespace lowbit;
namespace ste = lowbit::ste;

/// Integer inputs 0..255 (the input map of scale 1 reads them exactly).
xt::xtensor<float, 2> integer_inputs(std::size_t rows, std::size_t cols, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> d(0, 255);
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows, cols});
    for (float& v : x) v = static_cast<float>(d(rng));
    return x;
}

/// Every weight of the model +-1/2 (random signs): XNOR's alpha is then exactly 1/2 and every product exact.
template <class Model>
void half_weights(Model& model, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    model.for_each_weight([&](auto& w) {
        std::vector<float> v(w.size());
        for (float& x : v) x = (rng() & 1u) != 0 ? 0.5f : -0.5f;
        w.assign(v);
    });
}

/// BatchNorm statistics from a training-mode pass on @p input, then gammas of both signs (some zero) and offsets,
/// so that thresholds fall inside the range and some channels decrease.
template <class Model, class X>
void shake_batch_norms(Model& model, X const& input, std::uint64_t seed)
{
    (void)model.forward(input, {.training = true});
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.begin_recalibration(); }) {
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                float const g = u(rng);
                l.gamma()[j] = j % 13 == 4 ? 0.0f : (g < -0.4f ? g : std::abs(g) + 0.1f);
                l.beta()[j] = 0.5f * u(rng);
                l.running_var()[j] = l.running_var()[j] * (1.0f + 0.5f * std::abs(u(rng)));
            }
        }
    });
}

/// A user's own layer: ReLU6, with the deploy customization point beside it (found by argument-dependent lookup).
class relu6 {
public:
    using weight_policies = nn::type_list<>;

    template <std::size_t Rank>
    xt::xtensor<float, Rank> forward(xt::xtensor<float, Rank> const& x, nn::forward_context const&)
    {
        xt::xtensor<float, Rank> y = x;
        for (float& v : y) v = v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
        return y;
    }
    template <std::size_t Rank>
    xt::xtensor<float, Rank> backward(xt::xtensor<float, Rank> const& dy)
    {
        return dy;
    }
    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}
};

void lower(relu6& l, deploy::lowering& c)
{
    c.per_channel(c.name("relu6"), deploy::packed_step{deploy::clamp_step{0.0f, 6.0f}},
                  [l](xt::xtensor<float, 2>& x) mutable { x = l.forward(x, {.training = false}); });
}

using lowbit::test::step_kinds;

deploy::compile_options const integer_input{.input = {.scale = 1.0f, .offset = 0.0f}};

template <class Model>
xt::xtensor<float, 2> evaluate(Model& model, xt::xtensor<float, 2> const& x)
{
    return model.forward(x, {.training = false});
}

std::filesystem::path temp_file(char const* name)
{
    return std::filesystem::temp_directory_path() / (std::string("lowbit_lower_") + name + "_" +
                                                     std::to_string(std::random_device{}()) + ".lbpk");
}

} // namespace lower_test

using namespace lower_test;

TEST_CASE("deploy::compile lowers a user's own nn::sequential with a residual block, bit for bit")
{
    using xnor = nn::dense<ste::xnor_weight<>>;
    using sign = nn::quantize_activation<ste::sign_activation>;
    // Deeper than nn::mlp, with a residual block (its shortcut sign bits, its output signs, the sum in float),
    // then a dense layer on those floats {-2, 0, 2} (a float layer with packed weights).
    nn::sequential model(xnor({.in = 48, .out = 64, .bias = false}), nn::batch_norm<2>({.channels = 64}), sign{},
                         nn::residual(nn::sequential(xnor({.in = 64, .out = 64, .bias = false}),
                                                     nn::batch_norm<2>({.channels = 64}), sign{})),
                         xnor({.in = 64, .out = 64, .bias = false}), nn::batch_norm<2>({.channels = 64}), sign{},
                         xnor({.in = 64, .out = 64, .bias = false}), nn::batch_norm<2>({.channels = 64}), sign{},
                         xnor({.in = 64, .out = 10, .bias = true}));
    half_weights(model, 1);
    auto& head = model.template layer<10>();
    for (std::size_t j = 0; j < 10; ++j) head.bias()[j] = 0.25f * static_cast<float>(j) - 1.0f;
    xt::xtensor<float, 2> const x = integer_inputs(300, 48, 2);
    shake_batch_norms(model, x, 3);
    deploy::packed_model const packed = deploy::compile(model, integer_input);
    CHECK(step_kinds(packed.steps()) ==
          "input int>signs residual[int>signs decode] float_dense bn sign int>signs int>floats");
    xt::xtensor<float, 2> const want = evaluate(model, x);
    xt::xtensor<float, 2> const got = packed.forward(x);
    REQUIRE(got.shape() == want.shape());
    CHECK(got == want);
    // The thresholds are not trivial: some channels of the first layer decrease (negative gamma), and the
    // signs vary.
    auto const& first = std::get<deploy::integer_dense_step>(packed.steps()[1].op);
    auto const& t = std::get<deploy::sign_thresholds>(first.stage());
    bool flipped = false;
    for (std::uint64_t const w : t.flip) flipped = flipped || w != 0;
    CHECK(flipped);

    SUBCASE("the packed file reads back to the same outputs, and refuses what is broken")
    {
        std::filesystem::path const file = temp_file("residual");
        deploy::save_packed(file, packed);
        CHECK(io::load_archive(file).meta().at("format") == "lowbit-packed-model");
        deploy::packed_model const again = deploy::load_packed_model(file);
        CHECK(again.forward(x) == got);
        CHECK(deploy::packed_bytes(packed) == std::filesystem::file_size(file));
        std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
        CHECK_THROWS_AS(deploy::load_packed_model(file), io::io_error);
        std::filesystem::remove(file);
        // Steps that do not chain: a width changed in the archive.
        io::archive a = deploy::to_archive(packed);
        a.meta()["classes"] = "11";
        CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("not 11 floats"), io::io_error);
        a = deploy::to_archive(packed);
        a.meta()["step4.kind"] = "sign";
        CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("do not chain"), io::io_error);
        a.meta()["step4.kind"] = "fold";
        CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("no packed step"), io::io_error);
        a = deploy::to_archive(packed);
        a.meta()["packed_version"] = "2";
        CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("version 2"), io::io_error);
    }
    SUBCASE("bad input is refused")
    {
        CHECK_THROWS_WITH_AS(packed.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 47}))),
                             doctest::Contains("expected 48 input features, got 47"), invalid_input);
        xt::xtensor<float, 2> bad = x;
        bad(3, 5) = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_WITH_AS(packed.forward(bad), doctest::Contains("NaN"), invalid_input);
    }
}

TEST_CASE("deploy::compile: k-bit codes at another depth, and a user's own layer folded into the thresholds")
{
    using xnor = nn::dense<ste::xnor_weight<>>;
    // alpha = 2^bits - 1, so that a code's value is the code and every float sum is exact.
    using pact2 = nn::quantize_activation<ste::pact<2>>;
    pact2 const act(ste::pact<2>({.alpha = 3.0f}));
    nn::sequential model(xnor({.in = 40, .out = 32, .bias = false}), nn::batch_norm<2>({.channels = 32}), nn::relu{}, act,
                         xnor({.in = 32, .out = 32, .bias = false}), nn::batch_norm<2>({.channels = 32}), relu6{}, act,
                         xnor({.in = 32, .out = 32, .bias = false}), nn::batch_norm<2>({.channels = 32}), nn::relu{}, act,
                         xnor({.in = 32, .out = 10, .bias = true}));
    half_weights(model, 4);
    xt::xtensor<float, 2> const x = integer_inputs(257, 40, 5);
    shake_batch_norms(model, x, 6);
    deploy::packed_model const packed = deploy::compile(model, integer_input);
    CHECK(step_kinds(packed.steps()) == "input int>codes int>codes int>codes int>floats");
    CHECK(packed.forward(x) == evaluate(model, x));
    SUBCASE("deploy::audit reads every code layer of the general path, and finds a code it cannot explain")
    {
        xt::xtensor<std::uint8_t, 1> const labels = xt::zeros<std::uint8_t>({x.shape(0)});
        deploy::rounding_audit const a = deploy::audit(model, packed, x, labels, integer_input);
        CHECK(a.values == 3 * 32 * x.shape(0));  // three code layers of 32 channels
        CHECK(a.differing == 0);                 // the sums are exact
        CHECK(a.unexplained == 0);
        CHECK(a.argmax_disagreements == 0);
        CHECK(a.logits_outside == 0);
        CHECK(a.packed_correct == a.fake_correct);
        // The fake-quant model changed after compiling (a BatchNorm's mean moved by a step of its output): the
        // packed codes of that channel are no longer the model's, beyond any rounding.
        auto& bn = model.template layer<5>();
        bn.running_mean()[3] += 2.0f * std::sqrt(bn.running_var()[3] + bn.options().eps) / std::abs(bn.gamma()[3] + 1e-3f);
        deploy::rounding_audit const moved = deploy::audit(model, packed, x, labels, integer_input);
        CHECK(moved.unexplained > 0);
        // The audit refuses a packed model of another model, and a model whose logits have no bound of their own.
        nn::sequential shorter(xnor({.in = 40, .out = 10, .bias = true}));
        CHECK_THROWS_WITH_AS(deploy::audit(shorter, packed, x, labels, integer_input),
                             doctest::Contains("it is not this model's"), invalid_input);
        nn::sequential bn_head(xnor({.in = 40, .out = 10, .bias = false}), nn::batch_norm<2>({.channels = 10}));
        CHECK_THROWS_WITH_AS(deploy::audit(bn_head, deploy::compile(bn_head, integer_input), x, labels, integer_input),
                             doctest::Contains("last layer must be a dense layer"), invalid_input);
    }
    // The same model with the codes decoded and the thresholds in float (a layer that is not fused) agrees too:
    // the user's layer after a float input.
    nn::sequential floats_first(relu6{}, act, xnor({.in = 40, .out = 10, .bias = true}));
    half_weights(floats_first, 7);
    xt::xtensor<float, 2> const y = (x - 100.0f) / 16.0f;  // some negative, some above 6
    deploy::packed_model const f = deploy::compile(floats_first, integer_input);
    CHECK(step_kinds(f.steps()) == "clamp codes int>floats");
    CHECK(f.forward(y) == evaluate(floats_first, y));
}

TEST_CASE("deploy::compile: BinaryConnect's model with float activations and the BatchNorm head (scripts/demo's), and its input codes")
{
    // lowbit-train's default: lowbit::quantizer<1> weights, float ReLU, the BatchNorm head.
    using q1 = quantizer<1, nearest_even_t, clip::fixed_range>;
    q1 const q{.clipping = {.bound = 1.0f}};
    auto model = nn::mlp({.inputs = 36, .hidden = 48, .classes = 10}, q, q, q);
    half_weights(model, 8);
    xt::xtensor<float, 2> const x = integer_inputs(200, 36, 9);
    shake_batch_norms(model, x, 10);
    deploy::packed_model const packed = deploy::compile(model, integer_input);
    CHECK(step_kinds(packed.steps()) == "input int>floats bn clamp float_dense bn clamp float_dense bn");
    CHECK(packed.forward(x) == evaluate(model, x));

    // The float values of a file must be finite: a NaN scale, or an infinity in an integer layer's float outputs,
    // is a damaged file (every output it touched would be NaN), refused on load.
    io::archive const a = deploy::to_archive(packed);
    REQUIRE(a.find("step4.scale") != nullptr);  // the hidden float_dense step's per-channel steps
    io::archive nan_scale = test::without(a, "step4.scale");
    nan_scale.add("step4.scale", {48}, std::vector<float>(48, std::numeric_limits<float>::quiet_NaN()));
    CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(nan_scale),
                         doctest::Contains("entry 'step4.scale' holds a value that is not finite"), io::io_error);
    io::archive inf_affine = test::without(a, "step1.affine");
    std::vector<std::uint64_t> bits = a.integers<std::uint64_t>("step1.affine", std::vector<std::size_t>{2 * 48 + 1});
    bits[3] = std::bit_cast<std::uint64_t>(std::numeric_limits<double>::infinity());
    inf_affine.add("step1.affine", {2 * 48 + 1}, bits);
    CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(inf_affine),
                         doctest::Contains("'step1.affine' or 'step1.bias' holds a value that is not finite"), io::io_error);

    // packed_model::forward reads 8-bit input codes as they are stored, and refuses a model without the input map.
    // The input map of scale 1 and offset 0 reads the integers 0..255 as their own codes.
    xt::xtensor<std::uint8_t, 2> codes = xt::xtensor<std::uint8_t, 2>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) codes.data()[i] = static_cast<std::uint8_t>(x.data()[i]);
    CHECK(packed.forward(codes) == packed.forward(x));
    xt::xtensor<std::uint8_t, 2> const narrow = xt::zeros<std::uint8_t>({std::size_t{2}, std::size_t{35}});
    CHECK_THROWS_WITH_AS(packed.forward(narrow), doctest::Contains("expected 36 input codes per row, got 35"),
                         invalid_input);
    // A model whose first layer reads floats (BatchNorm before the first dense layer) has no input codes.
    using xnor = nn::dense<ste::xnor_weight<>>;
    nn::sequential float_first(nn::batch_norm<2>({.channels = 36}), xnor({.in = 36, .out = 4, .bias = true}));
    deploy::packed_model const floats = deploy::compile(float_first);
    CHECK_THROWS_WITH_AS(floats.forward(codes), doctest::Contains("reads floats, not 8-bit input codes"), invalid_input);
}

TEST_CASE("deploy::compile refuses what does not lower, naming the layer")
{
    using xnor = nn::dense<ste::xnor_weight<>>;
    // A residual block must keep the width.
    nn::sequential widening(xnor({.in = 8, .out = 8, .bias = false}), nn::batch_norm<2>({.channels = 8}),
                            nn::residual(nn::sequential(xnor({.in = 8, .out = 4, .bias = false}))),
                            xnor({.in = 4, .out = 2, .bias = true}));
    CHECK_THROWS_WITH_AS(deploy::compile(widening), doctest::Contains("layer 2 (residual): the inner block maps 8 features to 4"),
                         invalid_input);
    // Widths that do not chain.
    nn::sequential broken(xnor({.in = 8, .out = 8, .bias = false}), xnor({.in = 6, .out = 2, .bias = true}));
    CHECK_THROWS_WITH_AS(deploy::compile(broken), doctest::Contains("layer 1 (dense) reads 6 features, but the layer before writes 8"),
                         invalid_input);
    // A quantizer chosen at run time that writes signed values has no code encoding.
    nn::sequential erased(xnor({.in = 8, .out = 8, .bias = false}),
                          nn::quantize_activation<ste::any_quantizer>(ste::any_quantizer(ste::dorefa_weight<2>{})),
                          xnor({.in = 8, .out = 2, .bias = true}));
    CHECK_THROWS_WITH_AS(deploy::compile(erased), doctest::Contains("not unsigned codes"), invalid_input);
}

namespace lower_test {

/// Integer images [n, channels * side * side] in [lo, lo + 255].
xt::xtensor<float, 2> integer_images(std::size_t n, std::size_t features, std::uint64_t seed, float lo)
{
    xt::xtensor<float, 2> x = integer_inputs(n, features, seed);
    return x + lo;
}

template <class Model>
xt::xtensor<float, 2> evaluate_images(Model& model, xt::xtensor<float, 2> const& x, std::size_t channels, std::size_t side)
{
    return model.forward(nn::as_images(x, channels, side, side), {.training = false});
}

template <class Model>
void shake_images(Model& model, xt::xtensor<float, 2> const& x, std::size_t channels, std::size_t side, std::uint64_t seed)
{
    shake_batch_norms(model, nn::as_images(x, channels, side, side), seed);
}

} // namespace lower_test

TEST_CASE("deploy::compile lowers a user's own CNN (residual block, another pooling order), bit for bit")
{
    using conv = nn::conv2d<ste::xnor_weight<>>;
    using sign = nn::quantize_activation<ste::sign_activation>;
    nn::sequential model(conv({.in = 1, .out = 8, .kernel = 3, .padding = 1, .bias = false}), nn::batch_norm<4>({.channels = 8}),
                         sign{},
                         nn::residual(nn::sequential(conv({.in = 8, .out = 8, .kernel = 3, .padding = 1, .bias = false}),
                                                     nn::batch_norm<4>({.channels = 8}), sign{})),
                         sign{}, nn::max_pool2d{},
                         conv({.in = 8, .out = 16, .kernel = 3, .padding = 1, .bias = false}),
                         nn::batch_norm<4>({.channels = 16}), sign{}, nn::flatten{},
                         nn::dense<ste::xnor_weight<>>({.in = 16 * 4 * 4, .out = 10, .bias = true}));
    half_weights(model, 11);
    xt::xtensor<float, 2> const x = integer_images(120, 64, 12, 0.0f);
    shake_images(model, x, 1, 8, 13);
    deploy::compile_options o = integer_input;
    o.height = o.width = 8;
    deploy::packed_model const packed = deploy::compile(model, o);
    CHECK(step_kinds(packed.steps()) ==
          "nhwc input iconv>signs residual[iconv>signs decode] sign pool iconv>signs flatten int>floats");
    xt::xtensor<float, 2> const got = packed.forward(x);
    CHECK(got == evaluate_images(model, x, 1, 8));
    CHECK(packed.forward(xt::xtensor<float, 4>(nn::as_images(x, 1, 8, 8))) == got);  // the same images as a tensor
    std::filesystem::path const file = temp_file("cnn");
    deploy::save_packed(file, packed);
    CHECK(deploy::load_packed_model(file).forward(x) == got);
    std::filesystem::remove(file);
    // A convolution's geometry is checked on load (a stride of 0 once divided by zero: the fuzzer's finding).
    io::archive a = deploy::to_archive(packed);
    a.meta()["step2.stride"] = "0";
    CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("kernel and stride must be positive"),
                         io::io_error);
    a = deploy::to_archive(packed);
    a.meta()["step2.padding"] = "0";
    a.meta()["step2.height"] = "2";
    CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("input is smaller than the 3x3 kernel"),
                         io::io_error);
    a.meta()["step2.height"] = "513";  // over packed_model_max_side
    CHECK_THROWS_WITH_AS(deploy::packed_model_from_archive(a), doctest::Contains("step2.height"), io::io_error);
    // The size must be given: a convolution first needs the images' height and width.
    CHECK_THROWS_WITH_AS(deploy::compile(model, integer_input), doctest::Contains("set compile_options::height and width"),
                         invalid_input);
}

TEST_CASE("deploy::compile: a CNN that starts with an activation on its input images, bit for bit")
{
    // The activations before the first convolution run on the input's flat rows in the fake-quant model; the packed
    // model puts its NHWC step first (they are elementwise) and runs the convolutions on sign bits or codes.
    using conv = nn::conv2d<ste::xnor_weight<>>;
    using sign = nn::quantize_activation<ste::sign_activation>;
    nn::sequential on_signs(sign{}, conv({.in = 2, .out = 8, .kernel = 3, .padding = 1, .bias = false}),
                            nn::batch_norm<4>({.channels = 8}), sign{}, nn::flatten{},
                            nn::dense<ste::xnor_weight<>>({.in = 8 * 6 * 6, .out = 10, .bias = true}));
    half_weights(on_signs, 21);
    xt::xtensor<float, 2> const x = integer_images(80, 2 * 36, 22, -128.0f);
    shake_images(on_signs, x, 2, 6, 23);
    deploy::packed_model const signs = deploy::compile(on_signs, {.height = 6, .width = 6});
    CHECK(step_kinds(signs.steps()) == "nhwc sign iconv>signs flatten int>floats");
    CHECK(signs.forward(x) == evaluate_images(on_signs, x, 2, 6));

    // ReLU then 2-bit PACT codes (alpha 3: a code's value is the code) on the input.
    nn::quantize_activation<ste::pact<2>> const act(ste::pact<2>({.alpha = 3.0f}));
    nn::sequential on_codes(nn::relu{}, act, conv({.in = 2, .out = 8, .kernel = 3, .padding = 1, .bias = false}),
                            nn::batch_norm<4>({.channels = 8}), nn::relu{}, act, nn::flatten{},
                            nn::dense<ste::xnor_weight<>>({.in = 8 * 6 * 6, .out = 10, .bias = true}));
    half_weights(on_codes, 24);
    xt::xtensor<float, 2> const small = integer_images(80, 2 * 36, 25, -1.0f) / 64.0f;  // about -0.02 .. 4
    shake_images(on_codes, small, 2, 6, 26);
    deploy::packed_model const codes = deploy::compile(on_codes, {.height = 6, .width = 6});
    CHECK(step_kinds(codes.steps()).starts_with("nhwc "));
    CHECK(codes.forward(small) == evaluate_images(on_codes, small, 2, 6));
}

TEST_CASE("packed_model::forward splits a batch between threads, bit for bit")
{
    // A batch of at least 32 samples on 2 threads runs as two parts, each through every step; the outputs must be
    // those of 1 thread, whatever the split (37 samples: 18 and 19).
    using conv = nn::conv2d<ste::xnor_weight<>>;
    using sign = nn::quantize_activation<ste::sign_activation>;
    nn::sequential cnn(conv({.in = 1, .out = 8, .kernel = 3, .padding = 1, .bias = false}), nn::batch_norm<4>({.channels = 8}),
                       sign{}, nn::max_pool2d{}, conv({.in = 8, .out = 8, .kernel = 3, .padding = 1, .bias = false}),
                       nn::batch_norm<4>({.channels = 8}), sign{}, nn::flatten{},
                       nn::dense<ste::dorefa_weight<8>>({.in = 8 * 4 * 4, .out = 10, .bias = true}));
    half_weights(cnn, 31);
    xt::xtensor<float, 2> const images = integer_images(37, 64, 32, 0.0f);
    shake_images(cnn, images, 1, 8, 33);
    deploy::compile_options o = integer_input;
    o.height = o.width = 8;
    deploy::packed_model const packed = deploy::compile(cnn, o);
    // The float-activation model of scripts/demo keeps its batch whole (its float layers' sgemm may round a row
    // differently with the number of rows); it must give the same outputs on 1 and 2 threads too.
    using q1 = quantizer<1, nearest_even_t, clip::fixed_range>;
    q1 const q{.clipping = {.bound = 1.0f}};
    auto mlp = nn::mlp({.inputs = 36, .hidden = 48, .classes = 10}, q, q, q);
    half_weights(mlp, 34);
    xt::xtensor<float, 2> const rows = integer_inputs(64, 36, 35);
    shake_batch_norms(mlp, rows, 36);
    deploy::packed_model const floats = deploy::compile(mlp, integer_input);
    xt::xtensor<std::uint8_t, 2> codes = xt::xtensor<std::uint8_t, 2>::from_shape(rows.shape());
    for (std::size_t i = 0; i < rows.size(); ++i) codes.data()[i] = static_cast<std::uint8_t>(rows.data()[i]);

    unsigned const before = num_threads();
    set_num_threads(1);
    xt::xtensor<float, 2> const one = packed.forward(images);
    xt::xtensor<float, 2> const one_floats = floats.forward(rows);
    set_num_threads(2);
    CHECK(packed.forward(images) == one);
    CHECK(floats.forward(rows) == one_floats);
    CHECK(floats.forward(codes) == one_floats);
    set_num_threads(before);
    CHECK(one == evaluate_images(cnn, images, 1, 8));  // and the outputs are the fake-quant model's (exact sums)
    // An error in a part is the caller's: a NaN in the second half of the batch.
    xt::xtensor<float, 2> bad = images;
    bad(30, 5) = std::numeric_limits<float>::quiet_NaN();
    set_num_threads(2);
    CHECK_THROWS_AS(packed.forward(bad), invalid_input);
    set_num_threads(before);
}

TEST_CASE("deploy::compile: a k-bit CNN whose input codes' zero point is not 0 (padding classes), bit for bit")
{
    using conv = nn::conv2d<ste::xnor_weight<>>;
    nn::quantize_activation<ste::pact<2>> const act(ste::pact<2>({.alpha = 3.0f}));
    nn::sequential model(conv({.in = 2, .out = 8, .kernel = 3, .padding = 1, .bias = false}), nn::batch_norm<4>({.channels = 8}),
                         nn::relu{}, act, nn::max_pool2d{},
                         conv({.in = 8, .out = 8, .kernel = 3, .padding = 1, .bias = false}),
                         nn::batch_norm<4>({.channels = 8}), nn::relu{}, act, nn::flatten{},
                         nn::dense<ste::xnor_weight<>>({.in = 8 * 4 * 4, .out = 10, .bias = true}));
    half_weights(model, 14);
    // Inputs -128..127: the input map's code 0 is -128, so the first layer's padded taps (0.0 in the float model)
    // are not code 0, and each padding class has its own thresholds.
    xt::xtensor<float, 2> const x = integer_images(90, 128, 15, -128.0f);
    shake_images(model, x, 2, 8, 16);
    deploy::packed_model const packed =
        deploy::compile(model, {.input = {.scale = 1.0f, .offset = -128.0f}, .height = 8, .width = 8});
    CHECK(step_kinds(packed.steps()) == "nhwc input iconv>codes pool iconv>codes flatten int>floats");
    // deploy::audit on images: every code of both code layers (8 x 8 and, after the pooling, 4 x 4 pixels).
    deploy::rounding_audit const audit =
        deploy::audit(model, packed, x, xt::zeros<std::uint8_t>({x.shape(0)}),
                      {.input = {.scale = 1.0f, .offset = -128.0f}, .height = 8, .width = 8});
    CHECK(audit.values == x.shape(0) * 8 * (8 * 8 + 4 * 4));
    CHECK(audit.differing == 0);
    CHECK(audit.unexplained == 0);
    CHECK(audit.argmax_disagreements == 0);
    auto const& first = std::get<deploy::integer_conv_step>(packed.steps()[2].op);
    CHECK(std::get<std::vector<deploy::level_thresholds>>(first.stage()).size() == first.classes().count());
    CHECK(first.classes().count() == 9);
    CHECK(packed.forward(x) == evaluate_images(model, x, 2, 8));
}

TEST_CASE("deploy::compile: nn::cnn with float activations and the BatchNorm head (Li et al.'s CNN)")
{
    using q1 = quantizer<1, nearest_even_t, clip::fixed_range>;
    q1 const q{.clipping = {.bound = 1.0f}};
    auto model = nn::cnn({.size = 8, .width1 = 4, .width2 = 4, .hidden = 8, .classes = 10}, q, q, q);
    half_weights(model, 17);
    xt::xtensor<float, 2> const x = integer_images(60, 64, 18, 0.0f);
    shake_images(model, x, 1, 8, 19);
    deploy::packed_model const packed = deploy::compile(model, {.input = {.scale = 1.0f, .offset = 0.0f}, .height = 8, .width = 8});
    CHECK(step_kinds(packed.steps()) == "nhwc input iconv>floats bn clamp float_conv bn clamp pool float_conv bn clamp "
                                        "float_conv bn clamp pool flatten float_dense bn clamp float_dense bn");
    CHECK(packed.forward(x) == evaluate_images(model, x, 1, 8));
    // The trained model's summary and the packed model's agree on every weight layer's bits and bytes.
    std::vector<std::pair<int, std::size_t>> trained, deployed;
    for (auto const& l : summary(model, {1, 8, 8}).layers)
        if (l.weights != 0) trained.emplace_back(l.weight_bits, l.weight_bytes());
    for (auto const& l : summary(packed).layers)
        if (l.weights != 0) deployed.emplace_back(l.weight_bits, l.weight_bytes());
    CHECK(trained.size() == 6);
    CHECK(trained == deployed);
}
