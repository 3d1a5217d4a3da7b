// SPDX-License-Identifier: MIT
// The packed model file: a bit-exact round trip, and one clear io_error naming the file for each problem --
// missing, not a lowbit file, a training checkpoint, unsupported container or packed version, truncated,
// corrupt, inconsistent.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_file.hpp>
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
#include <fstream>
#include <iterator>
#include <random>
#include <string>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;
using lowbit::test::read_file;
using lowbit::test::write_file;

namespace {

void put_u32(std::string& s, std::size_t at, std::uint32_t v)
{
    for (std::size_t i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

void reseal(std::string& s) { put_u32(s, s.size() - 4, io::crc32(std::string_view(s).substr(0, s.size() - 4))); }

std::string load_problem(std::filesystem::path const& p) { return problem(p, [](auto const& f) { return deploy::load_packed(f); }); }

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

xt::xtensor<std::uint8_t, 2> codes(std::size_t m, std::size_t k)
{
    std::mt19937_64 rng(7);
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape({m, k});
    for (auto& c : q) c = static_cast<std::uint8_t>(rng());
    return q;
}

} // namespace

TEST_CASE("a packed model round-trips through its file bit for bit")
{
    test::temp_dir dir("packed_roundtrip");
    auto model = small_bnn();
    deploy::packed_mlp const packed = deploy::compile(model, {.input = {.scale = 0.02f, .offset = -0.5f}});
    deploy::save_packed(dir / "m.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "m.lbpk") == deploy::packed_bytes(packed));
    deploy::packed_mlp const again = deploy::load_packed(dir / "m.lbpk");
    CHECK(again.input().scale == 0.02f);
    CHECK(again.input().offset == -0.5f);
    xt::xtensor<std::uint8_t, 2> const q = codes(33, 20);
    CHECK(again.forward(q) == packed.forward(q));
    deploy::save_packed(dir / "n.lbpk", again);
    CHECK(read_file(dir / "m.lbpk") == read_file(dir / "n.lbpk"));
    io::archive const a = io::load_archive(dir / "m.lbpk");
    CHECK(a.meta().at("format") == "lowbit-packed-mlp");
    CHECK(a.meta().at("packed_version") == "1");
    CHECK(a.meta().at("layer0.bits") == "8");
    CHECK(a.meta().at("layer1.bits") == "1");
    CHECK(a.find("layer1.signs")->shape == std::vector<std::size_t>{100, 2});
    CHECK(a.find("layer0.codes")->dtype == io::archive_dtype::int8);
    CHECK(a.find("layer1.threshold")->dtype == io::archive_dtype::int32);
    CHECK(a.find("layer2.bias")->shape == std::vector<std::size_t>{4});
    CHECK(read_file(dir / "m.lbpk").substr(8, 1) == "\x02");  // archive format version 2
}

TEST_CASE("load_packed names the file and the problem")
{
    test::temp_dir dir("packed_errors");
    auto model = small_bnn();
    deploy::save_packed(dir / "m.lbpk", deploy::compile(model));
    std::string const s = read_file(dir / "m.lbpk");

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

    io::archive a = io::load_archive(dir / "m.lbpk");
    a.meta()["packed_version"] = "2";
    io::save_archive(dir / "p2.lbpk", a);
    CHECK(load_problem(dir / "p2.lbpk") == "unsupported packed model version 2, and this lowbit reads packed version 1");

    train::save_checkpoint(dir / "train.lbck", model, {{"model", "mlp"}});
    CHECK(contains(load_problem(dir / "train.lbck"), "not a packed lowbit model: metadata 'format' is missing"));

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["layer1.bits"] = "4";  // says codes, holds signs
    io::save_archive(dir / "bits.lbpk", a);
    CHECK(load_problem(dir / "bits.lbpk") == "missing entry 'layer1.codes'");

    io::archive b;  // thresholds of the wrong length: inconsistent
    io::archive const original = io::load_archive(dir / "m.lbpk");
    for (io::archive_entry const& e : original.entries()) {
        if (e.name == "layer1.threshold")
            b.add(e.name, {99}, std::vector<std::int32_t>(99, 0));
        else if (e.dtype == io::archive_dtype::float32)
            b.add(e.name, e.shape, e.values);
        else if (e.dtype == io::archive_dtype::int8)
            b.add(e.name, e.shape, io::detail::decode_integers<std::int8_t>(e.data));
        else if (e.dtype == io::archive_dtype::int32)
            b.add(e.name, e.shape, io::detail::decode_integers<std::int32_t>(e.data));
        else
            b.add(e.name, e.shape, io::detail::decode_integers<std::uint64_t>(e.data));
    }
    b.meta() = a.meta();
    b.meta()["layer1.bits"] = "1";
    io::save_archive(dir / "thr.lbpk", b);
    CHECK(load_problem(dir / "thr.lbpk") ==
          "shape mismatch for entry 'layer1.threshold': the file has [99], expected [100]");

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["layers"] = "x";
    io::save_archive(dir / "meta.lbpk", a);
    CHECK(load_problem(dir / "meta.lbpk") == "metadata 'layers' is 'x', not a number up to 1024");
}
