// SPDX-License-Identifier: MIT
// The trainer with each of Li et al.'s methods: it learns, it is bit-reproducible for 1 and 2 threads,
// hooks can stop it, packed weights take bits/32 of float, and bad input loses nothing.
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <tuple>

using namespace lowbit;

namespace {

/// Ten Gaussian clusters in `dims` dimensions: linearly separable enough that a small net reaches > 80 %.
struct clusters {
    xt::xtensor<float, 2> x;
    xt::xtensor<std::uint8_t, 1> y;
};

clusters make_clusters(std::size_t n, unsigned seed, std::size_t dims = 16)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> d;
    std::mt19937 centre_gen(1234);  // the same centres for train and test
    xt::xtensor<float, 2> centres = xt::xtensor<float, 2>::from_shape({10, dims});
    for (auto& v : centres) v = 2.0f * d(centre_gen);
    clusters c{xt::xtensor<float, 2>::from_shape({n, dims}), xt::xtensor<std::uint8_t, 1>::from_shape({n})};
    for (std::size_t i = 0; i < n; ++i) {
        auto const k = static_cast<std::uint8_t>(i % 10);
        c.y(i) = k;
        for (std::size_t j = 0; j < dims; ++j) c.x(i, j) = centres(k, j) + d(gen);
    }
    return c;
}

template <class W>
auto small_net(W policy)
{
    return nn::sequential{nn::dense<W>({.in = 16, .out = 64, .bias = false, .init = nn::init::uniform_unit, .seed = 1}, policy),
                          nn::batch_norm<2>({.channels = 64}), nn::relu{},
                          nn::dense<W>({.in = 64, .out = 10, .bias = false, .init = nn::init::uniform_unit, .seed = 2}, policy),
                          nn::batch_norm<2>({.channels = 10})};
}

using w1 = quantizer<1, nearest_even_t, clip::fixed_range>;
using w1s = quantizer<1, stochastic_t, clip::fixed_range>;
constexpr w1 w1_unit{.clipping = {.bound = 1.0f}};
constexpr w1s w1s_unit{.clipping = {.bound = 1.0f}};
using w8 = quantizer<8, nearest_even_t, clip::fixed_range>;
constexpr w8 w8_unit{.clipping = {.bound = 1.0f}};

template <class Model>
std::vector<float> all_weights(Model& m)
{
    std::vector<float> v;
    m.for_each_weight([&](auto& w) {
        auto const x = w.values();
        v.insert(v.end(), x.begin(), x.end());
    });
    m.for_each_parameter([&](nn::parameter& p) { v.insert(v.end(), p.value.begin(), p.value.end()); });
    return v;
}

/// The raw bits of every weight value, trained parameter and buffer (BatchNorm's running statistics).
template <class Model>
std::vector<std::uint32_t> weight_bits(Model& m)
{
    std::vector<std::uint32_t> v;
    auto add = [&v](auto const& values) {
        for (float x : values) v.push_back(std::bit_cast<std::uint32_t>(x));
    };
    m.for_each_weight([&](auto& w) { add(w.values()); });
    m.for_each_parameter([&](nn::parameter& p) { add(p.value); });
    m.for_each_buffer([&](nn::buffer& b) { add(b.value); });
    return v;
}

// parallel_for splits n elements with grain g once n > g; from 2 g on, each of two threads gets a full grain.
/// Weight elements at which quantize_pack and unpack_dequantize give both threads a full grain (Adam and SGD
/// split at 2^15, below it).
constexpr std::size_t split_weights = 2 * kernels::detail::parallel_grain;
/// Multiply-adds at which sgemm splits, with OpenBLAS (blas_split_min_macs) or without (the fallback's).
constexpr std::size_t split_madds =
    std::max(kernels::detail::blas_split_min_macs, kernels::detail::gemm_parallel_min_madds);

} // namespace

TEST_CASE("every method learns the clusters")
{
    auto const train = make_clusters(2000, 1), test = make_clusters(500, 2);
    train::fit_options const opts{.epochs = 4, .batch = 50, .seed = 3};
    auto check = [&](auto model, auto method, float lr, float min_accuracy = 0.8f) {
        train::trainer t{model, method, optim::adam({.lr = lr})};
        auto const r = t.fit(train.x, train.y, opts);
        CHECK(r.epochs == 4);
        CHECK(r.steps == 4 * 40);
        CHECK(r.images_per_second() > 0.0);
        auto const e = t.evaluate(test.x, test.y);
        CAPTURE(method.name());
        CHECK(e.accuracy > min_accuracy);
    };
    check(small_net(nn::float_weights), train::full_precision{}, 0.01f);
    check(small_net(w1_unit), train::binary_connect{}, 0.01f);
    check(small_net(w1s_unit), train::binary_connect{}, 0.01f);  // stochastic BC (evaluated with float weights)
    check(small_net(w1s_unit), train::stochastic_rounding{}, 0.01f);
    // R on a grid fine enough that Adam's steps cross half a spacing (below); on the +-1 grid it keeps every weight.
    check(small_net(w8_unit), train::rounded{}, 0.01f);
}

TEST_CASE("flips: R keeps every weight on the +-1 grid, and moves them on a grid that a step can cross")
{
    auto const train = make_clusters(1000, 1);
    train::fit_options const opts{.epochs = 2, .batch = 50, .seed = 3};
    struct epochs {
        std::vector<train::epoch_info> seen;
        bool on_epoch(train::epoch_info const& e)
        {
            seen.push_back(e);
            return false;
        }
    };
    auto run = [&](auto model, auto method, float lr) {
        train::trainer t{model, method, optim::adam({.lr = lr})};
        auto const before = all_weights(t.model());  // as the method stores them (rounded onto the grid for R)
        epochs h;
        (void)t.fit(train.x, train.y, opts, h);
        REQUIRE(h.seen.size() == 2);
        return std::tuple{h.seen, before, all_weights(t.model())};
    };
    std::size_t const quantized = 16 * 64 + 64 * 10;  // both dense layers

    // Adam's step is at most lr (1 - beta1) / sqrt(1 - beta2) = 3.2 lr (Kingma & Ba, section 2.1): 0.32 at
    // lr 0.1, below half the +-1 grid's spacing of 2. R rounds every step back: no weight ever changes.
    auto const [r1, start, after] = run(small_net(w1_unit), train::rounded{}, 0.1f);
    for (auto const& e : r1) {
        CHECK(e.quantized == quantized);
        CHECK(e.flip_steps == 20);
        CHECK(e.flips == 0);
        CHECK(e.flip_ratio() == 0.0);
    }
    std::vector<float> const weights_before(start.begin(), start.begin() + static_cast<std::ptrdiff_t>(quantized));
    std::vector<float> const weights_after(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(quantized));
    CHECK(weights_after == weights_before);

    // On 8 bits the spacing is at most 2/127, and Adam's first step moves every weight with a gradient by about
    // lr = 0.01 > 1/127: it flips.
    auto const [r8, unused8, unused8b] = run(small_net(w8_unit), train::rounded{}, 0.01f);
    CHECK(r8[0].flips > 0);
    CHECK(r8[0].flip_ratio() > 0.0);
    CHECK(r8[0].flip_ratio() <= 1.0);

    // BC flips the signs of Q(w) as its float weights cross 0; SR's random rounding flips weights every step.
    auto const [bc, unused_bc, unused_bc2] = run(small_net(w1_unit), train::binary_connect{}, 0.01f);
    CHECK(bc[0].flips > 0);
    CHECK(bc[0].flips <= quantized * 19);  // the first step has no earlier Q(w) to compare with
    auto const [sr, unused_sr, unused_sr2] = run(small_net(w1s_unit), train::stochastic_rounding{}, 0.01f);
    CHECK(sr[0].flips > 0);
    CHECK(sr[0].flips <= quantized * 20);

    // Full precision holds nothing quantized: no ratio.
    auto const [fp, unused_fp, unused_fp2] = run(small_net(nn::float_weights), train::full_precision{}, 0.01f);
    CHECK(fp[0].quantized == 0);
    CHECK(std::isnan(fp[0].flip_ratio()));
}

TEST_CASE("training is bit-reproducible with 1 and 2 threads, above every threading threshold")
{
    // Each model is sized from the threading thresholds (split_weights, split_madds; the static_asserts say
    // which kernels split), and the pool counter proves that the 2-thread runs ran tasks on both threads.
    unsigned const before = num_threads();
    auto check = [](auto make_model, auto method, clusters const& data, auto const& images, std::size_t batch) {
        CAPTURE(method.name());
        auto run = [&](unsigned threads) {
            set_num_threads(threads);
            auto model = make_model();
            train::trainer t{model, method, optim::adam({.lr = 0.01f})};
            pool_task_counter const counter;
            auto const r = t.fit(images, data.y, {.epochs = 2, .batch = batch, .seed = 11});
            REQUIRE(r.steps == 2);  // two epochs of one batch
            std::vector<std::uint64_t> const tasks = counter.tasks_per_thread();
            REQUIRE(tasks.size() == threads);
            CHECK(tasks[0] > 0);
            // Every step woke the pool at least once (Adam on the big weight alone does).
            if (threads == 2) CHECK(tasks[1] >= r.steps);
            return weight_bits(model);
        };
        auto const one = run(1), two = run(2);
        CHECK(one.size() > 0);
        CHECK(one == two);
    };

    // Dense: the first layer has split_weights weights (quantize_pack / unpack_dequantize and Adam split) and
    // its three GEMMs take split_madds multiply-adds (batch x 16 x hidden, in every transposition).
    constexpr std::size_t in = 16, hidden = split_weights / in, dense_batch = (split_madds + in * hidden - 1) / (in * hidden);
    static_assert(dense_batch * in * hidden >= split_madds && std::max(dense_batch, hidden) >= 32,
                  "the dense GEMMs must be above sgemm's split thresholds");
    auto const data = make_clusters(dense_batch, 4);
    auto wide = [](auto policy) {
        return [policy] {
            return nn::sequential{
                nn::dense<decltype(policy)>({.in = in, .out = hidden, .bias = false, .init = nn::init::uniform_unit, .seed = 1}, policy),
                nn::batch_norm<2>({.channels = hidden}), nn::relu{},
                nn::dense<decltype(policy)>({.in = hidden, .out = 10, .bias = false, .init = nn::init::uniform_unit, .seed = 2}, policy),
                nn::batch_norm<2>({.channels = 10})};
        };
    };
    check(wide(nn::float_weights), train::full_precision{}, data, data.x, dense_batch);
    check(wide(w1_unit), train::binary_connect{}, data, data.x, dense_batch);
    check(wide(w1s_unit), train::stochastic_rounding{}, data, data.x, dense_batch);

    // Convolution (SR, packed weights) on 16 x 4 x 4 images: conv_out 3x3 filters of 16 channels make at
    // least split_weights weights; the direct kernels run one image per task, and the reference path's
    // im2col GEMMs (conv_out x patch x batch * 16 pixels) split too.
    constexpr std::size_t channels = 16, side = 4, patch = channels * 9, pixels = side * side;
    constexpr std::size_t conv_out = (split_weights + patch - 1) / patch;
    constexpr std::size_t conv_batch = (split_madds + conv_out * patch * pixels - 1) / (conv_out * patch * pixels);
    static_assert(conv_out * patch >= split_weights && conv_batch * conv_out * patch * pixels >= split_madds,
                  "the convolution must be above quantize_pack's and sgemm's split thresholds");
    auto const image_data = make_clusters(conv_batch, 5, channels * pixels);
    auto const images = nn::as_images(image_data.x, channels, side, side);
    auto conv_net = [](nn::execution execution) {
        return [execution] { return nn::sequential{
            nn::conv2d<w1s>({.in = channels, .out = conv_out, .kernel = 3, .padding = 1, .bias = false, .seed = 3,
                             .execution = execution}, w1s_unit),
            nn::batch_norm<4>({.channels = conv_out}), nn::relu{}, nn::flatten{},
            nn::dense<w1s>({.in = conv_out * pixels, .out = 10, .bias = false, .init = nn::init::uniform_unit, .seed = 4}, w1s_unit),
            nn::batch_norm<2>({.channels = 10})}; };
    };
    check(conv_net(nn::execution::kernels), train::stochastic_rounding{}, image_data, images, conv_batch);
    check(conv_net(nn::execution::reference), train::stochastic_rounding{}, image_data, images, conv_batch);

    set_num_threads(before);
}

namespace {
/// Adam without apply(): the trainer then takes the step() path and the method's update rule.
struct adam_step_only {
    optim::adam opt;
    void step(std::size_t slot, std::span<float const> w, std::span<float const> g, std::span<float> out, float lr,
              bool decay)
    {
        opt.step(slot, w, g, out, lr, decay);
    }
    void reset() noexcept { opt.reset(); }
    static constexpr std::string_view name() noexcept { return "adam"; }
    void save_state(io::archive& a, std::string const& prefix) const { opt.save_state(a, prefix); }
    void load_state(io::archive const& a, std::string const& prefix) { opt.load_state(a, prefix); }
};
} // namespace

TEST_CASE("the trainer's in-place Adam update gives the weights of step() and the method's rule")
{
    static_assert(train::SubtractingMethod<train::full_precision> && train::SubtractingMethod<train::binary_connect>);
    static_assert(!train::SubtractingMethod<train::stochastic_rounding> && !train::SubtractingMethod<train::rounded>);
    static_assert(optim::AppliesStep<optim::adam> && !optim::AppliesStep<adam_step_only>);
    auto const data = make_clusters(200, 8);
    auto check = [&](auto policy, auto method) {
        CAPTURE(method.name());
        optim::adam_options const o{.lr = 0.01f, .weight_decay = 1e-3f, .decoupled_weight_decay = 1e-3f};
        auto fused_model = small_net(policy);
        train::trainer fused{fused_model, method, optim::adam(o)};
        (void)fused.fit(data.x, data.y, {.epochs = 2, .batch = 50, .seed = 3});
        auto plain_model = small_net(policy);
        train::trainer plain{plain_model, method, adam_step_only{optim::adam(o)}};
        (void)plain.fit(data.x, data.y, {.epochs = 2, .batch = 50, .seed = 3});
        auto const a = weight_bits(fused_model);
        CHECK(a.size() > 0);
        CHECK(a == weight_bits(plain_model));
        auto untrained = small_net(policy);
        CHECK(a != weight_bits(untrained));  // training moved the weights
    };
    check(nn::float_weights, train::full_precision{});
    check(w1_unit, train::binary_connect{});
}

TEST_CASE("SR and R keep only packed weights: bits/32 of float")
{
    auto model = small_net(w1s_unit);
    std::size_t const n = 16 * 64 + 64 * 10;
    train::trainer fp{model, train::full_precision{}, optim::sgd{}};
    CHECK(fp.weight_bytes() == n * sizeof(float));
    auto packed_model = small_net(w1s_unit);
    train::trainer sr{packed_model, train::stochastic_rounding{}, optim::adam{}};
    CHECK(sr.weight_bytes() == 16 * 64 / 8 + 64 * 10 / 8 + 2 * sizeof(float));  // codes + one step per layer
    CHECK(sr.weight_bytes() * 32 <= fp.weight_bytes() + 64 * sizeof(float));
}

TEST_CASE("hooks see every step and can stop training")
{
    auto const data = make_clusters(500, 5);
    auto model = small_net(w1_unit);
    train::trainer t{model, train::binary_connect{}, optim::adam{}};
    struct stop_after {
        std::size_t limit, seen = 0;
        float last_lr = 0.0f;
        bool on_step(train::step_info const& s)
        {
            ++seen;
            last_lr = s.learning_rate;
            return s.step + 1 == limit;
        }
    } hook{.limit = 7};
    struct count_epochs {
        std::size_t epochs = 0;
        bool on_epoch(train::epoch_info const&) { return ++epochs == 100; }
    } epochs;
    auto const r = t.fit(data.x, data.y, {.epochs = 3, .batch = 50}, hook, epochs);
    CHECK(r.stopped_early);
    CHECK(r.steps == 7);
    CHECK(hook.seen == 7);
    CHECK(hook.last_lr == doctest::Approx(0.01f));  // the constant schedule's default
    CHECK(epochs.epochs == 1);                      // the interrupted epoch is still reported
}

TEST_CASE("NaN input, non-finite loss and shape mismatches are clear errors that change nothing")
{
    auto data = make_clusters(200, 6);
    auto model = small_net(w1s_unit);
    train::trainer t{model, train::stochastic_rounding{}, optim::adam{}};
    auto const before = all_weights(model);
    data.x(3, 2) = std::nanf("");
    CHECK_THROWS_WITH_AS(t.fit(data.x, data.y, {.epochs = 1, .batch = 50, .shuffle = false}),
                         doctest::Contains("input batch 0 of epoch 0 holds a non-finite value"), invalid_input);
    CHECK(all_weights(model) == before);
    xt::xtensor<float, 2> const bad = xt::view(data.x, xt::range(0, 50), xt::all());
    xt::xtensor<std::uint8_t, 1> const labels = xt::view(data.y, xt::range(0, 50));
    // Stepping on the bad batch directly skips the input check: ReLU turns the NaN activations into zeros, so
    // the loss stays finite, and the NaN gradient that BatchNorm sends back is what stops the update.
    CHECK_THROWS_WITH_AS(t.step(bad, labels, 0, 0.01f),
                         doctest::Contains("the gradient of weight 0 at step 0 holds a non-finite value"), invalid_input);
    CHECK(all_weights(model) == before);
    xt::xtensor<std::uint8_t, 1> const short_labels = xt::zeros<std::uint8_t>({10});
    CHECK_THROWS_WITH_AS(t.fit(data.x, short_labels, {}), doctest::Contains("200 images but 10 labels"), invalid_input);
    // Fewer images than one batch, whose partial batch is dropped: nothing would be trained, so it is an error.
    auto const clean = make_clusters(200, 9);
    CHECK_THROWS_WITH_AS(t.fit(clean.x, clean.y, {.epochs = 1, .batch = 300}),
                         doctest::Contains("200 images give no batch of 300 (the partial batch is dropped: drop_last)"),
                         invalid_input);
    CHECK(all_weights(model) == before);
    (void)t.fit(clean.x, clean.y, {.epochs = 1, .batch = 300, .drop_last = false});  // one partial batch: trains
    CHECK(all_weights(model) != before);
}

TEST_CASE("weights with lowbit::ste fake quantizers train through their own backward")
{
    auto const train = make_clusters(1000, 7), test = make_clusters(300, 8);
    auto run = [&](auto policy) {
        auto model = small_net(policy);
        train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
        (void)t.fit(train.x, train.y, {.epochs = 4, .batch = 50, .seed = 3});
        return std::pair{t.evaluate(test.x, test.y).accuracy, all_weights(model)};
    };
    CHECK(run(ste::dorefa_weight<2>{}).first > 0.8f);
    CHECK(run(ste::xnor_weight<>{}).first > 0.8f);
    auto const [acc, params] = run(ste::lsq<3>{});
    CHECK(acc > 0.8f);
    // The LSQ steps (one per layer, after BN's parameters in visiting order) were initialised and trained.
    auto model = small_net(ste::lsq<3>{});
    std::size_t steps = 0;
    model.for_each_parameter([&](nn::parameter& p) { steps += p.name == "lsq.step"; });
    CHECK(steps == 2);
}

TEST_CASE("finish_backward maps the gradient through the fake quantizer")
{
    nn::weight<ste::dorefa_weight<2>> w({2, 3});
    auto m = w.master();
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = 0.3f * static_cast<float>(i) - 0.7f;
    w.bind(nn::shadow_state{}, 1);
    (void)w.forward_values({.training = true});
    std::fill(w.grad().begin(), w.grad().end(), 1.0f);
    w.finish_backward();
    // DoReFa: dQ/dw = (1 - tanh^2 w) / max|tanh w| (the max held constant).
    float mx = 0.0f;
    for (float v : m) mx = std::max(mx, std::abs(std::tanh(v)));
    for (std::size_t i = 0; i < m.size(); ++i)
        CHECK(w.grad()[i] == doctest::Approx((1.0f - std::tanh(m[i]) * std::tanh(m[i])) / mx).epsilon(1e-4));
    nn::weight<ste::dorefa_weight<2>> packed({4});
    CHECK_THROWS_WITH_AS(packed.bind(nn::packed_state{}, 1), doctest::Contains("no packed state"),
                         invalid_input);
}
