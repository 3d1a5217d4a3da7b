// SPDX-License-Identifier: MIT
// lowbit-infer: checkpoints of the binarized MLP and CNN (sign activations; lowbit-train --act-bits 1 with
// --quantizer xnor|dorefa, or with Li et al.'s grid at --bits 1 or 2), rebuilt as lowbit-train built them
// (trained_model.hpp) and handed to the one checkpoint path (deploy_checkpoint.hpp).
#include "deploy_checkpoint.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/io/archive.hpp>

#include <cstddef>

namespace lowbit_infer {

int run_sign_checkpoint(options const& o, lowbit::io::archive const& file)
{
    if (meta_value(file, "model") == "cnn") {
        lowbit_train::config const c = trained_config(o, file, "cnn");
        if (!lowbit_train::uses_recipe(c))  // Li et al.'s grid with sign activations (bc, sr, r at 1 or 2 bits)
            return c.bits == 1 ? deploy_checkpoint<4>(o, file, c, li_sign_cnn<1>())
                               : deploy_checkpoint<4>(o, file, c, li_sign_cnn<2>());
        return deploy_checkpoint<4>(o, file, c, trained_sign_cnn(c));
    }
    lowbit_train::config const c = trained_config(o, file, "mlp");
    std::size_t const hidden = hidden_width(o, file);
    if (!lowbit_train::uses_recipe(c))
        return c.bits == 1 ? deploy_checkpoint<2>(o, file, c, li_sign_mlp<1>(hidden))
                           : deploy_checkpoint<2>(o, file, c, li_sign_mlp<2>(hidden));
    return deploy_checkpoint<2>(o, file, c, trained_sign_mlp(c, hidden));
}

} // namespace lowbit_infer
