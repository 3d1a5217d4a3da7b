// SPDX-License-Identifier: MIT
// lowbit-infer --packed: a `lowbit-packed-model` file (deploy::packed_model_from_archive, which refuses the retired
// fixed-shape formats and says what to do), measured on the test set. The file carries its input map, so the
// packed model reads the floats on that map's grid whose codes are the test set's pixels -- the codes it read when
// lowbit-infer compiled it from the checkpoint -- and needs no training images. Its description comes from its
// steps, as a checkpoint's does (model_description.hpp); what the steps do not hold of the checkpoint (the recipe,
// the float model's bytes) comes from the metadata lowbit-infer --save-packed records.
#include "common.hpp"
#include "infer.hpp"
#include "model_description.hpp"

#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xtensor/xtensor.hpp>

#include <optional>
#include <string>

namespace lowbit_infer {

int run_packed(options const& o, lowbit::io::archive const& file)
{
    namespace deploy = lowbit::deploy;
    lowbit::set_num_threads(o.threads);
    // The model file first, so that a bad file fails before the data is read.
    deploy::packed_model const packed = deploy::packed_model_from_archive(file);
    if (packed.inputs() != 784 || packed.classes() != 10)
        throw lowbit::io::io_error{file.source(), "not a model of Fashion-MNIST's 784 pixels and 10 classes (" +
                                                      std::to_string(packed.inputs()) + " inputs, " +
                                                      std::to_string(packed.classes()) + " classes)"};
    provenance const from = provenance_of(file);
    model_description const m = describe(packed, from);
    if (o.first_last_bits_given && m.first_last_bits != 0 && m.first_last_bits != o.first_last_bits)
        throw lowbit::io::io_error{file.source(), "--first-last-bits " + std::to_string(o.first_last_bits) +
                                                      " contradicts the packed model's first layer of " +
                                                      std::to_string(m.first_last_bits) + "-bit weights"};
    // A model that reads the floats themselves (its first layer has float weights) gets lowbit-train's
    // standardised pixels, as a checkpoint's model would.
    std::optional<deploy::input_map> const map = input_map_of(packed);
    test_data const d = load_test_data(o, !map);
    xt::xtensor<float, 2> const x = map ? grid_floats(*map, d.codes) : d.x;
    check_input_map(packed, x, d.codes, "its own grid");
    report r;
    describe(r, m, o);
    // inner_codes is the checkpoint run's figure, as the comparison's are: counting them takes a pass of its
    // own over the test set (seconds for the CNN in a Debug build), and the packed file's codes are the same.
    if (m.hidden == deploy::encoding::codes) r.json_extra = ", \"inner_codes\": null";
    r.packed_bytes = deploy::packed_bytes(packed);
    // The trained model's checkpoint bytes when the file records them, else the summary's float bytes (every
    // weight and BatchNorm value in float).
    r.float_bytes = from.float_bytes != 0 ? from.float_bytes : lowbit::summary(packed).float_bytes();
    print_summaries(o, packed);
    r.t = measure(packed, x, d.test.labels, o);
    print_report(r, o);
    return 0;
}

} // namespace lowbit_infer
