// SPDX-License-Identifier: MIT
// lowbit-infer: the CNN with k-bit code activations (lowbit-train --model cnn --quantizer pact / cg-pact / dorefa /
// xnor --act-bits k, --method sat), rebuilt as lowbit-train built it (trained_model.hpp: nn::cnn's default widths),
// compiled into deploy::packed_kbit_cnn and compared code by code, layer by layer, with the fake-quant model: the
// codes of the four convolutions (before their pooling) and of the hidden dense layer.
// A packed k-bit CNN file needs no recipe: any `lowbit-packed-kbit-cnn` of nn::cnn's shape (1x28x28 images,
// 10 classes, any widths) is measured, its float bytes those of the float model of its widths.
#include "common.hpp"
#include "infer.hpp"
#include "kbit_common.hpp"

#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_kbit_cnn.hpp>
#include <lowbit/deploy/packed_kbit_cnn_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit_infer {

namespace {

namespace deploy = lowbit::deploy;

/// The report's model description and JSON head, from the packed model itself (so that a checkpoint and its
/// packed file describe themselves alike).
void describe(report& r, deploy::packed_kbit_cnn const& packed, options const& o, std::string const& activations)
{
    auto const z = [](std::size_t v) { return std::to_string(v); };
    std::size_t const w1 = packed.convs()[0].shape().filters, w2 = packed.convs()[2].shape().filters;
    std::size_t const hidden = packed.dense().front().out();
    int const act_bits =
        static_cast<int>(std::bit_width(static_cast<unsigned>(packed.convs()[0].thresholds().front().levels)));
    int const bits = packed.convs()[1].weights().bits, edge = packed.convs()[0].weights().bits;
    r.model = "cnn 1x28x28 (conv " + z(w1) + "-" + z(w1) + ", conv " + z(w2) + "-" + z(w2) + ", dense " + z(hidden) +
              "-10; " + std::to_string(act_bits) + "-bit " + activations + " activations, " +
              (bits == 1 ? std::string("binary") : std::to_string(bits) + "-bit") + " hidden weights, " +
              std::to_string(edge) + "-bit first/last)";
    r.json_head = std::string("\"model\": \"cnn-kbit\", \"mode\": \"") + mode_of(o) + "\", \"widths\": [" + z(w1) +
                  ", " + z(w2) + ", " + z(hidden) + "], \"act_bits\": " + std::to_string(act_bits) +
                  ", \"bits\": " + std::to_string(bits) + ", \"first_last_bits\": " + std::to_string(edge) + ", ";
    r.hidden_values = "codes";
    r.differing_key = "hidden_code_diffs";
    r.images_key = "images_with_code_diffs";
}

/// The test set's pixel codes as images [n, 1, 28, 28].
xt::xtensor<std::uint8_t, 4> image_codes(xt::xtensor<std::uint8_t, 2> const& codes)
{
    xt::xtensor<std::uint8_t, 4> out = xt::xtensor<std::uint8_t, 4>::from_shape({codes.shape(0), 1, 28, 28});
    std::copy(codes.begin(), codes.end(), out.begin());
    return out;
}

template <class Model>
int run_checkpoint(options const& o, lowbit::io::archive const& file, lowbit_train::config const& c, Model model)
{
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read. lowbit-train's erased quantizers
    // name their parameters as the concrete ones do (`pact.alpha`); older files are renamed by from_archive.
    lowbit::train::from_archive(model, file, {{"model", "cnn"}});
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, true);
    xt::xtensor<std::uint8_t, 4> const codes = image_codes(d.codes);
    xt::xtensor<float, 4> const x = lowbit::nn::as_images(d.x, 1, 28, 28);
    deploy::packed_kbit_cnn const packed =
        naming_the_recipe(file, c, [&] { return deploy::compile(model, {.input = d.st.map}); });
    if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
    check_input_map(packed, x, codes, d.st);

    // The fake-quant model layer by layer, 1000 images at a time: its codes after each ReLU + PACT (the four
    // convolution blocks, then the hidden dense layer) against the packed model's. They can differ only where the
    // fake-quant model's own float sums put a BatchNorm output within rounding of a PACT step (deploy::audit
    // checks each difference for that).
    r.compared = deploy::audit(model, packed, x, codes, d.test.labels);
    std::size_t const inner = inner_codes(packed, codes, c.act_bits);
    describe(r, packed, o, activation_name(&c));
    r.json_extra = ", \"inner_codes\": " + std::to_string(inner);
    r.packed_bytes = deploy::packed_bytes(packed);
    print_summaries(o, model, {1, 28, 28}, packed);
    r.t = measure(packed, codes, d.test.labels, o);
    print_report(r, o);
    return 0;
}

int run_packed(options const& o, lowbit::io::archive const& file)
{
    lowbit::set_num_threads(o.threads);
    deploy::packed_kbit_cnn const packed = deploy::kbit_cnn_from_archive(file);
    auto const pooled = [&](std::size_t i) { return !packed.pools()[i].none(); };
    if (packed.channels() != 1 || packed.height() != 28 || packed.width() != 28 || packed.classes() != 10 ||
        packed.convs().size() != 4 || packed.dense().size() != 2 || pooled(0) || !pooled(1) || pooled(2) ||
        !pooled(3))
        throw std::runtime_error(o.packed + ": not nn::cnn's model of 1x28x28 images and 10 classes (" +
                                 std::to_string(packed.convs().size()) + " convolutions, " +
                                 std::to_string(packed.dense().size()) + " dense layers, " +
                                 std::to_string(packed.classes()) + " classes)");
    report r;
    // The float model of its widths; every recipe holds the same float tensors (weights, BatchNorm, the last
    // layer's bias, five alphas), so the stand-in recipe with 2-bit activations stands for any.
    r.float_bytes = static_cast<std::size_t>(with_code_cnn(
        stand_in_config(o, "cnn", 2), [](auto model) { return static_cast<int>(lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size()); },
        {.width1 = packed.convs()[0].shape().filters, .width2 = packed.convs()[2].shape().filters,
         .hidden = packed.dense().front().out()}));
    test_data const d = load_test_data(o, false);
    describe(r, packed, o, activation_name(nullptr));
    r.json_extra = ", \"inner_codes\": null";
    r.packed_bytes = deploy::packed_bytes(packed);
    print_summaries(o, packed);
    r.t = measure(packed, image_codes(d.codes), d.test.labels, o);
    print_report(r, o);
    return 0;
}

} // namespace

int run_kbit_cnn(options const& o, lowbit::io::archive const& file)
{
    if (o.checkpoint.empty()) return run_packed(o, file);
    lowbit_train::config const c = trained_config(o, file, "cnn");
    return with_code_cnn(c, [&](auto model) { return run_checkpoint(o, file, c, std::move(model)); });
}

} // namespace lowbit_infer
