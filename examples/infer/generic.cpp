// SPDX-License-Identifier: MIT
// lowbit-infer: models that deploy::compile lowers layer by layer into a deploy::packed_model (deploy/lower.hpp) --
// lowbit-train's default MLP and CNN (Li et al.'s B-bit weights, float ReLU activations, the BatchNorm head:
// --method bc, sr, r or sqwa without --act-bits), and `lowbit-packed-model` files. The packed model reads the
// standardised floats the fake-quant model reads; its first layer maps them to 8-bit codes and runs on the int8
// kernel, the later ones on float activations with packed weights. Agreement is argmax agreement on every test
// image and the largest logit difference (no per-value audit: the hidden activations are floats).
#include "common.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace lowbit_infer {

namespace {

namespace deploy = lowbit::deploy;

/// Calls @p run with lowbit-train's quantizer of Li et al.'s grid for configuration @p c (SQWA's L2-optimal grid
/// for --method sqwa), at 1 or 2 bits. Nearest rounding whatever the method's: SR- and R-trained weights are on
/// the grid, and BC evaluates so.
/// @throws io::io_error naming @p file for another bit width (each one is two more model types to compile).
template <class Run>
int with_li_quantizer(lowbit::io::archive const& file, lowbit_train::config const& c, Run&& run)
{
    auto const li = [&]<int B>(std::integral_constant<int, B>) {
        if (c.method == "sqwa") return run(lowbit::quantizer<B, lowbit::nearest_even_t, lowbit::clip::l2_optimal>{});
        return run(lowbit_train::cli_quantizer<B, lowbit::nearest_even_t>{.clipping = {.bound = 1.0f}});
    };
    if (c.bits == 1) return li(std::integral_constant<int, 1>{});
    if (c.bits == 2) return li(std::integral_constant<int, 2>{});
    throw lowbit::io::io_error{file.source(), "trained with lowbit-train " + trained_with(c) +
                                                  ": lowbit-infer deploys Li et al.'s models with float activations "
                                                  "at --bits 1 or 2"};
}

/// The fake-quant model's logits of @p x (rows of 784 pixels, as 1 x 28 x 28 images for nn::cnn), 500 at a time.
template <class Model>
xt::xtensor<float, 2> fake_quant_logits(Model& model, xt::xtensor<float, 2> const& x)
{
    std::size_t const n = x.shape(0);
    xt::xtensor<float, 2> out = xt::xtensor<float, 2>::from_shape({n, 10});
    for (std::size_t s = 0; s < n; s += 500) {
        std::size_t const e = std::min(n, s + 500);
        xt::xtensor<float, 2> const b = xt::view(x, xt::range(s, e));
        if constexpr (deploy::CnnModel<Model>)
            xt::view(out, xt::range(s, e)) = model.forward(lowbit::nn::as_images(b, 1, 28, 28), {.training = false});
        else
            xt::view(out, xt::range(s, e)) = model.forward(b, {.training = false});
    }
    return out;
}

/// The two models' logits side by side: fake-quant accuracy, argmax disagreements, the largest difference.
plain_comparison compare(xt::xtensor<float, 2> const& fake, xt::xtensor<float, 2> const& packed,
                         xt::xtensor<std::uint8_t, 1> const& labels)
{
    plain_comparison p;
    p.images = fake.shape(0);
    for (std::size_t i = 0; i < p.images; ++i) {
        std::size_t const f = argmax_row(fake, i);
        p.fake_correct += f == labels(i) ? 1u : 0u;
        p.disagreements += f != argmax_row(packed, i) ? 1u : 0u;
        for (std::size_t j = 0; j < fake.shape(1); ++j)
            p.max_logit_diff = std::max(p.max_logit_diff, static_cast<double>(std::abs(fake(i, j) - packed(i, j))));
    }
    return p;
}

} // namespace

int run_model(options const& o, lowbit::io::archive const& file)
{
    lowbit::set_num_threads(o.threads);
    bool const from_checkpoint = !o.checkpoint.empty();
    deploy::packed_model packed;
    report r;
    lowbit_train::config c;
    std::size_t hidden = 0;
    if (from_checkpoint) {
        c = trained_config(o, file, meta_value(file, "model") == "cnn" ? "cnn" : "mlp");
        hidden = hidden_width(o, file);
    } else {
        packed = deploy::packed_model_from_archive(file);
        if (packed.inputs() != 784 || packed.classes() != 10)
            throw std::runtime_error(o.packed + ": not a model of 784 inputs and 10 classes (" +
                                     std::to_string(packed.inputs()) + " inputs, " + std::to_string(packed.classes()) +
                                     " classes)");
    }
    // The packed model reads the standardised floats, so a packed file needs the training set's standardisation too.
    test_data const d = load_test_data(o, true);
    if (from_checkpoint) {
        bool const cnn = c.model == "cnn";
        auto const deploy_model = [&](auto model) {
            lowbit::train::from_archive(model, file, {{"model", c.model}});
            r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
            deploy::compile_options const options{.input = d.st.map, .height = cnn ? 28u : 0u, .width = cnn ? 28u : 0u};
            packed = naming_the_recipe(file, c, [&] { return deploy::compile(model, options); });
            if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
            r.plain = compare(fake_quant_logits(model, d.x), packed.forward(d.x), d.test.labels);
            if (cnn)
                print_summaries(o, model, {1, 28, 28}, packed);
            else
                print_summaries(o, model, {784}, packed);
            return 0;
        };
        // lowbit-train's MLP of hidden width `hidden`, or its CNN (nn::cnn's default widths), float activations.
        namespace nn = lowbit::nn;
        with_li_quantizer(file, c, [&](auto q) {
            if (cnn) return deploy_model(nn::cnn({}, q, q, q));
            return deploy_model(
                nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit}, q, q, q));
        });
    } else {
        // The float model's bytes of a packed file: its summary's (every weight and BatchNorm value in float).
        r.float_bytes = lowbit::summary(packed).float_bytes();
        print_summaries(o, packed);
    }
    r.packed_bytes = deploy::packed_bytes(packed);
    r.t = measure(packed, d.x, d.test.labels, o);
    std::size_t const steps = packed.steps().size();
    r.model = (c.model == "cnn" ? "cnn 1x28x28, " : "784-...-10, ") + std::to_string(steps) + " packed steps" +
              (from_checkpoint ? " (lowbit-train " + trained_with(c) + ")" : std::string());
    r.json_head = std::string("\"model\": \"packed_model\", \"mode\": \"") + mode_of(o) +
                  "\", \"steps\": " + std::to_string(steps) + ", ";
    print_report(r, o);
    return 0;
}

} // namespace lowbit_infer
