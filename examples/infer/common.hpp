// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: the steps every run takes -- reading the test set (its 8-bit pixel codes, and for a checkpoint
// lowbit-train's standardisation, which becomes the packed model's input map), checking that the packed model's
// input map gives back those codes, reading a checkpoint's metadata, timing the packed model, and printing the
// report (three text lines and one JSON object) -- so that a checkpoint and a packed file differ only in where
// their packed model comes from.

#include "infer.hpp"

#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/deploy/rounding_audit.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/summary.hpp>

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
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
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

/// The test set: its 8-bit pixel codes [n, 784] (what the packed model's input map must give back), and the
/// standardised floats that lowbit-train's model reads (empty unless standardised).
struct test_data {
    lowbit::data::labelled_images test;
    xt::xtensor<std::uint8_t, 2> codes;
    standardisation st{};
    xt::xtensor<float, 2> x;
};

/// Reads the test set, and with @p standardise the training set's standardisation: lowbit-train standardises
/// with the training set's mean and deviation, and the packed model folds that map into its first layer, so its
/// input codes are the raw pixels (deploy/input_map.hpp). A packed file carries the map and needs no training set.
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

/// The input map of @p p: that of its input-codes step when the step starts it (after the NHWC step of a CNN),
/// none when its first layer reads the floats themselves.
inline std::optional<lowbit::deploy::input_map> input_map_of(lowbit::deploy::packed_model const& p)
{
    for (lowbit::deploy::packed_step const& s : p.steps()) {
        if (auto const* in = std::get_if<lowbit::deploy::input_codes_step>(&s.op)) return in->map;
        if (!std::holds_alternative<lowbit::deploy::nhwc_step>(s.op)) break;
    }
    return std::nullopt;
}

/// Throws unless @p p's input map gives back the pixel codes @p codes of the floats @p x the models read (@p what
/// says where x came from): the packed model computes with those codes, so the fake-quant model must read floats
/// on the map's grid for the two to be compared (deploy::audit requires it).
inline void check_input_map(lowbit::deploy::packed_model const& p, xt::xtensor<float, 2> const& x,
                            xt::xtensor<std::uint8_t, 2> const& codes, std::string const& what)
{
    std::optional<lowbit::deploy::input_map> const map = input_map_of(p);
    if (!map) return;  // the first layer reads the floats: nothing is rounded on the way in
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape(x.shape());
    map->quantize(x.data(), x.size(), q.data());
    if (q != codes)
        throw std::runtime_error("the packed model's input map (scale " + std::to_string(map->scale) + ", offset " +
                                 std::to_string(map->offset) + ") does not give back the pixel codes of " + what);
}

/// The floats on @p map's grid whose codes are @p codes, scale q + offset: for lowbit-train's map, its
/// standardised pixels up to rounding, which a packed file measures with without the training images.
inline xt::xtensor<float, 2> grid_floats(lowbit::deploy::input_map const& map,
                                         xt::xtensor<std::uint8_t, 2> const& codes)
{
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape(codes.shape());
    std::ranges::transform(codes, x.begin(),
                           [&map](std::uint8_t q) { return map.scale * static_cast<float>(q) + map.offset; });
    return x;
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

struct timing {
    double packed_acc = 0.0;
    double images_per_s = 0.0;
    double latency_us = 0.0;
    bool measured = true;  ///< false: --no-timing, only packed_acc
};

/// Accuracy, and throughput: the whole test set (the floats @p x [n, 784] the packed model reads; its first step
/// maps them to the input codes) in batches of o.batch, best of 3 timed passes after one untimed pass (which also
/// warms caches and the thread pool); latency at batch 1: the median of o.runs single-image calls (after 10
/// untimed ones).
inline timing measure(lowbit::deploy::packed_model const& packed, xt::xtensor<float, 2> const& x,
                      xt::xtensor<std::uint8_t, 1> const& labels, options const& o)
{
    std::size_t const n = x.shape(0), per_image = x.shape(1);
    std::size_t correct = 0;
    double best_pass = 0.0;
    std::vector<xt::xtensor<float, 2>> batches;
    for (std::size_t s = 0; s < n; s += o.batch)
        batches.emplace_back(xt::view(x, xt::range(s, std::min(n, s + o.batch)), xt::all()));
    int const passes = o.timing ? 4 : 1;  // --no-timing: the accuracy pass only
    for (int pass = 0; pass < passes; ++pass) {
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
    if (!o.timing) return {.packed_acc = static_cast<double>(correct) / static_cast<double>(n), .measured = false};
    std::vector<double> times;
    xt::xtensor<float, 2> one = xt::xtensor<float, 2>::from_shape({1, per_image});
    for (std::size_t r = 0; r < o.runs + 10; ++r) {
        std::size_t const i = r % n;
        std::copy(x.data() + i * per_image, x.data() + (i + 1) * per_image, one.data());
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

/// The fake-quant model against a packed model whose hidden values are not all codes (float activations, which
/// deploy::audit does not bound value by value): logits and argmax only.
struct plain_comparison {
    std::size_t images = 0, fake_correct = 0, disagreements = 0;
    double max_logit_diff = 0.0;
};

/// What a run reports. The JSON line is `{` json_head, then the fields every model has, with the names of
/// the two hidden-value counts (`hidden_sign_flips` / `images_with_sign_flips` for sign activations) and
/// json_extra after them.
struct report {
    std::string model;              ///< after "model " on the first line: "784-1024-1024-10", "cnn 1x28x28 (...)"
    std::string json_head;          ///< `"model": ..., "mode": ..., <shape fields>, `
    char const* hidden_values = "signs";            ///< what the hidden values are, for the text
    char const* differing_key = "hidden_sign_flips";
    char const* images_key = "images_with_sign_flips";
    std::string json_extra;         ///< further `, "key": value` pairs after the two counts
    /// Checkpoints only: the fake-quant model against the packed one (deploy::audit), code by code and logit by
    /// logit, every difference checked against the fake-quant model's own float rounding.
    std::optional<lowbit::deploy::rounding_audit> compared;
    std::optional<plain_comparison> plain;  ///< instead of `compared`, for float activations
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
    std::optional<lowbit::deploy::rounding_audit> const& c = r.compared;
    auto const rate = [&c](std::size_t count) { return static_cast<double>(count) / static_cast<double>(c->images()); };
    if (c)
        std::printf("fake-quant accuracy %.4f, packed %.4f; argmax agreement %.4f (%zu of %zu differ, %zu of them "
                    "where every hidden value agrees and no two logits are within rounding); hidden %s differing: "
                    "%zu of %zu compared, in %zu images, %zu of them outside the fake-quant model's rounding; %zu "
                    "within rounding of a step; largest logit difference where they agree %.3g (%.3g of its bound)\n",
                    rate(c->fake_correct), r.t.packed_acc, 1.0 - rate(c->argmax_disagreements),
                    c->argmax_disagreements, c->images(), c->argmax_disagreements_where_codes_agree, r.hidden_values,
                    c->differing, c->values, c->images_differing(), c->unexplained, c->ambiguous, c->max_logit_diff,
                    c->max_logit_ratio);
    else if (r.plain)
        std::printf("fake-quant accuracy %.4f, packed %.4f; argmax agreement %.4f (%zu of %zu differ); largest logit "
                    "difference %.3g (float activations: no per-value audit)\n",
                    static_cast<double>(r.plain->fake_correct) / static_cast<double>(r.plain->images), r.t.packed_acc,
                    1.0 - static_cast<double>(r.plain->disagreements) / static_cast<double>(r.plain->images),
                    r.plain->disagreements, r.plain->images, r.plain->max_logit_diff);
    else
        std::printf("packed accuracy %.4f\n", r.t.packed_acc);
    using lowbit::kernels::best_isa;
    using lowbit::kernels::int_kernel;
    if (r.t.measured)
        std::printf("latency at batch 1: %.1f us (median of %zu); throughput at batch %zu: %.0f images/s (%u threads; "
                    "kernels: popcount %s, int8 %s)\n",
                    r.t.latency_us, o.runs, o.batch, r.t.images_per_s, o.threads,
                    lowbit::kernels::isa_name(best_isa(int_kernel::popcount)),
                    lowbit::kernels::isa_name(best_isa(int_kernel::int8)));
    else
        std::printf("latency and throughput not measured (--no-timing)\n");
    std::string const latency = json_number(r.t.measured ? std::optional(r.t.latency_us) : std::nullopt, "%.2f");
    std::string const throughput = json_number(r.t.measured ? std::optional(r.t.images_per_s) : std::nullopt, "%.1f");
    auto const count = [&c](auto field) {
        return count_or_null(c ? std::optional<std::size_t>(field(*c)) : std::nullopt);
    };
    using audit = lowbit::deploy::rounding_audit;
    // The fields both kinds of comparison have: from the audit, else from the plain comparison, else null.
    std::optional<plain_comparison> both = r.plain;
    if (c)
        both = plain_comparison{.images = c->images(), .fake_correct = c->fake_correct,
                                .disagreements = c->argmax_disagreements, .max_logit_diff = c->max_logit_diff};
    auto const ratio = [&both](std::size_t k) {
        return static_cast<double>(k) / static_cast<double>(both->images);
    };
    std::printf("{%s\"threads\": %u, \"test_images\": %s, \"packed_acc\": %.4f, \"fake_quant_acc\": %s, \"argmax_agreement\": %s, "
                "\"argmax_disagreements\": %s, \"argmax_disagreements_where_codes_agree\": %s, \"%s\": %s, "
                "\"%s\": %s, \"unexplained_code_diffs\": %s, \"codes_within_rounding\": %s, "
                "\"images_near_rounding\": %s%s, \"max_logit_diff\": %s, \"logits_outside_bound\": %s, "
                "\"latency_us_batch1\": %s, \"images_per_s_batch%zu\": %s, \"packed_bytes\": %zu, "
                "\"float_bytes\": %zu, \"compression\": %.2f}\n",
                r.json_head.c_str(), o.threads,
                count_or_null(both ? std::optional(both->images) : std::nullopt).c_str(), r.t.packed_acc,
                json_number(both ? std::optional(ratio(both->fake_correct)) : std::nullopt, "%.4f").c_str(),
                json_number(both ? std::optional(1.0 - ratio(both->disagreements)) : std::nullopt, "%.4f").c_str(),
                count_or_null(both ? std::optional(both->disagreements) : std::nullopt).c_str(),
                count([](audit const& a) { return a.argmax_disagreements_where_codes_agree; }).c_str(), r.differing_key,
                count([](audit const& a) { return a.differing; }).c_str(), r.images_key,
                count([](audit const& a) { return a.images_differing(); }).c_str(),
                count([](audit const& a) { return a.unexplained; }).c_str(),
                count([](audit const& a) { return a.ambiguous; }).c_str(),
                count([](audit const& a) { return a.images_near_rounding(); }).c_str(), r.json_extra.c_str(),
                json_number(both ? std::optional(both->max_logit_diff) : std::nullopt, "%.3g").c_str(),
                count([](audit const& a) { return a.logits_outside; }).c_str(), latency.c_str(), o.batch,
                throughput.c_str(), r.packed_bytes, r.float_bytes, compression);
}

/// `"mode": "checkpoint"` or `"packed"`, as the JSON line names the file's kind.
inline char const* mode_of(options const& o) { return o.checkpoint.empty() ? "packed" : "checkpoint"; }

/// --summary: the packed model's summary (a packed file's).
inline void print_summaries(options const& o, lowbit::deploy::packed_model const& packed)
{
    if (o.summary) std::printf("packed model:\n%s", lowbit::summary(packed).table().c_str());
}

/// --summary: the summaries of the trained model @p trained (a checkpoint's) for samples of @p shape and of its
/// packed model, and whether they agree on each weight layer's bits and bytes.
template <class Model>
void print_summaries(options const& o, Model& trained, std::vector<std::size_t> shape,
                     lowbit::deploy::packed_model const& packed)
{
    if (!o.summary) return;
    lowbit::model_summary const t = lowbit::summary(trained, std::move(shape));
    lowbit::model_summary const p = lowbit::summary(packed);
    std::printf("trained model (%s):\n%s", o.checkpoint.c_str(), t.table().c_str());
    std::vector<std::pair<int, std::size_t>> tw, pw;  // (bits, bytes) of each weight layer
    for (auto const& l : t.layers)
        if (l.weights != 0) tw.emplace_back(l.weight_bits, l.weight_bytes());
    for (auto const& l : p.layers)
        if (l.weights != 0) pw.emplace_back(l.weight_bits, l.weight_bytes());
    std::printf("weight layers: %s\n", tw == pw ? "the packed model keeps the trained model's bits and bytes"
                                                 : "the packed model's bits or bytes DIFFER from the trained model's");
    print_summaries(o, packed);
}

} // namespace lowbit_infer
