// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: the steps every model runner takes -- reading the test set as 8-bit pixel codes, lowbit-train's
// standardisation as the packed model's input map, adapting a lowbit-train checkpoint to a model with concrete
// quantizer types, counting where the fake-quant and the packed model differ, timing the packed model, and
// printing the report (three text lines and one JSON object) -- so that the runners differ only in their models.

#include "infer.hpp"

#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit_infer {

using clock_type = std::chrono::steady_clock;

inline std::size_t argmax_row(xt::xtensor<float, 2> const& l, std::size_t i)
{
    std::size_t best = 0;
    for (std::size_t j = 1; j < l.shape(1); ++j)
        if (l(i, j) > l(i, best)) best = j;
    return best;
}

inline double seconds_since(clock_type::time_point t)
{
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// The pixel codes of images in [0, 1] (lowbit::data divides by 255: these are the file's bytes again).
inline xt::xtensor<std::uint8_t, 2> pixel_codes(xt::xtensor<float, 2> const& images)
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

inline standardisation standardisation_of(xt::xtensor<float, 2> const& train_images)
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

/// The test set as the packed model reads it (8-bit pixel codes, [n, 784]) and as the fake-quant model of a
/// checkpoint reads it (standardised floats; empty for a packed file, which needs no training images).
struct test_data {
    lowbit::data::labelled_images test;
    xt::xtensor<std::uint8_t, 2> codes;
    standardisation st{};
    xt::xtensor<float, 2> x;
};

/// Reads the test set, and for a checkpoint (@p standardise) the training set's standardisation: lowbit-train
/// standardises with the training set's mean and deviation, and the packed model folds that map into its
/// first layer, so its input codes are the raw pixels (deploy/input_map.hpp).
inline test_data load_test_data(options const& o, bool standardise)
{
    test_data d;
    d.test = lowbit::data::load_fashion_mnist(lowbit::data::split::test, o.data);
    d.codes = pixel_codes(d.test.images);
    if (standardise) {
        d.st = standardisation_of(lowbit::data::load_fashion_mnist(lowbit::data::split::train, o.data).images);
        d.x = (d.test.images - d.st.mf) / d.st.sf;
    }
    return d;
}

/// Throws unless the input map gives back the pixel codes.
template <class Packed, class X, class Codes>
void check_input_map(Packed const& packed, X const& x, Codes const& codes, standardisation const& st)
{
    if (packed.quantize(x) != codes)
        throw std::runtime_error("the input map does not give back the pixel codes (mean " + std::to_string(st.mean) +
                                 ", sd " + std::to_string(st.sd) + ")");
}

/// A metadata value of @p a, "" when the key is missing (checkpoints of older lowbit-trains have fewer keys).
inline std::string meta_value(lowbit::io::archive const& a, std::string const& key)
{
    auto const it = a.meta().find(key);
    return it == a.meta().end() ? std::string() : it->second;
}

/// The MLP's hidden width: --hidden, else the checkpoint's `hidden` metadata, else lowbit-train's default 1024.
inline std::size_t hidden_width(options const& o, lowbit::io::archive const& a)
{
    if (o.hidden != 0) return o.hidden;
    std::string const s = meta_value(a, "hidden");
    if (s.empty()) return 1024;
    std::size_t h = 0;
    auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), h);
    if (ec != std::errc{} || end != s.data() + s.size() || h == 0)
        throw lowbit::io::io_error{a.source(), "metadata 'hidden' is '" + s + "', not a width"};
    return h;
}

/// lowbit-train's models hold their quantizers as ste::any_quantizer, and every one saves its parameters as
/// `<layer>.any_quantizer.parameter`: of shape [0] for XNOR and DoReFa weights, which learn nothing, and of
/// shape [1] for PACT's alpha. The concrete quantizers of lowbit-infer's models have no entry for the former
/// and name the latter by their own parameter_name (`pact.alpha`), so the empty entries are dropped and, with
/// a @p learned_name, the one-value ones renamed. Anything else that does not fit the concrete model (an LSQ
/// step, a missing alpha) is still an error of train::from_archive that names the entry.
inline lowbit::io::archive with_concrete_quantizer_names(lowbit::io::archive const& a,
                                                         std::string_view learned_name = {})
{
    constexpr std::string_view erased = lowbit::ste::any_quantizer::parameter_name;
    lowbit::io::archive out(a.source());
    out.meta() = a.meta();
    for (lowbit::io::archive_entry const& e : a.entries()) {
        if (e.dtype != lowbit::io::archive_dtype::float32)
            throw lowbit::io::io_error{a.source(), "entry '" + e.name + "' is not float32: not a training checkpoint"};
        std::string name = e.name;
        if (name.ends_with(erased)) {
            if (e.values.empty()) continue;
            if (!learned_name.empty() && e.values.size() == 1)
                name = name.substr(0, name.size() - erased.size()) + std::string(learned_name);
        }
        out.add(name, e.shape, e.values);
    }
    return out;
}

/// The fake-quant forward of nn::cnn's model in evaluation mode, kept layer by layer for the comparison with a
/// packed CNN's trace(): the four convolution blocks' outputs (before pooling), the hidden dense block's, and
/// the logits.
struct cnn_layers {
    xt::xtensor<float, 4> conv1, conv2, conv3, conv4;
    xt::xtensor<float, 2> dense, logits;
};

template <class Model>
cnn_layers cnn_activations(Model& model, xt::xtensor<float, 4> const& x)
{
    lowbit::nn::forward_context const eval{.training = false};
    cnn_layers a;
    a.conv1 = model.template layer<0>().forward(x, eval);
    a.conv2 = model.template layer<1>().forward(a.conv1, eval);
    a.conv3 = model.template layer<3>().forward(model.template layer<2>().forward(a.conv2, eval), eval);
    a.conv4 = model.template layer<4>().forward(a.conv3, eval);
    auto const flat = model.template layer<6>().forward(model.template layer<5>().forward(a.conv4, eval), eval);
    a.dense = model.template layer<9>().forward(
        model.template layer<8>().forward(model.template layer<7>().forward(flat, eval), eval), eval);
    a.logits = model.template layer<10>().forward(a.dense, eval);
    return a;
}

/// The fake-quant model against the packed one on the test set, accumulated a chunk of images at a time:
/// accuracy, argmax agreement, the hidden values (signs or codes) that differ, and the largest logit
/// difference over the images whose hidden values all agree (elsewhere a logit may move by a whole step).
///
/// The packed model is exact, but the fake-quant model's own float sums can put a BatchNorm output within
/// rounding of a threshold, and how often depends on the build (summation order, FMA, vector width): on a
/// barely trained model with near-tied logits such a flip can cascade into another class. The argmax
/// disagreements among the images whose hidden values ALL agree (disagree_where_hidden_agree) leave those
/// out: there both models read the same codes, so they can differ only by the last layer's float rounding.
/// It is the build-independent figure; the argmax agreement over all images is not.
struct agreement {
    std::size_t images = 0, correct = 0, same = 0;
    std::size_t differing = 0, images_differing = 0, first_layer = 0;
    std::size_t disagree_where_hidden_agree = 0;  ///< argmax disagreements where all hidden values agree
    double max_diff = 0.0;

    /// Images s .. s + fake.shape(0) - 1: both models' logits, and per image the number of differing hidden
    /// values over all hidden layers and in the first one alone.
    void add(xt::xtensor<float, 2> const& fake, xt::xtensor<float, 2> const& packed,
             xt::xtensor<std::uint8_t, 1> const& labels, std::size_t s, std::span<std::size_t const> differing_in,
             std::span<std::size_t const> first_layer_in)
    {
        for (std::size_t i = 0; i < fake.shape(0); ++i) {
            bool const same_class = argmax_row(fake, i) == argmax_row(packed, i);
            correct += argmax_row(fake, i) == labels(s + i);
            same += same_class;
            first_layer += first_layer_in[i];
            differing += differing_in[i];
            images_differing += differing_in[i] != 0;
            if (differing_in[i] == 0) {
                disagree_where_hidden_agree += !same_class;
                for (std::size_t j = 0; j < fake.shape(1); ++j)
                    max_diff = std::max(max_diff, std::abs(static_cast<double>(fake(i, j)) - packed(i, j)));
            }
        }
        images += fake.shape(0);
    }

    double fake_accuracy() const { return static_cast<double>(correct) / static_cast<double>(images); }
    double rate() const { return static_cast<double>(same) / static_cast<double>(images); }
};

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

/// What a runner reports. The JSON line is `{` json_head, then the fields every model has, with the names of
/// the two hidden-value counts (`hidden_sign_flips` / `images_with_sign_flips` for sign activations) and
/// json_extra after them.
struct report {
    std::string model;              ///< after "model " on the first line: "784-1024-1024-10", "cnn 1x28x28 (...)"
    std::string json_head;          ///< `"model": ..., "mode": ..., <shape fields>, `
    char const* hidden_values = "signs";            ///< what the hidden values are, for the text
    char const* differing_key = "hidden_sign_flips";
    char const* images_key = "images_with_sign_flips";
    std::string json_extra;         ///< further `, "key": value` pairs after the two counts
    std::size_t hidden_per_image = 0;  ///< hidden values compared per image
    std::optional<agreement> compared;  ///< checkpoints only: the fake-quant model against the packed one
    timing t;
    std::size_t packed_bytes = 0, float_bytes = 0;
};

inline std::string json_number(std::optional<double> v, char const* format)
{
    if (!v) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, *v);
    return buf;
}

inline std::string count_or_null(std::optional<std::size_t> v) { return v ? std::to_string(*v) : "null"; }

inline void print_report(report const& r, options const& o)
{
    double const compression = static_cast<double>(r.float_bytes) / static_cast<double>(r.packed_bytes);
    std::printf("model %s, %s; packed %zu bytes, float %zu bytes (1/%.1f)\n", r.model.c_str(),
                o.checkpoint.empty() ? o.packed.c_str() : o.checkpoint.c_str(), r.packed_bytes, r.float_bytes,
                compression);
    std::optional<agreement> const& c = r.compared;
    if (c)
        std::printf("fake-quant accuracy %.4f, packed %.4f; argmax agreement %.4f (%zu of %zu differ, %zu of them "
                    "where every hidden value agrees); hidden %s differing: %zu of %zu (first layer: %zu), in %zu "
                    "images; largest logit difference where they agree %.3g\n",
                    c->fake_accuracy(), r.t.packed_acc, c->rate(), c->images - c->same, c->images,
                    c->disagree_where_hidden_agree, r.hidden_values, c->differing, r.hidden_per_image * c->images,
                    c->first_layer, c->images_differing, c->max_diff);
    else
        std::printf("packed accuracy %.4f\n", r.t.packed_acc);
    using lowbit::kernels::best_isa;
    using lowbit::kernels::int_kernel;
    std::printf("latency at batch 1: %.1f us (median of %zu); throughput at batch %zu: %.0f images/s (%u threads; "
                "kernels: popcount %s, int8 %s)\n",
                r.t.latency_us, o.runs, o.batch, r.t.images_per_s, o.threads,
                lowbit::kernels::isa_name(best_isa(int_kernel::popcount)),
                lowbit::kernels::isa_name(best_isa(int_kernel::int8)));
    auto const count = [&](std::size_t agreement::*field) {
        return c ? std::optional<std::size_t>((*c).*field) : std::nullopt;
    };
    std::printf("{%s\"threads\": %u, \"packed_acc\": %.4f, \"fake_quant_acc\": %s, \"argmax_agreement\": %s, "
                "\"argmax_disagreements\": %s, \"argmax_disagreements_where_hidden_agree\": %s, \"%s\": %s, "
                "\"%s\": %s%s, \"max_logit_diff\": %s, "
                "\"latency_us_batch1\": %.2f, \"images_per_s_batch%zu\": %.1f, \"packed_bytes\": %zu, "
                "\"float_bytes\": %zu, \"compression\": %.2f}\n",
                r.json_head.c_str(), o.threads, r.t.packed_acc,
                json_number(c ? std::optional(c->fake_accuracy()) : std::nullopt, "%.4f").c_str(),
                json_number(c ? std::optional(c->rate()) : std::nullopt, "%.4f").c_str(),
                count_or_null(c ? std::optional(c->images - c->same) : std::nullopt).c_str(),
                count_or_null(count(&agreement::disagree_where_hidden_agree)).c_str(), r.differing_key,
                count_or_null(count(&agreement::differing)).c_str(), r.images_key,
                count_or_null(count(&agreement::images_differing)).c_str(), r.json_extra.c_str(),
                json_number(c ? std::optional(c->max_diff) : std::nullopt, "%.3g").c_str(), r.t.latency_us, o.batch,
                r.t.images_per_s, r.packed_bytes, r.float_bytes, compression);
}

/// `"mode": "checkpoint"` or `"packed"`, as the JSON line names the file's kind.
inline char const* mode_of(options const& o) { return o.checkpoint.empty() ? "packed" : "checkpoint"; }

} // namespace lowbit_infer
