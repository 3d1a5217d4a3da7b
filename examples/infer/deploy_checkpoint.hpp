// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: the one path of every checkpoint, whatever its model -- lowbit-train's model rebuilt as
// lowbit-train built it (trained_model.hpp, float_activations.cpp), its state read from the checkpoint,
// lowered layer by layer into a deploy::packed_model with lowbit-train's standardisation as the input map,
// compared with the fake-quant model and measured. The runners (binarized.cpp, kbit.cpp, kbit_cnn.cpp,
// float_activations.cpp) only build the model; they are translation units of their own so that the model
// types' instantiations compile in parallel.

#include "common.hpp"
#include "infer.hpp"
#include "model_description.hpp"
#include "trained_model.hpp"

#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit_infer {

/// The fake-quant model's logits of @p x (rows of 784 standardised pixels; as 1 x 28 x 28 images for a CNN,
/// @p Rank 4), 500 at a time.
template <std::size_t Rank, class Model>
xt::xtensor<float, 2> fake_quant_logits(Model& model, xt::xtensor<float, 2> const& x)
{
    std::size_t const n = x.shape(0);
    xt::xtensor<float, 2> out;
    for (std::size_t s = 0; s < n; s += 500) {
        std::size_t const e = std::min(n, s + 500);
        xt::xtensor<float, 2> const b = xt::view(x, xt::range(s, e), xt::all());
        xt::xtensor<float, 2> l;
        if constexpr (Rank == 4)
            l = model.forward(lowbit::nn::as_images(b, 1, 28, 28), {.training = false});
        else
            l = model.forward(b, {.training = false});
        if (s == 0) out = xt::xtensor<float, 2>::from_shape({n, l.shape(1)});
        xt::view(out, xt::range(s, e), xt::all()) = l;
    }
    return out;
}

/// The two models' logits side by side: fake-quant accuracy, argmax disagreements, the largest difference.
inline plain_comparison compare(xt::xtensor<float, 2> const& fake, xt::xtensor<float, 2> const& packed,
                                xt::xtensor<std::uint8_t, 1> const& labels)
{
    plain_comparison p;
    p.images = fake.shape(0);
    for (std::size_t i = 0; i < p.images; ++i) {
        std::size_t const f = argmax_row(fake, i);
        p.fake_correct += f == labels(i) ? 1u : 0u;
        p.disagreements += f != argmax_row(packed, i) ? 1u : 0u;
        for (std::size_t j = 0; j < fake.shape(1); ++j)
            p.max_logit_diff = std::max(p.max_logit_diff, static_cast<double>(std::abs(fake(i, j) - packed(i, j))));
    }
    return p;
}

/// lowbit-infer --checkpoint for @p model, lowbit-train's model of configuration @p c (its state not yet read) on
/// rows of 784 pixels (@p Rank 2: the MLP) or 1 x 28 x 28 images (@p Rank 4: the CNN): reads the state from
/// @p file, lowers the model (deploy::compile), writes --save-packed, compares it with the fake-quant model on
/// the test set and measures it. A model whose hidden values are sign bits or codes is audited value by value
/// (deploy::audit: every code and logit within the fake-quant model's own float rounding); one with float
/// activations (Li et al.'s) by its logits and argmax. Returns the exit code.
/// @throws io::io_error naming the file when the state does not fit the model or the model has no packed form.
template <std::size_t Rank, class Model>
int deploy_checkpoint(options const& o, lowbit::io::archive const& file, lowbit_train::config const& c, Model model)
{
    static_assert(Rank == 2 || Rank == 4, "lowbit-infer: rows of pixels (the MLP) or images (the CNN)");
    namespace deploy = lowbit::deploy;
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read. lowbit-train's erased quantizers
    // name their parameters as the concrete ones do (`pact.alpha`); older files are renamed by from_archive.
    lowbit::train::from_archive(model, file, {{"model", c.model}});
    report r;
    r.float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(model)).size();
    test_data const d = load_test_data(o, true);
    std::size_t const side = Rank == 4 ? 28 : 0;
    deploy::compile_options const options{.input = d.st.map, .height = side, .width = side};
    deploy::packed_model const packed = naming_the_recipe(file, c, [&] { return deploy::compile(model, options); });
    check_input_map(packed, d.x, d.codes,
                    "lowbit-train's standardised test images (mean " + std::to_string(d.st.mean) + ", sd " +
                        std::to_string(d.st.sd) + ")");
    provenance const from{
        .trained_with = trained_with(c), .activations = activation_name(c), .float_bytes = r.float_bytes};
    if (!o.save_packed.empty())
        lowbit::io::save_archive(o.save_packed, with_provenance(deploy::to_archive(packed), from));
    model_description const m = describe(packed, from);
    if (m.hidden == deploy::encoding::floats) {
        r.plain = compare(fake_quant_logits<Rank>(model, d.x), packed.forward(d.x), d.test.labels);
    } else {
        // Layer by layer, the fake-quant model's codes (sign bits, or codes after ReLU + the code quantizer)
        // against the packed model's: they can differ only where the fake-quant model's own float sums put a
        // BatchNorm output within rounding of a step (deploy::audit checks each difference for that).
        r.compared = deploy::audit(model, packed, d.x, d.test.labels, options);
    }
    describe(r, m, o);
    if (m.hidden == deploy::encoding::codes)
        r.json_extra = ", \"inner_codes\": " + std::to_string(inner_codes(packed, m, d.x));
    r.packed_bytes = deploy::packed_bytes(packed);
    print_summaries(o, model, Rank == 4 ? std::vector<std::size_t>{1, 28, 28} : std::vector<std::size_t>{784}, packed);
    r.t = measure(packed, d.x, d.test.labels, o);
    print_report(r, o);
    return 0;
}

} // namespace lowbit_infer
