// SPDX-License-Identifier: MIT
// lowbit-infer: compiles a binarized MLP or CNN trained by lowbit-train into the packed integer model
// (lowbit::deploy) and measures it on the Fashion-MNIST test set: accuracy, argmax agreement with the fake-quant
// model, latency at batch 1, throughput at batch 256, and the packed model's bytes against the float model's.
// The last line is one JSON object. The kind of model comes from the file: a checkpoint's `model` metadata
// (lowbit-train --model), a packed file's `format`.
//
//   lowbit-train --method bc --quantizer xnor --bits 1 --act-bits 1 --first-last-bits 8 --save-model bnn.lbck
//   lowbit-infer --checkpoint bnn.lbck --save-packed bnn.lbpk
//   lowbit-infer --packed bnn.lbpk
//   lowbit-train --model cnn --method bc --quantizer xnor --bits 1 --act-bits 1 --first-last-bits 8 --save-model cnn.lbck
//   lowbit-infer --checkpoint cnn.lbck --save-packed cnn.lbpk
//   lowbit-infer --packed cnn.lbpk
//
// Bad options exit with code 2; a missing, corrupt or mismatched file (or missing data) with code 1.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <CLI/CLI.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace ste = lowbit::ste;
namespace deploy = lowbit::deploy;
using clock_type = std::chrono::steady_clock;

struct options {
    std::string checkpoint;
    std::string packed;
    std::string save_packed;
    std::size_t hidden = 0;  // 0: the checkpoint's metadata (1024 without it)
    std::string data = LOWBIT_FASHION_MNIST_DIR;
    unsigned threads = 2;
    int first_last_bits = 8;  // 8: DoReFa first and last layers; 1: XNOR (lowbit-train --first-last-bits 0)
    bool first_last_bits_given = false;  // set on the command line (a CNN checkpoint's metadata must agree)
    std::size_t runs = 200;
    std::size_t batch = 256;
};

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

std::size_t argmax_row(xt::xtensor<float, 2> const& l, std::size_t i)
{
    std::size_t best = 0;
    for (std::size_t j = 1; j < l.shape(1); ++j)
        if (l(i, j) > l(i, best)) best = j;
    return best;
}

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

/// The pixel codes of images in [0, 1] (lowbit::data divides by 255: these are the file's bytes again).
xt::xtensor<std::uint8_t, 2> pixel_codes(xt::xtensor<float, 2> const& images)
{
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape(images.shape());
    for (std::size_t i = 0; i < images.size(); ++i)
        q.data()[i] = static_cast<std::uint8_t>(std::lround(images.data()[i] * 255.0f));
    return q;
}

/// lowbit-train's input standardisation (x - mean) / sd over the training images, with mean and sd rounded to
/// float as lowbit-train applies them, and the packed model's input map that folds it into the 8-bit codes.
struct standardisation {
    double mean = 0.0, sd = 1.0;
    float mf = 0.0f, sf = 1.0f;
    lowbit::deploy::input_map map{};
};

standardisation standardisation_of(xt::xtensor<float, 2> const& train_images)
{
    standardisation s;
    s.mean = xt::mean(train_images)();
    s.sd = xt::stddev(train_images)();
    s.mf = static_cast<float>(s.mean);
    s.sf = static_cast<float>(s.sd);
    s.map = {.scale = static_cast<float>(1.0 / (255.0 * static_cast<double>(s.sf))),
             .offset = static_cast<float>(-static_cast<double>(s.mf) / static_cast<double>(s.sf))};
    return s;
}

/// Throws unless the input map gives back the pixel codes.
template <class Packed, class X, class Codes>
void check_input_map(Packed const& packed, X const& x, Codes const& codes, standardisation const& st)
{
    if (packed.quantize(x) != codes)
        throw std::runtime_error("the input map does not give back the pixel codes (mean " + std::to_string(st.mean) +
                                 ", sd " + std::to_string(st.sd) + ")");
}

std::size_t meta_hidden(lowbit::io::archive const& a)
{
    auto const it = a.meta().find("hidden");
    if (it == a.meta().end()) return 1024;
    std::size_t h = 0;
    auto const [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), h);
    if (ec != std::errc{} || end != it->second.data() + it->second.size() || h == 0)
        throw lowbit::io::io_error{a.source(), "metadata 'hidden' is '" + it->second + "', not a width"};
    return h;
}

/// lowbit-train's models hold their quantizers as ste::any_quantizer, whose (empty, for XNOR and DoReFa)
/// parameter every weight saves as `<layer>.any_quantizer.parameter` of shape [0]; the concrete quantizers
/// have no parameter, so those entries are dropped before the checkpoint is applied. Anything else that does
/// not fit is still an error of from_archive.
lowbit::io::archive without_empty_quantizer_parameters(lowbit::io::archive const& a)
{
    lowbit::io::archive out(a.source());
    out.meta() = a.meta();
    for (lowbit::io::archive_entry const& e : a.entries()) {
        if (e.name.ends_with("any_quantizer.parameter") && e.values.empty() && e.data.empty()) continue;
        if (e.dtype != lowbit::io::archive_dtype::float32)
            throw lowbit::io::io_error{a.source(), "entry '" + e.name + "' is not float32: not a training checkpoint"};
        out.add(e.name, e.shape, e.values);
    }
    return out;
}

std::string json_number(std::optional<double> v, char const* format)
{
    if (!v) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, *v);
    return buf;
}

std::string count_or_null(std::optional<std::size_t> v) { return v ? std::to_string(*v) : "null"; }

struct timing {
    double packed_acc = 0.0;
    double images_per_s = 0.0;
    double latency_us = 0.0;
};

/// Accuracy, and throughput: the whole test set (input codes [n, ...], 8-bit pixels) in batches of o.batch,
/// best of 3 timed passes after one untimed pass (which also warms caches and the thread pool); latency at
/// batch 1: the median of o.runs single-image calls (after 10 untimed ones).
template <class Packed, std::size_t Rank>
timing measure(Packed const& packed, xt::xtensor<std::uint8_t, Rank> const& codes,
               xt::xtensor<std::uint8_t, 1> const& labels, options const& o)
{
    std::size_t const n = codes.shape(0), per_image = codes.size() / n;
    std::size_t correct = 0;
    double best_pass = 0.0;
    std::vector<xt::xtensor<std::uint8_t, Rank>> batches;
    for (std::size_t s = 0; s < n; s += o.batch) batches.emplace_back(xt::view(codes, xt::range(s, std::min(n, s + o.batch))));
    for (int pass = 0; pass < 4; ++pass) {
        auto const t0 = clock_type::now();
        std::size_t row = 0;
        for (auto const& b : batches) {
            xt::xtensor<float, 2> const l = packed.forward(b);
            if (pass == 0)
                for (std::size_t i = 0; i < l.shape(0); ++i) correct += argmax_row(l, i) == labels(row + i);
            row += b.shape(0);
        }
        double const secs = seconds_since(t0);
        if (pass > 0 && (best_pass == 0.0 || secs < best_pass)) best_pass = secs;
    }
    std::vector<double> times;
    auto shape = codes.shape();
    shape[0] = 1;
    xt::xtensor<std::uint8_t, Rank> one = xt::xtensor<std::uint8_t, Rank>::from_shape(shape);
    for (std::size_t r = 0; r < o.runs + 10; ++r) {
        std::size_t const i = r % n;
        std::copy(codes.data() + i * per_image, codes.data() + (i + 1) * per_image, one.data());
        auto const t0 = clock_type::now();
        xt::xtensor<float, 2> const l = packed.forward(one);
        double const secs = seconds_since(t0);
        if (l.size() != 10) throw std::runtime_error("unexpected logits shape");
        if (r >= 10) times.push_back(secs);
    }
    std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2), times.end());
    return {.packed_acc = static_cast<double>(correct) / static_cast<double>(n),
            .images_per_s = static_cast<double>(n) / best_pass,
            .latency_us = times[times.size() / 2] * 1e6};
}

template <class MakeModel>
int run(options const& o, MakeModel make_model)
{
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read.
    std::optional<lowbit::io::archive> checkpoint;
    deploy::packed_mlp packed;
    std::size_t hidden = 0;
    if (!o.checkpoint.empty()) {
        checkpoint = without_empty_quantizer_parameters(lowbit::io::load_archive(o.checkpoint));
        hidden = o.hidden != 0 ? o.hidden : meta_hidden(*checkpoint);
    } else {
        packed = deploy::load_packed(o.packed);
        if (packed.inputs() != 784 || packed.classes() != 10 || packed.layers().size() != 3)
            throw std::runtime_error(o.packed + ": not a 784-H-H-10 model (" + std::to_string(packed.inputs()) +
                                     " inputs, " +
                                     std::to_string(packed.layers().size()) + " layers, " +
                                     std::to_string(packed.classes()) + " classes)");
        hidden = packed.layers()[0].out();
    }
    auto model = make_model(hidden);  // the checkpoint's model; for a packed file, the float model of its shape
    if (checkpoint) lowbit::train::from_archive(model, *checkpoint, {{"model", "mlp"}});
    std::size_t const float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();

    auto const test = lowbit::data::load_fashion_mnist(lowbit::data::split::test, o.data);
    std::size_t const n = test.images.shape(0);
    xt::xtensor<std::uint8_t, 2> const codes = pixel_codes(test.images);
    std::optional<double> fake_acc, agreement, max_diff;
    std::optional<std::size_t> disagreements, sign_flips, sign_flip_images, first_layer_flips;
    if (checkpoint) {
        // lowbit-train standardises with the training set's mean and deviation; the packed model folds that
        // map into its first layer, so its input codes are the raw pixels (deploy/input_map.hpp).
        auto const train = lowbit::data::load_fashion_mnist(lowbit::data::split::train, o.data);
        standardisation const st = standardisation_of(train.images);
        xt::xtensor<float, 2> const x = (test.images - st.mf) / st.sf;
        // The fake-quant forward: weights through their quantizers, as after BinaryConnect training.
        model.for_each_weight([](auto& w) { w.store_as(lowbit::nn::weight_storage::shadow, 0); });
        packed = deploy::compile(model, {.input = st.map});
        if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
        check_input_map(packed, x, codes, st);
        // The fake-quant model layer by layer, so that its hidden signs can be compared with the packed bits:
        // they can differ only where its own float sums put BatchNorm's output within rounding of 0.
        std::size_t correct = 0, same = 0, flips = 0, flipped_images = 0, first_flips = 0;
        double diff = 0.0;
        lowbit::nn::forward_context const eval{.training = false};
        for (std::size_t s = 0; s < n; s += 1000) {
            std::size_t const e = std::min(n, s + 1000);
            xt::xtensor<float, 2> const xs = xt::view(x, xt::range(s, e), xt::all());
            xt::xtensor<std::uint8_t, 2> const qs = xt::view(codes, xt::range(s, e), xt::all());
            auto const y1 = model.template layer<1>().forward(model.template layer<0>().forward(xs, eval), eval);
            auto const h1 = model.template layer<2>().forward(y1, eval);
            auto const y2 = model.template layer<4>().forward(model.template layer<3>().forward(h1, eval), eval);
            auto const h2 = model.template layer<5>().forward(y2, eval);
            xt::xtensor<float, 2> const f = model.template layer<6>().forward(h2, eval);
            xt::xtensor<float, 2> const p = packed.forward(qs);
            xt::xtensor<std::uint64_t, 2> const p1 = packed.signs(qs, 0), p2 = packed.signs(qs, 1);
            for (std::size_t i = 0; i < e - s; ++i) {
                correct += argmax_row(f, i) == test.labels(s + i);
                same += argmax_row(f, i) == argmax_row(p, i);
                std::size_t d = 0;
                for (std::size_t j = 0; j < hidden; ++j) {
                    std::size_t const d1 = (h1(i, j) > 0.0f) != (((p1(i, j / 64) >> (j % 64)) & 1u) != 0);
                    first_flips += d1;
                    d += d1 + ((h2(i, j) > 0.0f) != (((p2(i, j / 64) >> (j % 64)) & 1u) != 0));
                }
                flips += d;
                flipped_images += d != 0;
                if (d == 0)
                    for (std::size_t j = 0; j < f.shape(1); ++j)
                        diff = std::max(diff, std::abs(static_cast<double>(f(i, j)) - p(i, j)));
            }
        }
        fake_acc = static_cast<double>(correct) / static_cast<double>(n);
        agreement = static_cast<double>(same) / static_cast<double>(n);
        disagreements = n - same;
        max_diff = diff;
        sign_flips = flips;
        sign_flip_images = flipped_images;
        first_layer_flips = first_flips;
    }
    std::size_t const packed_bytes = deploy::packed_bytes(packed);

    timing const t = measure(packed, codes, test.labels, o);
    double const packed_acc = t.packed_acc, images_per_s = t.images_per_s, latency_us = t.latency_us;

    using lowbit::kernels::best_isa;
    using lowbit::kernels::int_kernel;
    std::printf("model 784-%zu-%zu-10, %s; packed %zu bytes, float %zu bytes (1/%.1f)\n", hidden, hidden,
                o.checkpoint.empty() ? o.packed.c_str() : o.checkpoint.c_str(), packed_bytes, float_bytes,
                static_cast<double>(float_bytes) / static_cast<double>(packed_bytes));
    if (agreement)
        std::printf("fake-quant accuracy %.4f, packed %.4f; argmax agreement %.4f (%zu of %zu differ); hidden signs "
                    "differing: %zu of %zu (first layer: %zu), in %zu images; largest logit difference where they "
                    "agree %.3g\n",
                    *fake_acc, packed_acc, *agreement, *disagreements, n, *sign_flips, 2 * hidden * n,
                    *first_layer_flips, *sign_flip_images, *max_diff);
    else
        std::printf("packed accuracy %.4f\n", packed_acc);
    std::printf("latency at batch 1: %.1f us (median of %zu); throughput at batch %zu: %.0f images/s (%u threads; "
                "kernels: popcount %s, int8 %s)\n",
                latency_us, o.runs, o.batch, images_per_s, o.threads,
                lowbit::kernels::isa_name(best_isa(int_kernel::popcount)),
                lowbit::kernels::isa_name(best_isa(int_kernel::int8)));
    std::printf("{\"model\": \"mlp\", \"mode\": \"%s\", \"hidden\": %zu, \"first_last_bits\": %d, \"threads\": %u, \"packed_acc\": %.4f, "
                "\"fake_quant_acc\": %s, "
                "\"argmax_agreement\": %s, \"argmax_disagreements\": %s, \"hidden_sign_flips\": %s, "
                "\"images_with_sign_flips\": %s, \"max_logit_diff\": %s, "
                "\"latency_us_batch1\": %.2f, \"images_per_s_batch%zu\": %.1f, \"packed_bytes\": %zu, "
                "\"float_bytes\": %zu, "
                "\"compression\": %.2f}\n",
                o.checkpoint.empty() ? "packed" : "checkpoint", hidden, packed.layers()[0].weights().bits, o.threads,
                packed_acc,
                json_number(fake_acc, "%.4f").c_str(), json_number(agreement, "%.4f").c_str(),
                count_or_null(disagreements).c_str(), count_or_null(sign_flips).c_str(),
                count_or_null(sign_flip_images).c_str(), json_number(max_diff, "%.3g").c_str(),
                latency_us, o.batch, images_per_s, packed_bytes, float_bytes,
                static_cast<double>(float_bytes) / static_cast<double>(packed_bytes));
    return 0;
}

/// The +-1 floats of a [n, C, H, W] sign layer against the packed NHWC bits: adds the differing signs of each
/// image to @p per_image.
void count_conv_flips(xt::xtensor<float, 4> const& f, xt::xtensor<std::uint64_t, 2> const& bits, std::size_t* per_image)
{
    std::size_t const n = f.shape(0), c = f.shape(1), plane = f.shape(2) * f.shape(3), words = bits.shape(1);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                bool const plus = f.data()[(i * c + ch) * plane + p] > 0.0f;
                per_image[i] += plus != (((bits.data()[(i * plane + p) * words + ch / 64] >> (ch % 64)) & 1u) != 0);
            }
}

/// lowbit-infer for the binarized CNN (lowbit-train --model cnn): as run() for the MLP, with the hidden signs of
/// all four convolutions and the hidden dense layer compared.
template <class MakeModel>
int run_cnn(options const& o, MakeModel make_model)
{
    lowbit::set_num_threads(o.threads);
    std::optional<lowbit::io::archive> checkpoint;
    deploy::packed_cnn packed;
    if (!o.checkpoint.empty()) {
        checkpoint = without_empty_quantizer_parameters(lowbit::io::load_archive(o.checkpoint));
    } else {
        packed = deploy::load_packed_cnn(o.packed);
        if (packed.channels() != 1 || packed.height() != 28 || packed.width() != 28 || packed.classes() != 10 ||
            packed.convs().size() != 4 || packed.dense().size() != 2)
            throw std::runtime_error(o.packed + ": not nn::cnn's model of 1x28x28 images and 10 classes");
    }
    auto model = make_model();  // the checkpoint's model; for a packed file, the float model of its shape
    if (checkpoint) lowbit::train::from_archive(model, *checkpoint, {{"model", "cnn"}});
    std::size_t const float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();

    auto const test = lowbit::data::load_fashion_mnist(lowbit::data::split::test, o.data);
    std::size_t const n = test.images.shape(0);
    xt::xtensor<std::uint8_t, 2> const flat_codes = pixel_codes(test.images);
    xt::xtensor<std::uint8_t, 4> codes = xt::xtensor<std::uint8_t, 4>::from_shape({n, 1, 28, 28});
    std::copy(flat_codes.begin(), flat_codes.end(), codes.begin());
    std::optional<double> fake_acc, agreement, max_diff;
    std::optional<std::size_t> disagreements, sign_flips, sign_flip_images, first_layer_flips;
    std::size_t signs_per_image = 0;
    if (checkpoint) {
        // lowbit-train's standardisation, folded into the input map as for the MLP.
        auto const train = lowbit::data::load_fashion_mnist(lowbit::data::split::train, o.data);
        standardisation const st = standardisation_of(train.images);
        xt::xtensor<float, 4> const x = lowbit::nn::as_images((test.images - st.mf) / st.sf, 1, 28, 28);
        model.for_each_weight([](auto& w) { w.store_as(lowbit::nn::weight_storage::shadow, 0); });
        packed = deploy::compile(model, {.input = st.map});
        if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
        check_input_map(packed, x, codes, st);
        // The fake-quant model layer by layer, 1000 images at a time, against the packed model's sign layers.
        std::size_t correct = 0, same = 0, first_flips = 0;
        std::vector<std::size_t> per_image(n, 0), first(n, 0);
        double diff = 0.0;
        lowbit::nn::forward_context const eval{.training = false};
        for (std::size_t s = 0; s < n; s += 1000) {
            std::size_t const e = std::min(n, s + 1000);
            xt::xtensor<float, 4> const xs = xt::view(x, xt::range(s, e));
            xt::xtensor<std::uint8_t, 4> const qs = xt::view(codes, xt::range(s, e));
            auto const a1 = model.template layer<0>().forward(xs, eval);
            auto const a2 = model.template layer<1>().forward(a1, eval);
            auto const a3 = model.template layer<3>().forward(model.template layer<2>().forward(a2, eval), eval);
            auto const a4 = model.template layer<4>().forward(a3, eval);
            auto const fl = model.template layer<6>().forward(model.template layer<5>().forward(a4, eval), eval);
            auto const a5 = model.template layer<9>().forward(
                model.template layer<8>().forward(model.template layer<7>().forward(fl, eval), eval), eval);
            xt::xtensor<float, 2> const f = model.template layer<10>().forward(a5, eval);
            xt::xtensor<float, 2> const p = packed.forward(qs);
            std::vector<xt::xtensor<std::uint64_t, 2>> const bits = packed.trace(qs);
            count_conv_flips(a1, bits[0], first.data() + s);
            std::size_t* const d = per_image.data() + s;
            count_conv_flips(a2, bits[1], d);
            count_conv_flips(a3, bits[2], d);
            count_conv_flips(a4, bits[3], d);
            for (std::size_t i = 0; i < e - s; ++i)
                for (std::size_t j = 0; j < a5.shape(1); ++j)
                    d[i] += (a5(i, j) > 0.0f) != (((bits[4](i, j / 64) >> (j % 64)) & 1u) != 0);
            for (std::size_t i = 0; i < e - s; ++i) {
                correct += argmax_row(f, i) == test.labels(s + i);
                same += argmax_row(f, i) == argmax_row(p, i);
                first_flips += first[s + i];
                d[i] += first[s + i];
                if (d[i] == 0)
                    for (std::size_t j = 0; j < f.shape(1); ++j)
                        diff = std::max(diff, std::abs(static_cast<double>(f(i, j)) - p(i, j)));
            }
        }
        std::size_t flips = 0, flipped_images = 0;
        for (std::size_t const d : per_image) {
            flips += d;
            flipped_images += d != 0;
        }
        fake_acc = static_cast<double>(correct) / static_cast<double>(n);
        agreement = static_cast<double>(same) / static_cast<double>(n);
        disagreements = n - same;
        max_diff = diff;
        sign_flips = flips;
        sign_flip_images = flipped_images;
        first_layer_flips = first_flips;
    }
    for (deploy::packed_conv2d const& c : packed.convs()) signs_per_image += c.out_pixels() * c.shape().filters;
    signs_per_image += packed.dense().front().out();
    std::size_t const packed_bytes = deploy::packed_bytes(packed);
    timing const t = measure(packed, codes, test.labels, o);

    using lowbit::kernels::best_isa;
    using lowbit::kernels::int_kernel;
    std::size_t const w1 = packed.convs()[0].shape().filters, w2 = packed.convs()[2].shape().filters;
    std::size_t const hidden = packed.dense().front().out();
    std::printf("model cnn 1x28x28 (conv %zu-%zu, conv %zu-%zu, dense %zu-10), %s; packed %zu bytes, float %zu bytes "
                "(1/%.1f)\n",
                w1, w1, w2, w2, hidden, o.checkpoint.empty() ? o.packed.c_str() : o.checkpoint.c_str(), packed_bytes,
                float_bytes, static_cast<double>(float_bytes) / static_cast<double>(packed_bytes));
    if (agreement)
        std::printf("fake-quant accuracy %.4f, packed %.4f; argmax agreement %.4f (%zu of %zu differ); hidden signs "
                    "differing: %zu of %zu (first layer: %zu), in %zu images; largest logit difference where they "
                    "agree %.3g\n",
                    *fake_acc, t.packed_acc, *agreement, *disagreements, n, *sign_flips, signs_per_image * n,
                    *first_layer_flips, *sign_flip_images, *max_diff);
    else
        std::printf("packed accuracy %.4f\n", t.packed_acc);
    std::printf("latency at batch 1: %.1f us (median of %zu); throughput at batch %zu: %.0f images/s (%u threads; "
                "kernels: popcount %s, int8 %s)\n",
                t.latency_us, o.runs, o.batch, t.images_per_s, o.threads,
                lowbit::kernels::isa_name(best_isa(int_kernel::popcount)),
                lowbit::kernels::isa_name(best_isa(int_kernel::int8)));
    std::printf("{\"model\": \"cnn\", \"mode\": \"%s\", \"widths\": [%zu, %zu, %zu], \"first_last_bits\": %d, "
                "\"threads\": %u, \"packed_acc\": %.4f, \"fake_quant_acc\": %s, \"argmax_agreement\": %s, "
                "\"argmax_disagreements\": %s, \"hidden_sign_flips\": %s, \"images_with_sign_flips\": %s, "
                "\"max_logit_diff\": %s, \"latency_us_batch1\": %.2f, \"images_per_s_batch%zu\": %.1f, "
                "\"packed_bytes\": %zu, \"float_bytes\": %zu, \"compression\": %.2f}\n",
                o.checkpoint.empty() ? "packed" : "checkpoint", w1, w2, hidden, packed.convs()[0].weights().bits,
                o.threads, t.packed_acc, json_number(fake_acc, "%.4f").c_str(), json_number(agreement, "%.4f").c_str(),
                count_or_null(disagreements).c_str(), count_or_null(sign_flips).c_str(),
                count_or_null(sign_flip_images).c_str(), json_number(max_diff, "%.3g").c_str(), t.latency_us, o.batch,
                t.images_per_s, packed_bytes, float_bytes,
                static_cast<double>(float_bytes) / static_cast<double>(packed_bytes));
    return 0;
}

/// The edge-layer bits of a CNN checkpoint: its recipe metadata when lowbit-train wrote it (8: DoReFa first and
/// last layers, 0: XNOR), else --first-last-bits. A recipe lowbit-infer cannot build, or a --first-last-bits
/// that contradicts the metadata, is an error naming the file: loading the float weights into a model of other
/// quantizers would succeed and compile a different model.
int cnn_first_last_bits(options const& o, lowbit::io::archive const& a)
{
    auto const meta = [&](char const* key) {
        auto const it = a.meta().find(key);
        return it == a.meta().end() ? std::string() : it->second;
    };
    std::string const q = meta("quantizer"), bits = meta("bits"), act = meta("act_bits"), edge = meta("first_last_bits");
    if ((!q.empty() && q != "xnor") || (!bits.empty() && bits != "1") || (!act.empty() && act != "1"))
        throw lowbit::io::io_error{a.source(), "not a binarized CNN that lowbit-infer compiles: the checkpoint was "
                                               "trained with --quantizer " + q + " --bits " + bits + " --act-bits " + act +
                                               "; use lowbit-train --model cnn --quantizer xnor --bits 1 --act-bits 1"};
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

/// Whether the file of @p o holds a CNN: a checkpoint's `model` metadata (lowbit-train --model), a packed
/// file's `format` (deploy::packed_kind). Reading errors surface here, naming the file.
bool is_cnn(options const& o)
{
    if (!o.checkpoint.empty()) {
        lowbit::io::archive const a = lowbit::io::load_archive(o.checkpoint);
        auto const it = a.meta().find("model");
        return it != a.meta().end() && it->second == "cnn";
    }
    return deploy::packed_kind(lowbit::io::load_archive(o.packed)) == deploy::packed_model_kind::cnn;
}

} // namespace

int main(int argc, char** argv)
{
    options o;
    CLI::App app{"lowbit-infer: compile a binarized MLP or CNN (lowbit-train [--model cnn] --method bc --quantizer xnor "
                 "--bits 1 --act-bits 1 --first-last-bits 8 --save-model F) into a packed integer model and measure it "
                 "on Fashion-MNIST"};
    auto* ck = app.add_option("--checkpoint", o.checkpoint, "checkpoint written by lowbit-train --save-model");
    auto* pk = app.add_option("--packed", o.packed, "packed model written by lowbit-infer --save-packed");
    ck->excludes(pk);
    app.add_option("--save-packed", o.save_packed, "write the compiled packed model to this file")->needs(ck);
    app.add_option("--first-last-bits", o.first_last_bits,
                   "weights of the checkpoint's first and last layers: 8 (DoReFa, lowbit-train --first-last-bits 8) or "
                   "1 (XNOR, lowbit-train --first-last-bits 0); a packed file says it itself")
        ->check(CLI::IsMember({1, 8}))->capture_default_str();
    app.add_option("--hidden", o.hidden, "hidden width of the checkpoint's model (default: its metadata, else 1024)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16));
    app.add_option("--data", o.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
    app.add_option("--threads", o.threads, "threads")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--runs", o.runs, "batch-1 calls whose median is the latency")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))->capture_default_str();
    app.add_option("--batch", o.batch, "batch size of the throughput measurement")
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000}))->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (CLI::CallForHelp const& e) {
        return app.exit(e);
    } catch (CLI::ParseError const& e) {
        app.exit(e);
        return 2;
    }
    o.first_last_bits_given = app.count("--first-last-bits") > 0;
    if (o.checkpoint.empty() && o.packed.empty()) {
        std::fprintf(stderr, "lowbit-infer: give --checkpoint FILE (a lowbit-train model) or --packed FILE (a packed "
                             "model)\nRun with --help for more information.\n");
        return 2;
    }
    try {
        if (is_cnn(o)) {
            int const edge = o.checkpoint.empty() ? o.first_last_bits
                                                  : cnn_first_last_bits(o, lowbit::io::load_archive(o.checkpoint));
            if (edge == 1) return run_cnn(o, [] { return make_all_binary_cnn(); });
            return run_cnn(o, [] { return make_bnn_cnn(); });
        }
        if (o.first_last_bits == 1) return run(o, [](std::size_t h) { return make_all_binary(h); });
        return run(o, [](std::size_t h) { return make_bnn(h); });
    } catch (std::exception const& e) {
        std::fprintf(stderr, "lowbit-infer: %s\n", e.what());
        return 1;
    }
}
