// SPDX-License-Identifier: MIT
// lowbit-infer: checkpoints of the MLP with k-bit code activations (lowbit-train --quantizer pact / cg-pact /
// dorefa / lsq / xnor / twn / uniform --act-bits k, --method sat, --method sqwa --act-bits k), rebuilt as
// lowbit-train built it (trained_model.hpp) and handed to the one checkpoint path (deploy_checkpoint.hpp).
#include "deploy_checkpoint.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/io/archive.hpp>

#include <utility>

namespace lowbit_infer {

int run_code_mlp_checkpoint(options const& o, lowbit::io::archive const& file)
{
    lowbit_train::config const c = trained_config(o, file, "mlp");
    return with_code_mlp(c, hidden_width(o, file),
                         [&](auto model) { return deploy_checkpoint<2>(o, file, c, std::move(model)); });
}

} // namespace lowbit_infer
