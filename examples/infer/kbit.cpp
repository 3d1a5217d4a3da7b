// SPDX-License-Identifier: MIT
// lowbit-infer: the MLP with k-bit code activations (lowbit-train --quantizer pact / cg-pact / dorefa / xnor
// --act-bits k, --method sat), rebuilt as lowbit-train built it (trained_model.hpp), compiled into
// deploy::packed_kbit_mlp and compared code by code with the fake-quant model. A packed k-bit file needs no
// recipe: any `lowbit-packed-kbit-mlp` of shape 784-H-H-10 is measured.
#include "common.hpp"
#include "infer.hpp"
#include "kbit_common.hpp"

#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/deploy/packed_kbit_mlp.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit_infer {

namespace {

namespace deploy = lowbit::deploy;

/// The float state's bytes of the MLP of hidden width @p hidden: every recipe holds the same float tensors
/// (weights, biases, BatchNorm, two alphas), so the stand-in recipe with 2-bit activations stands for any.
std::size_t float_bytes(options const& o, std::size_t hidden)
{
    return with_code_mlp(stand_in_config(o, "mlp", 2), hidden, [](auto model) {
        return static_cast<int>(lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size());
    });
}

/// The report's model description and JSON head, from the packed model itself (so that a checkpoint and its
/// packed file describe themselves alike).
void describe(report& r, deploy::packed_kbit_mlp const& packed, options const& o, std::string const& activations)
{
    auto const z = [](std::size_t v) { return std::to_string(v); };
    std::size_t const hidden = packed.layers()[0].out();
    int const act_bits = static_cast<int>(std::bit_width(static_cast<unsigned>(packed.layers()[0].thresholds().levels)));
    int const bits = packed.layers()[1].weights().bits, edge = packed.layers()[0].weights().bits;
    r.model = "784-" + z(hidden) + "-" + z(hidden) + "-10 (" + std::to_string(act_bits) + "-bit " +
              activations + " activations, " +
              (bits == 1 ? std::string("binary") : std::to_string(bits) + "-bit") + " hidden weights, " +
              std::to_string(edge) + "-bit first/last)";
    r.json_head = std::string("\"model\": \"mlp-kbit\", \"mode\": \"") + mode_of(o) + "\", \"hidden\": " + z(hidden) +
                  ", \"act_bits\": " + std::to_string(act_bits) + ", \"bits\": " + std::to_string(bits) +
                  ", \"first_last_bits\": " + std::to_string(edge) + ", ";
    r.hidden_values = "codes";
    r.differing_key = "hidden_code_diffs";
    r.images_key = "images_with_code_diffs";
}

template <class Model>
int run_checkpoint(options const& o, lowbit::io::archive const& file, lowbit_train::config const& c, Model model)
{
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read. lowbit-train's erased quantizers
    // name their parameters as the concrete ones do (`pact.alpha`); older files are renamed by from_archive.
    lowbit::train::from_archive(model, file, {{"model", "mlp"}});
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, true);
    deploy::packed_kbit_mlp const packed =
        naming_the_recipe(file, c, [&] { return deploy::compile(model, {.input = d.st.map}); });
    if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
    check_input_map(packed, d.x, d.codes, d.st);

    // The fake-quant model layer by layer: its code after each ReLU + PACT against the packed model's. They can
    // differ only where the fake-quant model's own float sums put a BatchNorm output within rounding of a PACT
    // step (deploy::audit checks each difference for that).
    r.compared = deploy::audit(model, packed, d.x, d.codes, d.test.labels);
    std::size_t const inner = inner_codes(packed, d.codes, c.act_bits);
    describe(r, packed, o, activation_name(&c));
    r.json_extra = ", \"inner_codes\": " + std::to_string(inner);
    r.packed_bytes = deploy::packed_bytes(packed);
    print_summaries(o, model, {784}, packed);
    r.t = measure(packed, d.codes, d.test.labels, o);
    print_report(r, o);
    return 0;
}

int run_packed(options const& o, lowbit::io::archive const& file)
{
    lowbit::set_num_threads(o.threads);
    deploy::packed_kbit_mlp const packed = deploy::kbit_from_archive(file);
    if (packed.inputs() != 784 || packed.classes() != 10 || packed.layers().size() != 3 ||
        packed.layers()[0].out() != packed.layers()[1].out())
        throw std::runtime_error(o.packed + ": not a 784-H-H-10 model (" + std::to_string(packed.inputs()) +
                                 " inputs, " + std::to_string(packed.layers().size()) + " layers, " +
                                 std::to_string(packed.classes()) + " classes)");
    report r;
    r.float_bytes = float_bytes(o, packed.layers()[0].out());
    test_data const d = load_test_data(o, false);
    describe(r, packed, o, activation_name(nullptr));
    r.json_extra = ", \"inner_codes\": null";
    r.packed_bytes = deploy::packed_bytes(packed);
    print_summaries(o, packed);
    r.t = measure(packed, d.codes, d.test.labels, o);
    print_report(r, o);
    return 0;
}

} // namespace

int run_kbit_mlp(options const& o, lowbit::io::archive const& file)
{
    if (o.checkpoint.empty()) return run_packed(o, file);
    lowbit_train::config const c = trained_config(o, file, "mlp");
    return with_code_mlp(c, hidden_width(o, file), [&](auto model) { return run_checkpoint(o, file, c, std::move(model)); });
}

} // namespace lowbit_infer
