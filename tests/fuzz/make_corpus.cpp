// SPDX-License-Identifier: MIT
// Writes the seed corpora of the fuzz harnesses: small valid files of every kind, under <corpus>/<harness>/;
// and, given a second directory, the inputs of the outside campaign's findings (issue 11, docs/reliability.md)
// under <regressions>/<harness>/, rebuilt from the seeds. The committed tests/fuzz/corpus/ and the outside
// findings in tests/fuzz/regressions/ are its output; regenerate them with
//   cmake --build build/fuzz --target lowbit_fuzz_corpus
//   build/fuzz/tests/fuzz/lowbit_fuzz_corpus tests/fuzz/corpus tests/fuzz/regressions
// Everything is seeded, so the files are the same on every run (given the same compiler and libraries).
// Findings of lowbit's own fuzzing are libFuzzer's crash files, copied into tests/fuzz/regressions/ as they are.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace lowbit;
using bytes = std::vector<std::uint8_t>;

fs::path out_dir;

fs::path target(std::string const& harness, std::string const& name)
{
    fs::create_directories(out_dir / harness);
    return out_dir / harness / name;
}

/// The seed @p seed of @p harness, edited by @p edit, saved as @p name under @p dir / @p harness.
template <class Edit>
void edited(fs::path const& dir, std::string const& harness, std::string const& seed, std::string const& name,
            Edit edit)
{
    io::archive a = io::load_archive(out_dir / harness / seed);
    edit(a);
    fs::create_directories(dir / harness);
    io::save_archive(dir / harness / name, a);
}

/// @p a with the entries @p names replaced by @p add's (the archive has no erase: copy the rest).
template <class Add>
io::archive replaced(io::archive const& a, std::vector<std::string> const& names, Add add)
{
    io::archive b;
    b.meta() = a.meta();
    for (io::archive_entry const& e : a.entries()) {
        if (std::find(names.begin(), names.end(), e.name) != names.end()) continue;
        switch (e.dtype) {
        case io::archive_dtype::float32: b.add(e.name, e.shape, e.values); break;
        case io::archive_dtype::uint8: b.add(e.name, e.shape, a.integers<std::uint8_t>(e.name, e.shape)); break;
        case io::archive_dtype::int8: b.add(e.name, e.shape, a.integers<std::int8_t>(e.name, e.shape)); break;
        case io::archive_dtype::int32: b.add(e.name, e.shape, a.integers<std::int32_t>(e.name, e.shape)); break;
        case io::archive_dtype::uint64: b.add(e.name, e.shape, a.integers<std::uint64_t>(e.name, e.shape)); break;
        }
    }
    add(b);
    return b;
}

/// The outside campaign's three findings (issue 11), as inputs of the harnesses that run them.
void write_outside_findings(fs::path const& dir)
{
    // IDX: images of 0 x 4294967295 x 4294967055 and no data (xtensor's stride product overflowed).
    bytes const idx_finding{0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
    fs::create_directories(dir / "idx");
    std::ofstream(dir / "idx" / "outside-zero-then-huge.idx", std::ios::binary)
        .write(reinterpret_cast<char const*>(idx_finding.data()), static_cast<std::streamsize>(idx_finding.size()));
    bytes gz_finding = idx_finding;
    gz_finding.insert(gz_finding.begin(), 0);  // fuzz_idx_gz gzips it
    fs::create_directories(dir / "idx_gz");
    std::ofstream(dir / "idx_gz" / "outside-zero-then-huge.plain", std::ios::binary)
        .write(reinterpret_cast<char const*>(gz_finding.data()), static_cast<std::streamsize>(gz_finding.size()));

    // Packed CNNs: a huge image size (a padding class entry per output pixel, before any check), and a first
    // convolution of 0 filters with 2^40 empty threshold sets. The campaign found them in the fixed-shape CNN
    // formats; their edits here go to the first convolution of the general format's binarized and k-bit CNN seeds.
    for (std::string const seed : {"cnn.lbpk", "kbit-cnn.lbpk"}) {
        std::string const stem = seed.substr(0, seed.size() - 5);
        auto const first_conv = [](io::archive const& a) {
            for (std::size_t i = 0;; ++i) {
                std::string const p = "step" + std::to_string(i) + ".";
                if (a.meta().at(p + "kind") == "integer_conv") return p;
            }
        };
        auto const image = [&](std::string const& name, std::string const& height, std::string const& width) {
            edited(dir, "packed_model", seed, "outside-" + stem + "-" + name + ".lbpk", [&](io::archive& a) {
                std::string const p = first_conv(a);
                a.meta()[p + "height"] = height;
                a.meta()[p + "width"] = width;
            });
        };
        image("height-2147483646", "2147483646", "8");
        image("height-width-65536", "65536", "65536");
        image("height-10000000", "10000000", "8");
        // The general format keeps the number of threshold sets in the metadata: one input of each kind.
        edited(dir, "packed_model", seed, "outside-" + stem + "-conv0-0-filters.lbpk", [&](io::archive& a) {
            std::string const p = first_conv(a);
            a.meta()[p + "filters"] = "0";
            a = replaced(a, {p + "codes"}, [&](io::archive& b) { b.add(p + "codes", {0, 9}, std::vector<std::int8_t>{}); });
        });
        edited(dir, "packed_model", seed, "outside-" + stem + "-conv0-sets-2to40.lbpk", [&](io::archive& a) {
            a.meta()[first_conv(a) + "sets"] = std::to_string(std::size_t{1} << 40);
        });
    }
}

void write(std::string const& harness, std::string const& name, bytes const& b)
{
    std::ofstream out(target(harness, name), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bytes read(fs::path const& file)
{
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// An IDX file of unsigned bytes: magic 0x000008DD, big-endian sizes, then the elements.
bytes idx(std::vector<std::uint32_t> const& shape)
{
    bytes out{0, 0, 0x08, static_cast<std::uint8_t>(shape.size())};
    std::size_t n = 1;
    for (std::uint32_t const s : shape) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(s >> shift));
        n *= s;
    }
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(i * 37 + 11));
    return out;
}

bytes gzip(bytes const& content)
{
    fs::path const tmp = out_dir / "make_corpus.tmp.gz";
    gzFile gz = gzopen(tmp.c_str(), "wb9");
    gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
    gzclose(gz);
    bytes out = read(tmp);
    fs::remove(tmp);
    return out;
}

/// Shadow weights and trained-looking BatchNorm parameters (gammas of both signs, a few zero), so that the
/// compiled models have thresholds and flip / negate flags of every kind.
template <class Model>
void randomise(Model& model, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.running_mean(); })
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                float const g = u(rng);
                l.gamma()[j] = j % 13 == 5 ? 0.0f : (g < -0.5f ? g : std::abs(g) + 0.1f);
                l.beta()[j] = 0.5f + 0.5f * u(rng);
                l.running_mean()[j] = 0.3f * u(rng);
                l.running_var()[j] = 0.5f + 0.4f * u(rng);
            }
    });
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: %s <corpus directory> [<regressions directory>]\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    fs::create_directories(out_dir);

    // archive: format version 1 (float entries only) and version 2 (every integer type, a scalar, an empty entry).
    io::archive v1;
    v1.meta()["model"] = "mlp";
    v1.add("w", {2, 3}, {1, 2, 3, 4, 5, 6});
    io::save_archive(target("archive", "version1.lbck"), v1);
    io::archive v2;
    v2.meta()["format"] = "test";
    v2.meta()["bits"] = "4";
    v2.add("f", {3}, {0.5f, -1.0f, 2.0f});
    v2.add("u8", {2, 2}, std::vector<std::uint8_t>{1, 2, 3, 255});
    v2.add("i8", {3}, std::vector<std::int8_t>{-128, 0, 127});
    v2.add("i32", {2}, std::vector<std::int32_t>{-7, 1 << 30});
    v2.add("u64", {1}, std::vector<std::uint64_t>{0x8000000000000001u});
    v2.add("scalar", {}, {3.0f});
    v2.add("empty", {0, 4}, std::vector<float>{});
    io::save_archive(target("archive", "version2.lbck"), v2);

    // checkpoint: the model of fuzz_checkpoint.cpp.
    auto mlp = nn::mlp<nn::float_weights_t>({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1});
    train::save_checkpoint(target("checkpoint", "mlp.lbck"), mlp, {{"model", "mlp"}, {"method", "fp"}});

    // idx (plain): images, labels, an empty set of images.
    write("idx", "images-3x4x5.idx", idx({3, 4, 5}));
    write("idx", "labels-7.idx", idx({7}));
    write("idx", "empty-0x2x2.idx", idx({0, 2, 2}));
    // idx_gz: first byte 0 = the harness gzips the rest, 1 = the rest is a gzip file.
    bytes content = idx({2, 3, 3});
    content.insert(content.begin(), 0);
    write("idx_gz", "images-2x3x3.plain", content);
    bytes gz = gzip(idx({6}));
    gz.insert(gz.begin(), 1);
    write("idx_gz", "labels-6.gz", gz);

    // cifar10: two records (label, then 3072 pixel bytes).
    bytes cifar;
    for (std::uint8_t label : {3, 9}) {
        cifar.push_back(label);
        for (std::size_t i = 0; i < 3072; ++i) cifar.push_back(static_cast<std::uint8_t>(i * 7 + label));
    }
    write("cifar10", "two-records.bin", cifar);

    // Packed models (deploy::packed_model, the one packed format): nn::mlp and nn::cnn, binarized and with k-bit
    // PACT codes, with binary and odd-level weights.
    auto bnn = nn::mlp({.inputs = 12, .hidden = 20, .classes = 3, .init = nn::init::uniform_unit, .seed = 3},
                       ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                       nn::bias_head);
    randomise(bnn, 1);
    deploy::save_packed(target("packed_model", "mlp.lbpk"), deploy::compile(bnn, {.input = {.scale = 0.01f, .offset = -0.5f}}));

    auto cnn = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                       ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                       nn::bias_head);
    randomise(cnn, 2);
    deploy::save_packed(target("packed_model", "cnn.lbpk"),
                        deploy::compile(cnn, {.input = {.scale = 0.01f, .offset = -0.5f}, .height = 8, .width = 8}));

    auto kbit = nn::mlp({.inputs = 12, .hidden = 20, .classes = 3, .init = nn::init::uniform_unit, .seed = 5},
                        ste::dorefa_weight<2>{}, ste::dorefa_weight<4>{}, ste::xnor_weight<per_tensor_t>{},
                        ste::pact<4>{{.alpha = 1.25f}}, nn::bias_head);
    randomise(kbit, 6);
    deploy::save_packed(target("packed_model", "kbit-mlp.lbpk"),
                        deploy::compile(kbit, {.input = {.scale = 0.02f, .offset = -1.0f}}));

    // Narrower than the binary CNN: its hidden convolutions store a byte per weight.
    auto kbit_cnn = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 10, .hidden = 20, .classes = 3, .seed = 2},
                            ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::xnor_weight<>{},
                            ste::pact<4>{{.alpha = 2.0f}}, nn::bias_head);
    randomise(kbit_cnn, 3);
    deploy::save_packed(target("packed_model", "kbit-cnn.lbpk"),
                        deploy::compile(kbit_cnn, {.input = {.scale = 0.01f, .offset = -0.5f}, .height = 8, .width = 8}));

    // Users' models: a residual MLP on sign bits, and a CNN with k-bit codes, an
    // input map whose code 0 is not 0.0 (padding classes), a residual convolution block, pooling and a flatten.
    using xnor = nn::dense<ste::xnor_weight<>>;
    using sign = nn::quantize_activation<ste::sign_activation>;
    nn::sequential residual_mlp(xnor({.in = 12, .out = 16, .bias = false}), nn::batch_norm<2>({.channels = 16}), sign{},
                                nn::residual(nn::sequential(xnor({.in = 16, .out = 16, .bias = false}),
                                                            nn::batch_norm<2>({.channels = 16}), sign{})),
                                xnor({.in = 16, .out = 3, .bias = true}));
    randomise(residual_mlp, 7);
    deploy::save_packed(target("packed_model", "residual-mlp.lbpk"),
                        deploy::compile(residual_mlp, {.input = {.scale = 0.01f, .offset = -0.5f}}));

    using conv4 = nn::conv2d<ste::dorefa_weight<4>>;
    using codes = nn::quantize_activation<ste::pact<2>>;
    nn::sequential kbit_residual_cnn(
        conv4({.in = 1, .out = 4, .kernel = 3, .padding = 1, .bias = false}), nn::batch_norm<4>({.channels = 4}),
        codes{ste::pact<2>({.alpha = 2.0f})},
        nn::residual(nn::sequential(conv4({.in = 4, .out = 4, .kernel = 3, .padding = 1, .bias = false}),
                                    nn::batch_norm<4>({.channels = 4}), nn::relu{})),
        codes{ste::pact<2>({.alpha = 2.0f})}, nn::max_pool2d{}, nn::flatten{},
        nn::dense<ste::dorefa_weight<4>>({.in = 16, .out = 3, .bias = true}));
    randomise(kbit_residual_cnn, 8);
    deploy::save_packed(
        target("packed_model", "kbit-residual-cnn.lbpk"),
        deploy::compile(kbit_residual_cnn, {.input = {.scale = 0.01f, .offset = -0.5f}, .height = 4, .width = 4}));

    if (argc == 3) write_outside_findings(argv[2]);
    return 0;
}
