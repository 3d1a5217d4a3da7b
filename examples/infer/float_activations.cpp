// SPDX-License-Identifier: MIT
// lowbit-infer: checkpoints of lowbit-train's default MLP and CNN -- Li et al.'s B-bit weights with float
// ReLU activations and the BatchNorm head (--method bc, sr, r or sqwa without --act-bits) -- rebuilt as
// lowbit-train built them and handed to the one checkpoint path (deploy_checkpoint.hpp). Their packed model
// runs the first layer on the int8 kernel and the later ones on float activations with packed weights, so it
// is compared with the fake-quant model by its logits and argmax on every test image (no per-value audit: the
// hidden activations are floats).
#include "deploy_checkpoint.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/quantizer.hpp>

#include <cstddef>
#include <type_traits>

namespace lowbit_infer {

namespace {

/// Calls @p run with lowbit-train's quantizer of Li et al.'s grid for configuration @p c (SQWA's L2-optimal
/// grid for --method sqwa), at 1 or 2 bits. Nearest rounding whatever the method's: SR- and R-trained weights
/// are on the grid, and BC evaluates so.
/// @throws io::io_error naming @p file for another bit width (each one is two more model types to compile).
template <class Run>
int with_li_quantizer(lowbit::io::archive const& file, lowbit_train::config const& c, Run&& run)
{
    auto const li = [&]<int B>(std::integral_constant<int, B>) {
        if (c.method == "sqwa") return run(lowbit::quantizer<B, lowbit::nearest_even_t, lowbit::clip::l2_optimal>{});
        return run(lowbit_train::cli_quantizer<B, lowbit::nearest_even_t>{.clipping = {.bound = 1.0f}});
    };
    if (c.bits == 1) return li(std::integral_constant<int, 1>{});
    if (c.bits == 2) return li(std::integral_constant<int, 2>{});
    throw lowbit::io::io_error{file.source(), "trained with lowbit-train " + trained_with(c) +
                                                  ": lowbit-infer deploys Li et al.'s models with float activations "
                                                  "at --bits 1 or 2"};
}

} // namespace

int run_float_checkpoint(options const& o, lowbit::io::archive const& file)
{
    lowbit_train::config const c = trained_config(o, file, meta_value(file, "model") == "cnn" ? "cnn" : "mlp");
    namespace nn = lowbit::nn;
    if (c.model == "cnn")  // nn::cnn's default widths, as lowbit-train uses them
        return with_li_quantizer(file, c,
                                 [&](auto q) { return deploy_checkpoint<4>(o, file, c, nn::cnn({}, q, q, q)); });
    std::size_t const hidden = hidden_width(o, file);
    return with_li_quantizer(file, c, [&](auto q) {
        return deploy_checkpoint<2>(
            o, file, c,
            nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit}, q, q, q));
    });
}

} // namespace lowbit_infer
