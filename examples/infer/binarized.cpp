// SPDX-License-Identifier: MIT
// lowbit-infer: the binarized MLP and CNN (sign activations; lowbit-train --quantizer xnor|dorefa --act-bits 1),
// rebuilt as lowbit-train built them (trained_model.hpp), compiled into deploy::packed_mlp / packed_cnn and compared
// sign by sign with the fake-quant model.
#include "common.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit_infer {

namespace {

namespace deploy = lowbit::deploy;

/// lowbit-infer for the binarized MLP of recipe @p c: @p make_model(hidden) builds the checkpoint's model (for a
/// packed file, the float model of its shape, whose bytes the packed ones are compared with).
template <class MakeModel>
int run_mlp(options const& o, lowbit::io::archive const& file, lowbit_train::config const& c, MakeModel make_model)
{
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read.
    bool const from_checkpoint = !o.checkpoint.empty();
    deploy::packed_mlp packed;
    std::size_t hidden = 0;
    if (from_checkpoint) {
        hidden = hidden_width(o, file);
    } else {
        packed = deploy::from_archive(file);
        if (packed.inputs() != 784 || packed.classes() != 10 || packed.layers().size() != 3)
            throw std::runtime_error(o.packed + ": not a 784-H-H-10 model (" + std::to_string(packed.inputs()) +
                                     " inputs, " + std::to_string(packed.layers().size()) + " layers, " +
                                     std::to_string(packed.classes()) + " classes)");
        hidden = packed.layers()[0].out();
    }
    auto model = make_model(hidden);
    if (from_checkpoint) lowbit::train::from_archive(model, file, {{"model", "mlp"}});
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, from_checkpoint);
    if (from_checkpoint) {
        packed = naming_the_recipe(file, c, [&] { return deploy::compile(model, {.input = d.st.map}); });
        if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
        check_input_map(packed, d.x, d.codes, d.st);
        // The fake-quant model layer by layer against the packed bits: they can differ only where its own float
        // sums put BatchNorm's output within rounding of 0 (deploy::audit checks each difference for that).
        r.compared = deploy::audit(model, packed, d.x, d.codes, d.test.labels);
    }
    r.packed_bytes = deploy::packed_bytes(packed);
    if (from_checkpoint)
        print_summaries(o, model, {784}, packed);
    else
        print_summaries(o, packed);
    r.t = measure(packed, d.codes, d.test.labels, o);
    std::string const h = std::to_string(hidden);
    r.model = "784-" + h + "-" + h + "-10";
    r.json_head = std::string("\"model\": \"mlp\", \"mode\": \"") + mode_of(o) + "\", \"hidden\": " + h +
                  ", \"first_last_bits\": " + std::to_string(packed.layers()[0].weights().bits) + ", ";
    print_report(r, o);
    return 0;
}

/// As run_mlp for the binarized CNN (lowbit-train --model cnn), with the hidden signs of all four convolutions
/// and the hidden dense layer compared.
template <class Model>
int run_cnn(options const& o, lowbit::io::archive const& file, lowbit_train::config const& c, Model model)
{
    lowbit::set_num_threads(o.threads);
    bool const from_checkpoint = !o.checkpoint.empty();
    deploy::packed_cnn packed;
    if (from_checkpoint) {
        lowbit::train::from_archive(model, file, {{"model", "cnn"}});
    } else {
        packed = deploy::cnn_from_archive(file);
        if (packed.channels() != 1 || packed.height() != 28 || packed.width() != 28 || packed.classes() != 10 ||
            packed.convs().size() != 4 || packed.dense().size() != 2)
            throw std::runtime_error(o.packed + ": not nn::cnn's model of 1x28x28 images and 10 classes");
    }
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, from_checkpoint);
    std::size_t const n = d.codes.shape(0);
    xt::xtensor<std::uint8_t, 4> codes = xt::xtensor<std::uint8_t, 4>::from_shape({n, 1, 28, 28});
    std::copy(d.codes.begin(), d.codes.end(), codes.begin());
    if (from_checkpoint) {
        // lowbit-train's standardisation, folded into the input map as for the MLP.
        xt::xtensor<float, 4> const x = lowbit::nn::as_images(d.x, 1, 28, 28);
        packed = naming_the_recipe(file, c, [&] { return deploy::compile(model, {.input = d.st.map}); });
        if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
        check_input_map(packed, x, codes, d.st);
        // The fake-quant model layer by layer, 1000 images at a time, against the packed model's sign layers.
        r.compared = deploy::audit(model, packed, x, codes, d.test.labels);
    }
    r.packed_bytes = deploy::packed_bytes(packed);
    if (from_checkpoint)
        print_summaries(o, model, {1, 28, 28}, packed);
    else
        print_summaries(o, packed);
    r.t = measure(packed, codes, d.test.labels, o);
    std::size_t const w1 = packed.convs()[0].shape().filters, w2 = packed.convs()[2].shape().filters;
    std::size_t const hidden = packed.dense().front().out();
    auto const z = [](std::size_t v) { return std::to_string(v); };
    r.model = "cnn 1x28x28 (conv " + z(w1) + "-" + z(w1) + ", conv " + z(w2) + "-" + z(w2) + ", dense " + z(hidden) +
              "-10)";
    r.json_head = std::string("\"model\": \"cnn\", \"mode\": \"") + mode_of(o) + "\", \"widths\": [" + z(w1) + ", " +
                  z(w2) + ", " + z(hidden) + "], \"first_last_bits\": " + z(packed.convs()[0].weights().bits) + ", ";
    print_report(r, o);
    return 0;
}

} // namespace

int run_binarized_mlp(options const& o, lowbit::io::archive const& file)
{
    lowbit_train::config const c = o.checkpoint.empty() ? stand_in_config(o, "mlp", 1) : trained_config(o, file, "mlp");
    if (!lowbit_train::uses_recipe(c)) {  // Li et al.'s grid with sign activations (bc, sr, r at 1 or 2 bits)
        if (c.bits == 1) return run_mlp(o, file, c, [](std::size_t h) { return li_sign_mlp<1>(h); });
        return run_mlp(o, file, c, [](std::size_t h) { return li_sign_mlp<2>(h); });
    }
    return run_mlp(o, file, c, [&](std::size_t h) { return trained_sign_mlp(c, h); });
}

int run_binarized_cnn(options const& o, lowbit::io::archive const& file)
{
    lowbit_train::config const c = o.checkpoint.empty() ? stand_in_config(o, "cnn", 1) : trained_config(o, file, "cnn");
    if (!lowbit_train::uses_recipe(c))
        return c.bits == 1 ? run_cnn(o, file, c, li_sign_cnn<1>()) : run_cnn(o, file, c, li_sign_cnn<2>());
    return run_cnn(o, file, c, trained_sign_cnn(c));
}

} // namespace lowbit_infer
