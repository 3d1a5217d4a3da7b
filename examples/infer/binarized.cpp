// SPDX-License-Identifier: MIT
// lowbit-infer: the binarized MLP and CNN (sign activations; lowbit-train --quantizer xnor --bits 1 --act-bits 1),
// compiled into deploy::packed_mlp / packed_cnn and compared sign by sign with the fake-quant model.
#include "common.hpp"
#include "infer.hpp"

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

namespace ste = lowbit::ste;
namespace deploy = lowbit::deploy;

/// The model lowbit-train builds for --method bc --quantizer xnor --bits 1 --act-bits 1 --first-last-bits 8
/// (there with type-erased quantizers; here with the concrete types deploy::compile needs).
auto make_bnn(std::size_t hidden)
{
    return lowbit::nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit},
                           ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                           lowbit::nn::bias_head);
}

/// The same with --first-last-bits 0: XNOR weights in the first and last layers too.
auto make_all_binary(std::size_t hidden)
{
    return lowbit::nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit},
                           ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::sign_activation{},
                           lowbit::nn::bias_head);
}

/// The CNN lowbit-train builds for --model cnn --method bc --quantizer xnor --bits 1 --act-bits 1
/// --first-last-bits 8 (nn::cnn's default widths, as lowbit-train uses them).
auto make_bnn_cnn()
{
    return lowbit::nn::cnn({}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                           ste::sign_activation{}, lowbit::nn::bias_head);
}

/// The same with --first-last-bits 0.
auto make_all_binary_cnn()
{
    return lowbit::nn::cnn({}, ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::sign_activation{},
                           lowbit::nn::bias_head);
}

/// The edge-layer bits of a binarized checkpoint (1: XNOR, 8: DoReFa): its recipe metadata when lowbit-train
/// wrote it (first_last_bits 8, or 0 for XNOR), else --first-last-bits. A recipe lowbit-infer cannot build, or a
/// --first-last-bits that contradicts the metadata, is an error naming the file: loading the float weights into
/// a model of other quantizers would succeed and compile a different model.
int binarized_first_last_bits(options const& o, lowbit::io::archive const& a, char const* kind, char const* train_model)
{
    std::string const q = meta_value(a, "quantizer"), bits = meta_value(a, "bits"), act = meta_value(a, "act_bits"),
                      edge = meta_value(a, "first_last_bits");
    if ((!q.empty() && q != "xnor") || (!bits.empty() && bits != "1") || (!act.empty() && act != "1"))
        throw lowbit::io::io_error{a.source(), std::string("not a binarized ") + kind + " that lowbit-infer compiles: "
                                               "the checkpoint was trained with --quantizer " + q + " --bits " + bits +
                                               " --act-bits " + act + "; use lowbit-train " + train_model +
                                               "--quantizer xnor --bits 1 --act-bits 1"};
    if (edge.empty()) return o.first_last_bits;
    if (edge != "8" && edge != "0")
        throw lowbit::io::io_error{a.source(), "first_last_bits " + edge + ": lowbit-infer compiles 8 (DoReFa) or 0 "
                                               "(XNOR) first and last layers"};
    int const bits_of_file = edge == "8" ? 8 : 1;
    if (o.first_last_bits_given && o.first_last_bits != bits_of_file)
        throw lowbit::io::io_error{a.source(), "--first-last-bits " + std::to_string(o.first_last_bits) +
                                               " contradicts the checkpoint's first_last_bits " + edge};
    return bits_of_file;
}

/// lowbit-infer for the binarized MLP: @p make_model(hidden) builds the checkpoint's model (for a packed file,
/// the float model of its shape, whose bytes the packed ones are compared with).
template <class MakeModel>
int run_mlp(options const& o, lowbit::io::archive const& file, MakeModel make_model)
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
        packed = deploy::compile(model, {.input = d.st.map});
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
int run_cnn(options const& o, lowbit::io::archive const& file, Model model)
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
        packed = deploy::compile(model, {.input = d.st.map});
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
    // A packed file's float model follows --first-last-bits (its bytes are the same for either edge kind: the
    // float state holds the same tensors); a checkpoint's edge layers follow its metadata.
    int const edge = o.checkpoint.empty() ? o.first_last_bits : binarized_first_last_bits(o, file, "MLP", "");
    if (edge == 1) return run_mlp(o, file, [](std::size_t h) { return make_all_binary(h); });
    return run_mlp(o, file, [](std::size_t h) { return make_bnn(h); });
}

int run_binarized_cnn(options const& o, lowbit::io::archive const& file)
{
    int const edge = o.checkpoint.empty() ? o.first_last_bits : binarized_first_last_bits(o, file, "CNN", "--model cnn ");
    if (edge == 1) return run_cnn(o, file, make_all_binary_cnn());
    return run_cnn(o, file, make_bnn_cnn());
}

} // namespace lowbit_infer
