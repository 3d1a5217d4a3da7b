// SPDX-License-Identifier: MIT
// The packed model file (deploy/packed_model_file.hpp) of a binarized MLP lowered by deploy::compile: a
// bit-exact round trip, and one clear io_error naming the file for each problem -- missing, not a lowbit file,
// truncated, corrupt, unsupported container or packed version, a training checkpoint, a file of one of the four
// retired fixed-shape formats (naming it and what to do instead), metadata and entries that contradict each other.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/crc32.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/file_problem.hpp"
#include "../../support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;
using lowbit::test::read_file;
using lowbit::test::without;
using lowbit::test::write_file;

namespace {

void put_u32(std::string& s, std::size_t at, std::uint32_t v)
{
    for (std::size_t i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

void reseal(std::string& s) { put_u32(s, s.size() - 4, io::crc32(std::string_view(s).substr(0, s.size() - 4))); }

std::string load_problem(std::filesystem::path const& p)
{
    return problem(p, [](auto const& f) { return deploy::load_packed_model(f); });
}

/// The what() of the io_error that packed_model_from_archive(@p a) throws (an archive made in memory names no
/// file).
std::string archive_error(io::archive const& a)
{
    try {
        (void)deploy::packed_model_from_archive(a);
    } catch (io::io_error const& e) {
        return e.what();
    }
    FAIL("no io_error");
    return {};
}

auto small_bnn()
{
    auto model = nn::mlp({.inputs = 20, .hidden = 100, .classes = 4, .init = nn::init::uniform_unit, .seed = 3},
                         ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                         nn::bias_head);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.running_mean(); })
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                l.gamma()[j] = u(rng);
                l.beta()[j] = u(rng);
                l.running_mean()[j] = 5.0f * u(rng);
                l.running_var()[j] = 30.0f + 20.0f * u(rng);
            }
    });
    return model;
}

/// Random inputs on the grid of @p map (scale q + offset for codes q), so that the input codes are every byte.
xt::xtensor<float, 2> grid_inputs(std::size_t m, std::size_t k, deploy::input_map map)
{
    std::mt19937_64 rng(7);
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({m, k});
    for (float& v : x) v = map.scale * static_cast<float>(rng() & 0xFF) + map.offset;
    return x;
}

} // namespace

TEST_CASE("a packed binarized MLP round-trips through its file bit for bit")
{
    test::temp_dir dir("packed_roundtrip");
    auto model = small_bnn();
    deploy::input_map const map{.scale = 0.02f, .offset = -0.5f};
    deploy::packed_model const packed = deploy::compile(model, {.input = map});
    deploy::save_packed(dir / "m.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "m.lbpk") == deploy::packed_bytes(packed));
    deploy::packed_model const again = deploy::load_packed_model(dir / "m.lbpk");
    REQUIRE(again.steps().size() == 4);
    auto const& input = std::get<deploy::input_codes_step>(again.steps()[0].op);
    CHECK(input.map.scale == 0.02f);
    CHECK(input.map.offset == -0.5f);
    CHECK(again.inputs() == 20);
    CHECK(again.classes() == 4);
    xt::xtensor<float, 2> const x = grid_inputs(33, 20, map);
    CHECK(again.forward(x) == packed.forward(x));
    // Saving again gives the same bytes: nothing is lost or reordered on the way through.
    deploy::save_packed(dir / "n.lbpk", again);
    CHECK(read_file(dir / "m.lbpk") == read_file(dir / "n.lbpk"));
    // The layout deploy/packed_model_file.hpp documents: the binary hidden layer as sign bits, the 8-bit layers as
    // int8 codes, integer thresholds, and the logits layer's float outputs.
    io::archive const a = io::load_archive(dir / "m.lbpk");
    CHECK(a.meta().at("format") == "lowbit-packed-model");
    CHECK(a.meta().at("packed_version") == "1");
    CHECK(a.meta().at("stepsteps") == "4");  // the step count under the steps' prefix "step"
    CHECK(a.meta().at("step0.kind") == "input_codes");
    CHECK(a.meta().at("step1.kind") == "integer_dense");
    CHECK(a.meta().at("step1.bits") == "8");
    CHECK(a.meta().at("step2.bits") == "1");
    CHECK(a.meta().at("step2.output") == "signs");
    CHECK(a.meta().at("step3.output") == "floats");
    CHECK(a.find("step2.signs")->shape == std::vector<std::size_t>{100, 2});
    CHECK(a.find("step1.codes")->dtype == io::archive_dtype::int8);
    CHECK(a.find("step2.threshold")->dtype == io::archive_dtype::int32);
    CHECK(a.find("step3.bias")->shape == std::vector<std::size_t>{4});
    CHECK(read_file(dir / "m.lbpk").substr(8, 1) == "\x02");  // archive format version 2
}

TEST_CASE("load_packed_model names the file and the problem")
{
    test::temp_dir dir("packed_errors");
    auto model = small_bnn();
    deploy::packed_model const packed = deploy::compile(model);
    deploy::save_packed(dir / "m.lbpk", packed);
    std::string const s = read_file(dir / "m.lbpk");
    io::archive const good = io::load_archive(dir / "m.lbpk");
    auto broken = [&](std::string const& name, auto change) {
        io::archive a = good;
        change(a);
        io::save_archive(dir / name, a);
        return load_problem(dir / name);
    };

    CHECK(load_problem(dir / "missing.lbpk") == "file not found");

    write_file(dir / "text.lbpk", "not a model at all");
    CHECK(contains(load_problem(dir / "text.lbpk"), "not a lowbit checkpoint"));

    write_file(dir / "cut.lbpk", s.substr(0, s.size() / 2));
    CHECK(contains(load_problem(dir / "cut.lbpk"), "truncated: expected " + std::to_string(s.size()) + " bytes"));

    std::string damaged = s;
    damaged[s.size() / 3] = static_cast<char>(damaged[s.size() / 3] ^ 0x04);
    write_file(dir / "damaged.lbpk", damaged);
    CHECK(contains(load_problem(dir / "damaged.lbpk"), "checksum mismatch: the file is corrupt"));

    std::string newer = s;
    put_u32(newer, 8, 7);
    reseal(newer);
    write_file(dir / "v7.lbpk", newer);
    CHECK(contains(load_problem(dir / "v7.lbpk"), "unsupported format version 7"));

    CHECK(broken("p2.lbpk", [](io::archive& a) { a.meta()["packed_version"] = "2"; }) ==
          "unsupported packed model version 2, and this lowbit reads packed version 1");

    train::save_checkpoint(dir / "train.lbck", model, {{"model", "mlp"}});
    CHECK(contains(load_problem(dir / "train.lbck"), "not a packed lowbit model: metadata 'format' is missing"));

    // Metadata the entries contradict.
    CHECK(broken("bits.lbpk", [](io::archive& a) { a.meta()["step2.bits"] = "4"; }) ==
          "missing entry 'step2.codes'");  // says codes, holds signs
    CHECK(broken("thr.lbpk",
                 [](io::archive& a) {
                     a = without(a, "step2.threshold");
                     a.add("step2.threshold", {99}, std::vector<std::int32_t>(99, 0));
                 }) == "shape mismatch for entry 'step2.threshold': the file has [99], expected [100]");
    CHECK(broken("type.lbpk",
                 [](io::archive& a) {
                     a = without(a, "step2.threshold");
                     a.add("step2.threshold", {100}, std::vector<float>(100, 0.0f));
                 }) == "element type mismatch for entry 'step2.threshold': the file has float32, expected int32");
    CHECK(broken("steps.lbpk", [](io::archive& a) { a.meta()["stepsteps"] = "x"; }) ==
          "metadata 'stepsteps' is 'x', not a number up to 4096");
    CHECK(contains(broken("wbits.lbpk", [](io::archive& a) { a.meta()["step1.bits"] = "9"; }),
                   "metadata 'step1.bits' is '9', not a number up to 8"));
    CHECK(contains(broken("map.lbpk", [](io::archive& a) { a = without(a, "step0.map"); }), "missing entry 'step0.map'"));
    CHECK(broken("input.lbpk", [](io::archive& a) { a.meta()["step2.input"] = "floats"; }) ==
          "metadata 'step2.input' is 'floats', not 'codes' or 'signs'");
    CHECK(broken("output.lbpk", [](io::archive& a) { a.meta()["step1.output"] = "bits"; }) ==
          "metadata 'step1.output' is 'bits', not 'signs', 'codes' or 'floats'");
    // Steps that do not chain from the inputs the file declares.
    std::string const wide = broken("inputs.lbpk", [](io::archive& a) { a.meta()["inputs"] = "21"; });
    CHECK(contains(wide, "inconsistent packed model"));
    CHECK(contains(wide, "an integer dense step reads 20 features, not 21"));

    // A failed load leaves the destination as it was.
    deploy::packed_model target = deploy::load_packed_model(dir / "m.lbpk");
    xt::xtensor<float, 2> const x = grid_inputs(5, 20, {});
    xt::xtensor<float, 2> const before = target.forward(x);
    CHECK_THROWS_AS(target = deploy::load_packed_model(dir / "thr.lbpk"), io::io_error);
    CHECK(target.forward(x) == before);
}

TEST_CASE("files of the four retired fixed-shape formats are refused, naming the format and what to do")
{
    test::temp_dir dir("packed_retired");
    for (char const* const format :
         {"lowbit-packed-mlp", "lowbit-packed-cnn", "lowbit-packed-kbit-mlp", "lowbit-packed-kbit-cnn"}) {
        CAPTURE(format);
        // The metadata such a file begins with (its layers no longer matter: they are never read).
        io::archive a;
        a.meta()["format"] = format;
        a.meta()["packed_version"] = "1";
        a.meta()["layers"] = "3";
        a.add("input.map", {2}, {1.0f / 255.0f, 0.0f});
        std::string const what = archive_error(a);
        CHECK(contains(what, "fixed-shape format that lowbit no longer reads"));
        CHECK(contains(what, "'" + std::string(format) + "'"));
        CHECK(contains(what, "packed_version 1"));
        CHECK(contains(what, "compile the model again from its checkpoint"));
        // From a file: the same problem, naming the file.
        io::save_archive(dir / "old.lbpk", a);
        std::string const from_file = load_problem(dir / "old.lbpk");
        CHECK(contains(from_file, "fixed-shape format that lowbit no longer reads"));
        CHECK(contains(from_file, "'" + std::string(format) + "'"));
        CHECK(contains(from_file, "packed_version 1"));
        // The version the file holds, whatever it is.
        a.meta()["packed_version"] = "3";
        CHECK(contains(archive_error(a), "packed_version 3"));
    }
    // A file of any other format is no packed model at all: a training checkpoint, or a format lowbit never wrote.
    auto model = small_bnn();
    train::save_checkpoint(dir / "train.lbck", model, {{"model", "mlp"}});
    std::string const checkpoint = load_problem(dir / "train.lbck");
    CHECK(contains(checkpoint, "not a packed lowbit model: metadata 'format' is missing"));
    CHECK_FALSE(contains(checkpoint, "fixed-shape"));
    io::archive other;
    other.meta()["format"] = "lowbit-packed-mlp2";
    other.meta()["packed_version"] = "1";
    std::string const unknown = archive_error(other);
    CHECK(contains(unknown, "not a packed lowbit model: metadata 'format' is 'lowbit-packed-mlp2'"));
    CHECK_FALSE(contains(unknown, "fixed-shape"));
}
