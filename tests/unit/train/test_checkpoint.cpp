// SPDX-License-Identifier: MIT
// Checkpoints of real models: bit-exact round trips of a trained mlp and cnn (weights, biases, BatchNorm
// parameters and running statistics, and the eval-mode output), deterministic names, weight::assign for
// every weight state, and architecture or metadata mismatches that fail without changing the model.
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/residual.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>
#include <lowbit/quant/ste/lsq.hpp>
#include <lowbit/quant/ste/pact.hpp>
#include <lowbit/quant/ste/xnor_weight.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/file_size_limit.hpp"
#include "../../support/temp_dir.hpp"

#include "../../support/run_states.hpp"

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;

namespace {

/// Random inputs of shape @p shape (first axis: samples) with random labels in 0..classes-1.
template <std::size_t Rank>
test::toy_data<Rank> noise_data(std::array<std::size_t, Rank> shape, std::size_t classes, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(0.5f, 1.0f);
    test::toy_data<Rank> t{xt::xtensor<float, Rank>::from_shape(shape),
                           xt::xtensor<std::uint8_t, 1>::from_shape({shape[0]})};
    for (auto& v : t.x) v = d(gen);
    for (auto& v : t.y) v = static_cast<std::uint8_t>(gen() % classes);
    return t;
}

/// Every state tensor of the model, by name (what save_checkpoint writes).
template <class Model>
io::archive state(Model& m)
{
    return train::to_archive(m);
}

/// True when both models' states have the same names, shapes and bit patterns.
void check_same_state(io::archive const& a, io::archive const& b)
{
    REQUIRE(a.entries().size() == b.entries().size());
    for (std::size_t i = 0; i < a.entries().size(); ++i) {
        auto const& x = a.entries()[i];
        auto const& y = b.entries()[i];
        CAPTURE(x.name);
        CHECK(x.name == y.name);
        CHECK(x.shape == y.shape);
        REQUIRE(x.values.size() == y.values.size());
        bool same = true;
        for (std::size_t k = 0; k < x.values.size(); ++k)
            same = same && std::bit_cast<std::uint32_t>(x.values[k]) == std::bit_cast<std::uint32_t>(y.values[k]);
        CHECK(same);
    }
}

template <class T>
bool bit_equal(T const& a, T const& b)
{
    return a.shape() == b.shape() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](float u, float v) { return std::bit_cast<std::uint32_t>(u) == std::bit_cast<std::uint32_t>(v); });
}

bool any_nonzero(std::vector<float> const& v)
{
    return std::any_of(v.begin(), v.end(), [](float f) { return f != 0.0f; });
}

std::string read_file(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The problem of the io_error that @p f throws (fails the test when nothing is thrown).
template <class F>
std::string problem_of(F&& f)
{
    try {
        f();
    } catch (io::io_error const& e) {
        return e.problem();
    }
    FAIL("no io_error");
    return {};
}

bool contains(std::string const& s, std::string const& part) { return s.find(part) != std::string::npos; }

} // namespace

TEST_CASE("a trained mlp round-trips bit for bit, and its eval-mode output with it")
{
    test::temp_dir dir("checkpoint_mlp");
    auto model = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    auto const data = noise_data<2>({32, 12}, 3, 5);
    train::trainer t{model, train::full_precision{}, optim::adam({.lr = 0.01f})};
    auto const fit = t.fit(data.x, data.y, {.epochs = 1, .batch = 16, .seed = 3});
    REQUIRE(fit.steps == 2);
    io::archive const trained = state(model);
    // The training moved the BatchNorm statistics away from their initial 0 / 1.
    CHECK(any_nonzero(trained.find("layer1.batch_norm.running_mean")->values));

    train::save_checkpoint(dir / "mlp.lbck", model, {{"model", "mlp"}, {"method", "fp"}});
    auto fresh = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 99});
    auto const before = fresh.forward(data.x, {.training = false});
    train::checkpoint_meta const meta = train::load_checkpoint(dir / "mlp.lbck", fresh, {{"model", "mlp"}});
    CHECK(meta.at("method") == "fp");
    check_same_state(trained, state(fresh));
    auto const expected = model.forward(data.x, {.training = false});
    auto const got = fresh.forward(data.x, {.training = false});
    CHECK(!bit_equal(before, got));  // the load changed the fresh model ...
    CHECK(bit_equal(expected, got)); // ... into the saved one, exactly
}

TEST_CASE("a trained cnn round-trips bit for bit, and its eval-mode output with it")
{
    test::temp_dir dir("checkpoint_cnn");
    nn::cnn_options const o{.channels = 1, .size = 8, .width1 = 2, .width2 = 4, .hidden = 8, .classes = 3, .seed = 1};
    auto model = nn::cnn<nn::float_weights_t>(o);
    auto const data = noise_data<4>({16, 1, 8, 8}, 3, 6);
    train::trainer t{model, train::full_precision{}, optim::adam({.lr = 0.01f})};
    REQUIRE(t.fit(data.x, data.y, {.epochs = 1, .batch = 8, .seed = 3}).steps == 2);
    train::save_checkpoint(dir / "cnn.lbck", model, {{"model", "cnn"}});

    auto fresh = nn::cnn<nn::float_weights_t>({.channels = 1, .size = 8, .width1 = 2, .width2 = 4, .hidden = 8,
                                               .classes = 3, .seed = 42});
    (void)train::load_checkpoint(dir / "cnn.lbck", fresh);
    io::archive const saved = io::load_archive(dir / "cnn.lbck");
    check_same_state(state(model), state(fresh));
    check_same_state(state(model), saved);
    CHECK(any_nonzero(saved.find("layer0.layer1.batch_norm.running_mean")->values));
    CHECK(bit_equal(model.forward(data.x, {.training = false}), fresh.forward(data.x, {.training = false})));
}

TEST_CASE("names follow the position of each tensor, through sequential and residual blocks")
{
    auto model = nn::sequential{nn::dense<>({.in = 3, .out = 4, .bias = true, .seed = 1}), nn::relu{},
                                nn::residual{nn::sequential{nn::dense<>({.in = 4, .out = 4, .bias = false, .seed = 2}),
                                                            nn::batch_norm<2>({.channels = 4})}}};
    io::archive const a = state(model);
    std::vector<std::string> names;
    for (auto const& e : a.entries()) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"layer0.weight", "layer0.dense.bias", "layer2.residual.layer0.weight",
                                            "layer2.residual.layer1.batch_norm.gamma",
                                            "layer2.residual.layer1.batch_norm.beta",
                                            "layer2.residual.layer1.batch_norm.running_mean",
                                            "layer2.residual.layer1.batch_norm.running_var"});
    CHECK(a.find("layer0.weight")->shape == std::vector<std::size_t>{4, 3});
    // sequential and residual forward for_each_buffer, skipping layers without buffers.
    std::size_t buffers = 0;
    model.for_each_buffer([&](nn::buffer& b) { buffers += b.value.size(); });
    CHECK(buffers == 8);
}

TEST_CASE("learned quantizer parameters (LSQ's per-channel steps, PACT's alpha) round-trip")
{
    test::temp_dir dir("checkpoint_ste");
    using wq = ste::lsq<2, grid::signed_int, per_channel_t>;
    auto make = [] {
        return nn::sequential{nn::dense<wq>({.in = 4, .out = 3, .seed = 1}),
                              nn::quantize_activation(ste::pact<4>({.alpha = 8.0f})), nn::dense<>({.in = 3, .out = 2})};
    };
    auto model = make();
    float v = 0.25f;
    model.for_each_parameter([&](nn::parameter& p) {
        for (float& x : p.value) x = (v += 0.5f);
    });
    train::save_checkpoint(dir / "q.lbck", model);
    io::archive const saved = io::load_archive(dir / "q.lbck");
    REQUIRE(saved.find("layer0.lsq.step") != nullptr);
    CHECK(saved.find("layer0.lsq.step")->shape == std::vector<std::size_t>{3});  // one step per output channel
    CHECK(saved.find("layer1.pact.alpha")->values == std::vector<float>{3.75f});  // after 3 steps, 3 biases
    auto fresh = make();
    (void)train::load_checkpoint(dir / "q.lbck", fresh);
    check_same_state(state(model), state(fresh));
}

TEST_CASE("an erased quantizer's parameter keeps its concrete name, and files with the old erased names still load")
{
    // lowbit-train's models hold their quantizers as ste::any_quantizer; the checkpoint names a parameter as the
    // concrete type does, and a quantizer that learns nothing has no entry.
    auto erased = [] {
        return nn::sequential{nn::dense<ste::any_quantizer>({.in = 4, .out = 3, .seed = 1}, ste::xnor_weight<>{}),
                              nn::quantize_activation<ste::any_quantizer>(ste::pact<4>({.alpha = 6.5f})),
                              nn::dense<ste::any_quantizer>({.in = 3, .out = 2, .seed = 2},
                                                            ste::lsq<2, grid::signed_int, per_channel_t>{})};
    };
    auto concrete = [] {
        return nn::sequential{nn::dense<ste::xnor_weight<>>({.in = 4, .out = 3, .seed = 7}),
                              nn::quantize_activation(ste::pact<4>({.alpha = 1.0f})),
                              nn::dense<ste::lsq<2, grid::signed_int, per_channel_t>>({.in = 3, .out = 2, .seed = 8})};
    };
    auto model = erased();
    io::archive const a = train::to_archive(model);
    CHECK(a.find("layer1.pact.alpha") != nullptr);
    CHECK(a.find("layer2.lsq.step") != nullptr);
    CHECK(std::ranges::none_of(a.entries(), [](io::archive_entry const& e) { return e.name.ends_with("any_quantizer.parameter"); }));
    auto c = concrete();
    train::from_archive(c, a);
    check_same_state(state(model), state(c));

    // The same state as files wrote it before: `<layer>.any_quantizer.parameter`, empty for XNOR.
    io::archive old;
    for (io::archive_entry const& e : a.entries()) {
        std::string name = e.name;
        if (name == "layer1.pact.alpha") name = "layer1.any_quantizer.parameter";
        if (name == "layer2.lsq.step") name = "layer2.any_quantizer.parameter";
        old.add(name, e.shape, e.values);
        if (name == "layer0.weight") old.add("layer0.any_quantizer.parameter", {0}, std::vector<float>{});
    }
    auto from_old = concrete();
    train::from_archive(from_old, old);
    check_same_state(state(model), state(from_old));
    auto erased_from_old = erased();
    train::from_archive(erased_from_old, old);
    check_same_state(state(model), state(erased_from_old));
    // An old entry that stands for no parameter of its layer is still unexpected.
    old.add("layer0.layer9.any_quantizer.parameter", {1}, std::vector<float>{1.0f});
    auto unchanged = concrete();
    CHECK_THROWS_WITH_AS(train::from_archive(unchanged, old),
                         doctest::Contains("unexpected entry 'layer0.layer9.any_quantizer.parameter'"), io::io_error);
}

TEST_CASE("loading into a different architecture fails clearly and changes nothing")
{
    test::temp_dir dir("checkpoint_mismatch");
    auto model = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    train::save_checkpoint(dir / "mlp.lbck", model, {{"model", "mlp"}});

    SUBCASE("another width: a shape mismatch naming the entry and both shapes")
    {
        auto other = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 8, .classes = 3, .seed = 7});
        io::archive const before = state(other);
        std::string const p = problem_of([&] { (void)train::load_checkpoint(dir / "mlp.lbck", other); });
        CHECK(p == "shape mismatch for entry 'layer0.weight': the file has [16, 12], the model [8, 12]");
        check_same_state(before, state(other));
    }
    SUBCASE("more layers: a missing entry")
    {
        auto other = nn::sequential{nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3}),
                                    nn::dense<>({.in = 3, .out = 2})};
        io::archive const before = state(other);
        std::string const p = problem_of([&] { (void)train::load_checkpoint(dir / "mlp.lbck", other); });
        CHECK(contains(p, "missing entry 'layer0.layer0.weight'"));
        check_same_state(before, state(other));
    }
    SUBCASE("fewer tensors: an unexpected entry")
    {
        // The same layers but the last BatchNorm without gamma and beta: every tensor of the model is in
        // the file, but the file has two more.
        auto other = nn::sequential{
            nn::dense<>({.in = 12, .out = 16, .bias = false}), nn::batch_norm<2>({.channels = 16}), nn::relu{},
            nn::dense<>({.in = 16, .out = 16, .bias = false}), nn::batch_norm<2>({.channels = 16}), nn::relu{},
            nn::sequential{nn::dense<>({.in = 16, .out = 3, .bias = false}),
                           nn::batch_norm<2>({.channels = 3, .affine = false})}};
        io::archive const before = state(other);
        std::string const p = problem_of([&] { (void)train::load_checkpoint(dir / "mlp.lbck", other); });
        CHECK(contains(p, "unexpected entry 'layer6.layer1.batch_norm.gamma'"));
        check_same_state(before, state(other));
    }
    SUBCASE("a cnn checkpoint into an mlp")
    {
        auto cnn = nn::cnn<nn::float_weights_t>({.size = 8, .width1 = 2, .width2 = 2, .hidden = 4, .classes = 3});
        train::save_checkpoint(dir / "cnn.lbck", cnn, {{"model", "cnn"}});
        io::archive const before = state(model);
        std::string const p = problem_of([&] { (void)train::load_checkpoint(dir / "cnn.lbck", model); });
        CHECK((contains(p, "shape mismatch") || contains(p, "missing entry")));
        check_same_state(before, state(model));
        // With the metadata required, the error says what the file is.
        CHECK(problem_of([&] { (void)train::load_checkpoint(dir / "cnn.lbck", model, {{"model", "mlp"}}); }) ==
              "metadata 'model' is 'cnn', expected 'mlp'");
        CHECK(problem_of([&] { (void)train::load_checkpoint(dir / "cnn.lbck", model, {{"bits", "2"}}); }) ==
              "metadata 'bits' is missing, expected '2'");
        check_same_state(before, state(model));
    }
    SUBCASE("a corrupt checkpoint changes nothing")
    {
        std::string s = read_file(dir / "mlp.lbck");
        s[s.size() / 2] = static_cast<char>(s[s.size() / 2] ^ 0x10);
        {
            std::ofstream out(dir / "bad.lbck", std::ios::binary);
            out.write(s.data(), static_cast<std::streamsize>(s.size()));
        }
        auto other = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 7});
        io::archive const before = state(other);
        CHECK(contains(problem_of([&] { (void)train::load_checkpoint(dir / "bad.lbck", other); }), "checksum mismatch"));
        check_same_state(before, state(other));
    }
}

TEST_CASE("a float checkpoint loads into a quantized model of the same architecture (SQWA's start)")
{
    using w1 = quantizer<1, stochastic_t, clip::fixed_range>;
    test::temp_dir dir("checkpoint_policy");
    auto fp = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    train::save_checkpoint(dir / "fp.lbck", fp);
    auto q = nn::mlp<w1>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 5}, w1{.clipping = {.bound = 1.0f}});
    train::trainer t{q, train::binary_connect{}, optim::adam({.lr = 0.01f})};  // shadow state
    (void)train::load_checkpoint(dir / "fp.lbck", q);
    check_same_state(state(fp), state(q));  // shadow weights take the float values exactly
}

TEST_CASE("weight::assign sets the values for every weight state, or throws and changes nothing")
{
    using w2 = quantizer<2, stochastic_t, clip::fixed_range>;  // levels -1, 0, 1
    std::vector<float> const on_grid = {1.0f, 0.0f, -1.0f, 1.0f, -1.0f, 0.0f};
    std::vector<float> const off_grid = {0.9f, 0.2f, -0.7f, 0.51f, -0.3f, 0.49f};

    nn::weight<w2> shadow({2, 3}, w2{.clipping = {.bound = 1.0f}});
    shadow.bind(nn::shadow_state{}, 1);
    shadow.assign(off_grid);
    CHECK(shadow.values() == off_grid);

    nn::weight<w2> packed({2, 3}, w2{.clipping = {.bound = 1.0f}});
    packed.bind(nn::packed_state{}, 1);
    packed.assign(on_grid);
    CHECK(packed.values() == on_grid);  // values on the grid are kept exactly
    packed.assign(off_grid);            // others go to the nearest level, deterministically
    CHECK(packed.values() == std::vector<float>{1.0f, 0.0f, -1.0f, 1.0f, 0.0f, 0.0f});

    std::vector<float> nan = on_grid;
    nan[2] = std::nanf("");
    CHECK_THROWS_AS(packed.assign(nan), invalid_input);
    CHECK(packed.values() == std::vector<float>{1.0f, 0.0f, -1.0f, 1.0f, 0.0f, 0.0f});
    CHECK_THROWS_WITH_AS(packed.assign(std::vector<float>(5, 0.0f)), doctest::Contains("expected 6 values, got 5"),
                         invalid_input);
}

TEST_CASE("a failed save leaves the existing checkpoint as it was")
{
    test::temp_dir dir("checkpoint_save");
    auto model = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    CHECK_THROWS_WITH_AS(train::save_checkpoint(dir / "no" / "such" / "dir.lbck", model),
                         doctest::Contains("does not exist"), io::io_error);
    train::save_checkpoint(dir / "m.lbck", model);
    std::string const before = read_file(dir / "m.lbck");
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    bool const privileged = std::ofstream(dir / "probe").good();  // root ignores directory permissions
    auto other = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 2});
    if (privileged) {
        std::filesystem::remove(dir / "probe");
        MESSAGE("running with privileges that ignore directory permissions; the unwritable case is not tested");
    } else {
        CHECK_THROWS_WITH_AS(train::save_checkpoint(dir / "m.lbck", other),
                             doctest::Contains("cannot create the temporary file"), io::io_error);
    }
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all);
    CHECK(read_file(dir / "m.lbck") == before);
#if LOWBIT_TEST_FILE_SIZE_LIMIT
    {
        // A failure that root cannot bypass: the file size limit stops the write half-way.
        test::file_size_limit const limit(512);  // the checkpoint takes about 2.6 KB
        CHECK_THROWS_WITH_AS(train::save_checkpoint(dir / "m.lbck", other), doctest::Contains("cannot write"),
                             io::io_error);
    }
    CHECK(read_file(dir / "m.lbck") == before);
#endif
    // The file is still a loadable checkpoint of the first model.
    (void)train::load_checkpoint(dir / "m.lbck", other);
    check_same_state(state(model), state(other));
}

TEST_CASE("a tensor of integers where the model expects floats is refused (e.g. a packed model file)")
{
    auto model = nn::sequential{nn::dense<>({.in = 2, .out = 2, .bias = false, .seed = 1})};
    io::archive a;
    a.add("layer0.weight", {2, 2}, std::vector<std::uint8_t>{1, 2, 3, 4});
    std::string what;
    try {
        train::from_archive(model, a);
    } catch (io::io_error const& e) {
        what = e.what();
    }
    CHECK(what.find("entry 'layer0.weight' holds uint8 values; a model's state is float32") != std::string::npos);
}
