// SPDX-License-Identifier: MIT
// lowbit-infer: the MLP with k-bit PACT activations (lowbit-train --quantizer pact / cg-pact / xnor --act-bits k),
// compiled into deploy::packed_kbit_mlp and compared code by code with the fake-quant model.
//
// deploy::compile needs the model's concrete quantizer types, and every type is one more instantiation of the
// model, its fake-quant forward and the compiler, so lowbit-infer builds a fixed set of recipes -- the ones
// docs/deploy.md measures -- and refuses every other checkpoint with a message that names the file, what it was
// trained with and this set (never loading its weights into a model of other quantizers, which would succeed
// and compile a different model):
//
//   lowbit-train --method bc --quantizer xnor --bits 1 --act-bits 2|4 --first-last-bits 8
//   lowbit-train --method bc --quantizer pact|cg-pact --bits 2 --act-bits 2|4 --first-last-bits 8
//
// i.e. XNOR or 2-bit DoReFa hidden weights, 8-bit DoReFa first and last layers, 2- or 4-bit PACT activations,
// the bias head. CG-PACT differs from PACT only in alpha's gradient, so its model is compiled as PACT's: the
// forward pass, which is all inference runs, is the same (deploy::compile takes either). A packed k-bit file
// needs no recipe: any `lowbit-packed-kbit-mlp` of shape 784-H-H-10 is measured.
#include "common.hpp"
#include "infer.hpp"

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

namespace ste = lowbit::ste;
namespace deploy = lowbit::deploy;

constexpr char const* supported_recipes =
    "lowbit-infer compiles PACT MLPs of lowbit-train --method bc --act-bits 2 or 4 --first-last-bits 8 with "
    "--quantizer xnor --bits 1, or --quantizer pact (or cg-pact) --bits 2";

/// The hidden-layer weights of the supported recipes.
enum class hidden_weights { xnor, dorefa2 };

struct kbit_recipe {
    hidden_weights hidden = hidden_weights::xnor;
    int act_bits = 2;
    bool calibrated = false;  // CG-PACT, compiled as PACT
};

/// The recipe of a lowbit-train checkpoint with k-bit activations (its metadata: method, quantizer, bits,
/// act_bits, first_last_bits, head), if it is one of the supported set.
/// @throws io::io_error naming the file, what it was trained with and the supported set otherwise.
kbit_recipe kbit_recipe_of(options const& o, lowbit::io::archive const& a)
{
    for (char const* key : {"method", "quantizer", "bits", "act_bits", "first_last_bits"})
        if (!a.meta().contains(key))
            throw lowbit::io::io_error{a.source(), std::string("metadata '") + key + "' is missing: not a checkpoint "
                                                   "of lowbit-train's recipes (--save-model); " + supported_recipes};
    std::string const method = meta_value(a, "method"), bits = meta_value(a, "bits"), act = meta_value(a, "act_bits"),
                      edge = meta_value(a, "first_last_bits"), head = meta_value(a, "head");
    // lowbit-train writes the --quantizer it was given; without one, --method sat uses cg-pact.
    std::string const quantizer = meta_value(a, "quantizer").empty() && method == "sat" ? "cg-pact"
                                                                                        : meta_value(a, "quantizer");
    std::string const trained = "--method " + method + (quantizer.empty() ? "" : " --quantizer " + quantizer) +
                                " --bits " + bits + " --act-bits " + act + " --first-last-bits " + edge;
    auto const refuse = [&](std::string const& why) {
        return lowbit::io::io_error{a.source(), why + " (trained with lowbit-train " + trained + "); " +
                                                    supported_recipes};
    };
    if (method == "sat")
        throw refuse("--method sat rescales the last layer's weights (ste::sat_rescale), which deploy::compile has "
                     "no packed form for");
    if (method != "bc") throw refuse("--method " + method + " is not among the compiled recipes");
    if (act == "32") throw refuse("the activations are float (--act-bits 32), not PACT codes");
    if (quantizer == "dorefa" || quantizer == "lsq")
        throw refuse("--quantizer " + quantizer + " quantizes the activations with " +
                     (quantizer == "lsq" ? "LSQ's learned step" : "DoReFa") + ", not PACT");
    if (quantizer == "uniform" || quantizer == "twn")
        throw refuse("--quantizer " + quantizer + " weights have no packed form (deploy::compile packs XNOR and "
                     "DoReFa weights)");
    if (act != "2" && act != "4") throw refuse("--act-bits " + act + " is not among the compiled widths 2 and 4");
    if (edge != "8")
        throw refuse("--first-last-bits " + edge + " is not among the compiled edge layers (8-bit DoReFa)");
    kbit_recipe r{.act_bits = act == "2" ? 2 : 4, .calibrated = quantizer == "cg-pact"};
    if (quantizer == "xnor" && bits == "1")
        r.hidden = hidden_weights::xnor;
    else if ((quantizer == "pact" || quantizer == "cg-pact") && bits == "2")
        r.hidden = hidden_weights::dorefa2;
    else
        throw refuse("--quantizer " + quantizer + " --bits " + bits + " is not among the compiled hidden weights");
    if (!head.empty() && head != "bias") throw refuse("--head " + head + " is not the bias head PACT MLPs use");
    if (o.first_last_bits_given && o.first_last_bits != 8)
        throw lowbit::io::io_error{a.source(), "--first-last-bits " + std::to_string(o.first_last_bits) +
                                                   " contradicts the checkpoint's first_last_bits 8"};
    return r;
}

/// The model lowbit-train builds for a supported recipe (there with type-erased quantizers; here with the
/// concrete types deploy::compile needs).
template <class HiddenWeights, int ActBits>
auto make_pact_mlp(std::size_t hidden)
{
    return lowbit::nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit},
                           HiddenWeights{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::pact<ActBits>{},
                           lowbit::nn::bias_head);
}

/// The float state's bytes of the MLP of hidden width @p hidden: every supported recipe holds the same float
/// tensors (weights, biases, BatchNorm, two alphas), so one of them stands for a packed file of any recipe.
std::size_t float_bytes(std::size_t hidden)
{
    auto model = make_pact_mlp<ste::xnor_weight<>, 2>(hidden);
    return lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
}

/// The report's model description and JSON head, from the packed model itself (so that a checkpoint and its
/// packed file describe themselves alike).
void describe(report& r, deploy::packed_kbit_mlp const& packed, options const& o, bool calibrated)
{
    auto const z = [](std::size_t v) { return std::to_string(v); };
    std::size_t const hidden = packed.layers()[0].out();
    int const act_bits = static_cast<int>(std::bit_width(static_cast<unsigned>(packed.layers()[0].thresholds().levels)));
    int const bits = packed.layers()[1].weights().bits, edge = packed.layers()[0].weights().bits;
    r.model = "784-" + z(hidden) + "-" + z(hidden) + "-10 (" + std::to_string(act_bits) + "-bit " +
              (calibrated ? "CG-PACT" : "PACT") + " activations, " +
              (bits == 1 ? std::string("binary") : std::to_string(bits) + "-bit") + " hidden weights, " +
              std::to_string(edge) + "-bit first/last)";
    r.json_head = std::string("\"model\": \"mlp-kbit\", \"mode\": \"") + mode_of(o) + "\", \"hidden\": " + z(hidden) +
                  ", \"act_bits\": " + std::to_string(act_bits) + ", \"bits\": " + std::to_string(bits) +
                  ", \"first_last_bits\": " + std::to_string(edge) + ", ";
    r.hidden_values = "codes";
    r.differing_key = "hidden_code_diffs";
    r.images_key = "images_with_code_diffs";
    r.hidden_per_image = 2 * hidden;
}

template <class Model>
int run_checkpoint(options const& o, lowbit::io::archive const& file, kbit_recipe const& recipe, Model model)
{
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read. PACT's alpha is
    // `any_quantizer.parameter` in lowbit-train's checkpoint and `pact.alpha` in the concrete model.
    lowbit::train::from_archive(model, with_concrete_quantizer_names(file, ste::pact<2>::parameter_name),
                                {{"model", "mlp"}});
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, true);
    // The fake-quant forward: weights through their quantizers, as after BinaryConnect training.
    model.for_each_weight([](auto& w) { w.store_as(lowbit::nn::weight_storage::shadow, 0); });
    deploy::packed_kbit_mlp const packed = deploy::compile(model, {.input = d.st.map});
    if (!o.save_packed.empty()) deploy::save_packed(o.save_packed, packed);
    check_input_map(packed, d.x, d.codes, d.st);

    // The fake-quant model layer by layer: after each ReLU + PACT its activation is h = (a / n) q with a = |alpha|
    // and the code q in 0..n, so its code is round(h n / a), compared with the packed model's. They can differ
    // only where the fake-quant model's own float sums put a BatchNorm output within rounding of a PACT step.
    double const n_levels = static_cast<double>((1 << recipe.act_bits) - 1);
    double const alpha1 = std::abs(model.template layer<2>().template layer<1>().quantizer().alpha());
    double const alpha2 = std::abs(model.template layer<5>().template layer<1>().quantizer().alpha());
    std::size_t const hidden = packed.layers()[0].out(), n = d.codes.shape(0);
    std::size_t inner = 0;  // packed codes strictly between 0 and n: the levels are exercised, not just the ends
    agreement c;
    lowbit::nn::forward_context const eval{.training = false};
    for (std::size_t s = 0; s < n; s += 1000) {
        std::size_t const e = std::min(n, s + 1000);
        xt::xtensor<float, 2> const xs = xt::view(d.x, xt::range(s, e), xt::all());
        xt::xtensor<std::uint8_t, 2> const qs = xt::view(d.codes, xt::range(s, e), xt::all());
        auto const h1 = model.template layer<2>().forward(
            model.template layer<1>().forward(model.template layer<0>().forward(xs, eval), eval), eval);
        auto const h2 = model.template layer<5>().forward(
            model.template layer<4>().forward(model.template layer<3>().forward(h1, eval), eval), eval);
        xt::xtensor<float, 2> const f = model.template layer<6>().forward(h2, eval);
        xt::xtensor<std::uint8_t, 2> const p1 = packed.codes(qs, 0), p2 = packed.codes(qs, 1);
        std::vector<std::size_t> first(e - s, 0), all(e - s, 0);
        for (std::size_t i = 0; i < e - s; ++i)
            for (std::size_t j = 0; j < hidden; ++j) {
                double const c1 = std::nearbyint(h1(i, j) * n_levels / alpha1);
                double const c2 = std::nearbyint(h2(i, j) * n_levels / alpha2);
                first[i] += c1 != p1(i, j);
                all[i] += (c1 != p1(i, j)) + (c2 != p2(i, j));
                inner += (p1(i, j) != 0 && p1(i, j) != n_levels) + (p2(i, j) != 0 && p2(i, j) != n_levels);
            }
        c.add(f, packed.forward(qs), d.test.labels, s, all, first);
    }
    r.compared = c;
    describe(r, packed, o, recipe.calibrated);
    r.json_extra = ", \"inner_codes\": " + std::to_string(inner);
    r.packed_bytes = deploy::packed_bytes(packed);
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
    r.float_bytes = float_bytes(packed.layers()[0].out());
    test_data const d = load_test_data(o, false);
    describe(r, packed, o, false);
    r.json_extra = ", \"inner_codes\": null";
    r.packed_bytes = deploy::packed_bytes(packed);
    r.t = measure(packed, d.codes, d.test.labels, o);
    print_report(r, o);
    return 0;
}

} // namespace

int run_kbit_mlp(options const& o, lowbit::io::archive const& file)
{
    if (o.checkpoint.empty()) return run_packed(o, file);
    kbit_recipe const r = kbit_recipe_of(o, file);
    std::size_t const h = hidden_width(o, file);
    using xnor = ste::xnor_weight<>;
    using dorefa2 = ste::dorefa_weight<2>;
    if (r.hidden == hidden_weights::xnor)
        return r.act_bits == 2 ? run_checkpoint(o, file, r, make_pact_mlp<xnor, 2>(h))
                               : run_checkpoint(o, file, r, make_pact_mlp<xnor, 4>(h));
    return r.act_bits == 2 ? run_checkpoint(o, file, r, make_pact_mlp<dorefa2, 2>(h))
                           : run_checkpoint(o, file, r, make_pact_mlp<dorefa2, 4>(h));
}

} // namespace lowbit_infer
