// SPDX-License-Identifier: MIT
// Resuming a run bit-identically: for fp, bc, sr, sat and sqwa, a run that stops after k steps, is saved to a
// file and loaded into a freshly constructed trainer (with other initial weights) ends with exactly the bits
// of a run that never stopped -- model tensors, packed codes, optimizer moments, counters. And a run state
// from another model, method, quantizer, optimizer, version or fit is refused with a message naming it.
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/schedule/cosine.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/optim/schedule/step_decay.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/dorefa_weight.hpp>
#include <lowbit/quant/ste/pact.hpp>
#include <lowbit/quant/ste/sat_rescale.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/sat.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/run_states.hpp"
#include "../../support/temp_dir.hpp"

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;
using test::difference;
using test::make_data;
using test::state_of;
using test::toy_data;

namespace {

std::string problem_of(auto&& f)
{
    try {
        f();
    } catch (io::io_error const& e) {
        return e.problem();
    }
    return "(no io_error)";
}

bool contains(std::string const& s, std::string const& part) { return s.find(part) != std::string::npos; }

/// Runs `o` uninterrupted, and again stopped after k steps, saved to a file, loaded into a fresh model (built
/// with another seed) and trainer, and continued; the two final run states must be identical bit for bit.
template <class MakeModel, class Method, class MakeOpt, class Schedule, std::size_t Rank>
void check_resume(MakeModel make_model, Method method, MakeOpt make_opt, Schedule schedule, toy_data<Rank> const& d,
                  train::fit_options const& o, std::size_t k)
{
    CAPTURE(k);
    test::temp_dir dir("resume");
    auto full_model = make_model(1);
    train::trainer full{full_model, method, make_opt(), schedule};
    auto const rf = full.fit(d.x, d.y, o);
    REQUIRE(!rf.suspended);
    io::archive const want = state_of(full);

    auto first_model = make_model(1);
    train::trainer first{first_model, method, make_opt(), schedule};
    train::fit_options stop = o;
    stop.stop_after = k;
    auto const r1 = first.fit(d.x, d.y, stop);
    REQUIRE(r1.suspended);
    CHECK(r1.steps == k);
    CHECK(first.steps_done() == k);
    io::save_archive(dir / "k.lbck", state_of(first));
    // The state after k steps differs from the final one: the comparison below can fail.
    CHECK(difference(state_of(first), want) != "");

    auto second_model = make_model(2);  // other initial weights: everything must come from the file
    train::trainer second{second_model, method, make_opt(), schedule};
    second.load_state(io::load_archive(dir / "k.lbck"));
    CHECK(second.steps_done() == k);
    auto const r2 = second.fit(d.x, d.y, o);
    CHECK(r2.steps == rf.steps - k);
    CHECK(difference(state_of(second), want) == "");
    // The model state alone, as save_checkpoint writes it, is the same too.
    CHECK(difference(train::to_archive(second_model), train::to_archive(full_model)) == "");
}

using bc2 = quantizer<2, stochastic_t, clip::fixed_range, grid::symmetric_even>;       // stochastic BC, ternary-ish
using bc1 = quantizer<1, nearest_even_t, clip::fixed_range, grid::symmetric_even>;     // binary, deterministic
using sr2 = quantizer<2, stochastic_t, clip::fixed_range, grid::symmetric_even>;

auto mlp_fp(std::uint64_t seed) { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, nn::float_weights); }
auto mlp_bc(std::uint64_t seed) { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, bc2{.clipping = {.bound = 1.0f}}); }
auto mlp_bc1(std::uint64_t seed) { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, bc1{.clipping = {.bound = 1.0f}}); }
auto mlp_sr(std::uint64_t seed) { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, sr2{.clipping = {.bound = 1.0f}}); }
auto mlp_sat(std::uint64_t seed)
{
    return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, ste::dorefa_weight<4>{},
                   ste::dorefa_weight<8>{}, ste::sat_rescale<ste::dorefa_weight<8>>{},
                   ste::calibrated_t<ste::pact<4>>({.alpha = 4.0f}));
}
auto cnn_of(std::uint64_t seed, auto w)
{
    return nn::cnn({.size = 8, .width1 = 2, .width2 = 3, .hidden = 6, .classes = 3, .seed = seed}, w);
}

auto adam() { return optim::adam({.lr = 0.01f}); }
auto sgd() { return optim::sgd({.lr = 0.05f, .momentum = 0.9f, .nesterov = true}); }

} // namespace

TEST_CASE("fp: a resumed run ends with the bits of an uninterrupted one (mlp + adam, cnn + sgd)")
{
    auto const d = make_data<2>({120, 12}, 3, 5);  // 6 batches of 20 per epoch
    train::fit_options const o{.epochs = 3, .batch = 20, .seed = 11};
    optim::schedule::step_decay const decay{.lr = 0.01f, .gamma = 0.1f, .milestones = {1.5, 2.5}};
    for (std::size_t const k : {std::size_t{1}, std::size_t{6}, std::size_t{9}})  // first step, epoch end, mid-epoch
        check_resume(mlp_fp, train::full_precision{}, adam, decay, d, o, k);
    auto const images = make_data<4>({48, 1, 8, 8}, 3, 6);  // 4 batches of 12
    check_resume([](std::uint64_t s) { return cnn_of(s, nn::float_weights); }, train::full_precision{}, sgd,
                 optim::schedule::cosine{.lr_max = 0.05f, .epochs = 2}, images, {.epochs = 2, .batch = 12, .seed = 3}, 5);
}

TEST_CASE("bc: shadow weights, stochastic and deterministic quantizers, resume bit-identically")
{
    auto const d = make_data<2>({120, 12}, 3, 7);
    train::fit_options const o{.epochs = 2, .batch = 20, .seed = 12};
    check_resume(mlp_bc, train::binary_connect{}, adam, optim::schedule::constant{.lr = 0.01f}, d, o, 4);
    check_resume(mlp_bc1, train::binary_connect{}, sgd, optim::schedule::constant{.lr = 0.05f}, d, o, 6);
    auto const images = make_data<4>({48, 1, 8, 8}, 3, 8);
    check_resume([](std::uint64_t s) { return cnn_of(s, bc1{.clipping = {.bound = 1.0f}}); }, train::binary_connect{},
                 adam, optim::schedule::constant{.lr = 0.01f}, images, {.epochs = 2, .batch = 12, .seed = 4}, 3);
}

TEST_CASE("sr: packed codes, their grid steps and the rounding draws resume bit-identically")
{
    auto const d = make_data<2>({120, 12}, 3, 9);
    train::fit_options const o{.epochs = 3, .batch = 20, .seed = 13};
    for (std::size_t const k : {std::size_t{5}, std::size_t{12}})
        check_resume(mlp_sr, train::stochastic_rounding{}, adam, optim::schedule::constant{.lr = 0.02f}, d, o, k);
    auto const images = make_data<4>({48, 1, 8, 8}, 3, 10);
    check_resume([](std::uint64_t s) { return cnn_of(s, sr2{.clipping = {.bound = 1.0f}}); }, train::stochastic_rounding{},
                 sgd, optim::schedule::constant{.lr = 0.05f}, images, {.epochs = 2, .batch = 12, .seed = 5}, 6);
    // The state of a packed weight is its codes, not its values: the run state carries them.
    auto model = mlp_sr(1);
    train::trainer t{model, train::stochastic_rounding{}, adam()};
    (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 1});
    io::archive const a = state_of(t);
    CHECK(a.find("run/weights/layer0.weight.codes") != nullptr);
    CHECK(a.find("run/weights/layer0.weight.codes")->dtype == io::archive_dtype::uint8);
    CHECK(a.find("run/weights/layer0.weight.steps") != nullptr);
}

TEST_CASE("sat: DoReFa weights, CG-PACT alphas and the rescaled classifier resume bit-identically")
{
    auto const d = make_data<2>({120, 12}, 3, 14);
    check_resume(mlp_sat, train::sat<>{}, sgd, optim::schedule::cosine{.lr_max = 0.05f, .epochs = 2}, d,
                 {.epochs = 2, .batch = 20, .seed = 15}, 7);
}

TEST_CASE("sqwa: a run resumed in the retraining or the fine-tuning phase ends with the same bits")
{
    auto make = [](std::uint64_t seed) { return test::sqwa_mlp(seed); };
    auto const d = make_data<2>({120, 12}, 3, 16);  // 6 batches per epoch
    train::sqwa<> const method{{.captures = 3, .finetune_epochs = 1, .finetune_lr = 1e-3f, .bn_batches = 3}};
    optim::schedule::cyclic const cyclic{.high = 1e-2f, .low = 1e-4f, .epochs_per_cycle = 1};
    train::fit_options const o{.batch = 20, .seed = 17, .checkpoint_every = 4};
    // Every run state the hooks get, in order; SQWA's progress is in each.
    struct collect {
        std::vector<io::archive>* states;
        void on_checkpoint(io::archive& a) { states->push_back(a); }
    };
    auto pretrained = make(1);
    {
        train::trainer fp{pretrained, train::full_precision{}, adam()};
        (void)fp.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 1});
    }
    io::archive const start = train::to_archive(pretrained);

    auto full_model = make(1);
    train::from_archive(full_model, start);
    std::vector<io::archive> states;
    auto const rf = method.run(full_model, adam(), cyclic, d.x, d.y, o, collect{&states});
    CHECK(rf.captured == 3);
    // 18 retraining steps (checkpoints at 4, 8, 12, 16) and 6 fine-tuning steps (at 4).
    REQUIRE(states.size() == 5);
    CHECK(states[1].meta().at("run/sqwa/phase") == "retrain");
    CHECK(states[1].meta().at("run/sqwa/captured") == "1");
    CHECK(states[1].meta().at("run/method") == "sqwa");
    CHECK(states[4].meta().at("run/sqwa/phase") == "finetune");
    io::archive const want = train::to_archive(full_model);

    test::temp_dir dir("resume_sqwa");
    for (std::size_t const i : {std::size_t{1}, std::size_t{3}, std::size_t{4}}) {
        CAPTURE(i);
        io::save_archive(dir / "s.lbck", states[i]);
        auto model = make(5);  // other weights: everything comes from the file
        std::vector<io::archive> later;
        auto const r = method.resume(io::load_archive(dir / "s.lbck"), model, adam(), cyclic, d.x, d.y, o, collect{&later});
        CHECK(r.captured == 3);
        CHECK(difference(train::to_archive(model), want) == "");
        // The checkpoints after the resumed one are the uninterrupted run's, bit for bit.
        REQUIRE(later.size() == states.size() - i - 1);
        for (std::size_t j = 0; j < later.size(); ++j) CHECK(difference(later[j], states[i + 1 + j]) == "");
    }
    // A bc run state is not SQWA's, and SQWA's is not bc's.
    auto bc_model = make(1);
    train::trainer bc{bc_model, train::binary_connect{}, adam()};
    auto other = make(1);
    CHECK(problem_of([&] { (void)method.resume(state_of(bc), other, adam(), cyclic, d.x, d.y, o); }) ==
          "the checkpoint holds no SQWA progress (metadata 'run/sqwa/phase'): it was not written by sqwa::run");
    CHECK(problem_of([&] { bc.load_state(states[1]); }) == "checkpoint was written by method sqwa, this run uses bc");
}

TEST_CASE("checkpoints handed to on_checkpoint every N steps continue bit-identically from any of them")
{
    auto const d = make_data<2>({120, 12}, 3, 18);
    train::fit_options const o{.epochs = 2, .batch = 20, .seed = 19, .checkpoint_every = 5};
    struct collect {
        std::vector<io::archive>* states;
        void on_checkpoint(io::archive& a) { states->push_back(a); }
    };
    auto m = mlp_sr(1);
    train::trainer t{m, train::stochastic_rounding{}, adam()};
    std::vector<io::archive> states;
    (void)t.fit(d.x, d.y, o, collect{&states});
    REQUIRE(states.size() == 2);  // 12 steps: after 5 and 10
    CHECK(states[0].meta().at("run/trainer/step") == "5");
    CHECK(states[1].meta().at("run/trainer/epoch") == "1");
    CHECK(states[1].meta().at("run/trainer/batch") == "4");
    io::archive const want = state_of(t);
    for (io::archive const& s : states) {
        auto fresh = mlp_sr(3);
        train::trainer u{fresh, train::stochastic_rounding{}, adam()};
        u.load_state(s);
        std::vector<io::archive> later;
        (void)u.fit(d.x, d.y, o, collect{&later});
        CHECK(difference(state_of(u), want) == "");
    }
    // Without a hook to take them, checkpoint_every is a mistake.
    auto m2 = mlp_sr(1);
    train::trainer t2{m2, train::stochastic_rounding{}, adam()};
    CHECK_THROWS_WITH_AS(t2.fit(d.x, d.y, o), doctest::Contains("no hook has on_checkpoint"), invalid_input);
}

TEST_CASE("a run state is a model checkpoint too: load_checkpoint reads its model tensors")
{
    auto const d = make_data<2>({60, 12}, 3, 20);
    test::temp_dir dir("resume_compat");
    auto m = mlp_sr(1);
    train::trainer t{m, train::stochastic_rounding{}, adam()};
    (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 1});
    io::save_archive(dir / "run.lbck", state_of(t));
    auto other = mlp_fp(7);  // a float model of the same architecture
    (void)train::load_checkpoint(dir / "run.lbck", other);
    CHECK(difference(train::to_archive(other), train::to_archive(m)) == "");
}

TEST_CASE("a run state of another model, method, quantizer, optimizer, version or fit is refused by name")
{
    auto const d = make_data<2>({60, 12}, 3, 21);
    test::temp_dir dir("resume_refuse");
    auto bc_model = mlp_bc(1);
    train::trainer bc{bc_model, train::binary_connect{}, adam()};
    (void)bc.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 1, .stop_after = 2});
    io::save_archive(dir / "bc.lbck", state_of(bc));
    io::archive const saved = io::load_archive(dir / "bc.lbck");

    // Each refusal leaves the trainer's model as it was.
    auto unchanged = [](auto& model, auto&& load) {
        io::archive const before = train::to_archive(model);
        std::string const p = problem_of(load);
        CHECK(difference(before, train::to_archive(model)) == "");
        return p;
    };
    SUBCASE("another method")
    {
        auto m = mlp_sr(2);  // the same policies would do for bc: only the method differs
        train::trainer t{m, train::stochastic_rounding{}, adam()};
        CHECK(unchanged(m, [&] { t.load_state(saved); }) == "checkpoint was written by method bc, this run uses sr");
    }
    SUBCASE("another model: a hidden width of 8")
    {
        auto m = nn::mlp({.inputs = 12, .hidden = 8, .classes = 3, .seed = 2}, bc2{.clipping = {.bound = 1.0f}});
        train::trainer t{m, train::binary_connect{}, adam()};
        std::string const p = unchanged(m, [&] { t.load_state(saved); });
        CHECK(contains(p, "shape mismatch for entry"));
        CHECK(contains(p, "the file has [16"));
    }
    SUBCASE("another quantizer: 1 bit instead of 2")
    {
        auto m = mlp_bc1(2);
        train::trainer t{m, train::binary_connect{}, adam()};
        CHECK(unchanged(m, [&] { t.load_state(saved); }) ==
              "checkpoint was written with the weight quantizers [2-bit stochastic, 2-bit stochastic, 2-bit stochastic], "
              "this run uses [1-bit deterministic, 1-bit deterministic, 1-bit deterministic]");
    }
    SUBCASE("another optimizer")
    {
        auto m = mlp_bc(2);
        train::trainer t{m, train::binary_connect{}, sgd()};
        CHECK(unchanged(m, [&] { t.load_state(saved); }) == "the checkpoint's optimizer is adam, this run uses sgd");
    }
    SUBCASE("another run state version")
    {
        io::archive newer = saved;
        newer.meta()["run/version"] = "99";
        auto m = mlp_bc(2);
        train::trainer t{m, train::binary_connect{}, adam()};
        CHECK(contains(unchanged(m, [&] { t.load_state(newer); }), "run state version 99, and this lowbit ("));
        CHECK(contains(problem_of([&] { t.load_state(newer); }), ") continues runs of version 2"));
    }
    SUBCASE("a model-only checkpoint")
    {
        train::save_checkpoint(dir / "model.lbck", bc_model);
        auto m = mlp_bc(2);
        train::trainer t{m, train::binary_connect{}, adam()};
        CHECK(contains(unchanged(m, [&] { t.load_state(io::load_archive(dir / "model.lbck")); }),
                       "not a resumable checkpoint: it holds a model's state only"));
    }
    SUBCASE("another seed, batch size or data set at fit()")
    {
        auto m = mlp_bc(2);
        train::trainer t{m, train::binary_connect{}, adam()};
        t.load_state(saved);
        CHECK(problem_of([&] { (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 2}); }) ==
              "the checkpoint's run used seed 1, this fit() uses 2 (a run continues only with the seed, batch "
              "size, shuffling and data it was written with)");
        CHECK(contains(problem_of([&] { (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 10, .seed = 1}); }),
                       "the checkpoint's run used batch size 20, this fit() uses 10"));
        auto const fewer = make_data<2>({40, 12}, 3, 21);
        CHECK(contains(problem_of([&] { (void)t.fit(fewer.x, fewer.y, {.epochs = 1, .batch = 20, .seed = 1}); }),
                       "the checkpoint's run used a training set of size 60, this fit() uses 40"));
        // The file is named in the error.
        try {
            (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 2});
        } catch (io::io_error const& e) {
            CHECK(e.file() == dir / "bc.lbck");
        }
    }
}

TEST_CASE("an optimizer's run state with an absurd slot count is refused before anything is allocated")
{
    // A damaged count (2^40 slots) would otherwise allocate 2^40 slots before the first missing entry.
    for (char const* kind : {"adam", "sgd"}) {
        CAPTURE(kind);
        io::archive a;
        a.meta()["run/optimizer/kind"] = kind;
        a.meta()["run/optimizer/slots"] = std::to_string(std::size_t{1} << 40);
        auto const load = [&] {
            if (std::string(kind) == "adam") {
                optim::adam o;
                o.load_state(a, "run/optimizer/");
            } else {
                optim::sgd o;
                o.load_state(a, "run/optimizer/");
            }
        };
        CHECK_THROWS_WITH_AS(load(), doctest::Contains("metadata 'run/optimizer/slots' is 1099511627776, more than the "
                                                       "1048576 slots a run state may hold"),
                             io::io_error);
    }
}
