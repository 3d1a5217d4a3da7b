// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief save_checkpoint / load_checkpoint: a model's full-precision state in a lowbit checkpoint file
/// (io/archive.hpp, docs/formats.md), so that a method such as SQWA can start from a saved float model.
///
/// The state is every layer weight's real values (nn::weight::values(), whatever its state), every
/// parameter of for_each_parameter (biases, BatchNorm gamma and beta, PACT's alpha, LSQ's step) and every
/// buffer of for_each_buffer (BatchNorm's running mean and variance). Each tensor is named by its position:
/// `layer<i>.` per level of sequential, `residual.` inside a residual block, then `weight` (`weight.<k>` for a
/// layer's k-th further weight) or the parameter's or buffer's own name, e.g. `layer3.weight`,
/// `layer4.batch_norm.gamma`, `layer0.layer1.batch_norm.running_var`. A model of the same architecture
/// therefore maps tensor for tensor; any other model fails with a missing, unexpected or mis-shaped entry.
///
/// Loading checks the whole file and the whole model before it changes anything: on any error the model
/// is left as it was. A resumable checkpoint (train::trainer::save_state) holds these same tensors plus a run's
/// state under io::run_state_prefix (`run/...`), which loading a model skips: it loads like any other.
///
/// @code
/// auto model = lowbit::nn::mlp<lowbit::nn::float_weights_t>({.hidden = 256});
/// // ... train it with train::full_precision ...
/// lowbit::train::save_checkpoint("run/fp.lbck", model, {{"model", "mlp"}, {"method", "fp"}});
/// auto fresh = lowbit::nn::mlp<w2>({.hidden = 256});                           // ternary weights, same layers
/// lowbit::train::load_checkpoint("run/fp.lbck", fresh, {{"model", "mlp"}});   // throws io::io_error
/// lowbit::train::trainer t{fresh, lowbit::train::binary_connect{}, opt};      // starts from the float model
/// @endcode
///
/// Load before a packed-state method (stochastic_rounding, rounded) binds the model, so that its grid is
/// fixed from the loaded values with the method's own rounding; loading into packed weights re-quantizes
/// them with nearest rounding (nn::weight::assign).

#include <lowbit/config.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/nn/buffer.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lowbit::train {

/// @brief Key/value metadata stored with a checkpoint (model kind, method, bits, ...).
using checkpoint_meta = io::archive::meta_map;

namespace detail {

/// Accepts anything: used to ask whether a layer is a container (`for_each_layer`).
struct any_visitor {
    template <class T>
    void operator()(T&) const noexcept
    {
    }
};

/// Calls f(name, shape, target) for every state tensor of @p layer, in a fixed order; target is an
/// nn::weight<P>& or a std::span<float> (parameter or buffer values).
template <class L, class F>
void visit_state(L& layer, std::string const& prefix, F& f)
{
    if constexpr (requires(any_visitor v) { layer.for_each_layer(v); }) {  // sequential
        std::size_t i = 0;
        layer.for_each_layer([&](auto& l) { visit_state(l, prefix + "layer" + std::to_string(i++) + ".", f); });
    } else if constexpr (requires { layer.inner(); }) {  // residual
        visit_state(layer.inner(), prefix + "residual.", f);
    } else {
        std::size_t k = 0;
        layer.for_each_weight([&](auto& w) {
            std::string const name = prefix + (k == 0 ? std::string("weight") : "weight." + std::to_string(k));
            ++k;
            f(name, std::vector<std::size_t>(w.shape().begin(), w.shape().end()), w);
        });
        layer.for_each_parameter([&](nn::parameter& p) {
            f(prefix + std::string(p.name), std::vector<std::size_t>{p.value.size()}, p.value);
        });
        if constexpr (requires(any_visitor v) { layer.for_each_buffer(v); }) {
            layer.for_each_buffer([&](nn::buffer& b) {
                f(prefix + std::string(b.name), std::vector<std::size_t>{b.value.size()}, b.value);
            });
        }
    }
}

template <class T>
inline constexpr bool is_span_v = std::is_same_v<std::remove_cvref_t<T>, std::span<float>>;


/// Whether @p name is a parameter of a quantizer held in ste::any_quantizer as files before run state version 2
/// named it: `<prefix>any_quantizer.parameter`, whatever the held type (of shape [0] when it learns nothing).
inline bool erased_name(std::string_view name) noexcept
{
    return name.ends_with(ste::any_quantizer::parameter_name);
}

/// For a file written before erased quantizers' parameters took their held type's name (`pact.alpha`): the
/// model's tensor that each non-empty `<prefix>any_quantizer.parameter` entry stands for -- the one tensor of the
/// model under that prefix that the file does not hold -- keyed by the model's name. Entries that match no
/// such tensor, or several, stay unexplained (and loading names them).
template <class Model>
std::map<std::string, std::string, std::less<>> legacy_names(Model& model, io::archive const& a)
{
    std::map<std::string, std::string, std::less<>> alias;
    if (std::ranges::none_of(a.entries(), [](io::archive_entry const& e) { return erased_name(e.name); }))
        return alias;
    std::vector<std::string> missing;  // the model's tensors the file does not hold under their own name
    auto collect = [&](std::string const& name, std::vector<std::size_t> const&, auto&) {
        if (a.find(name) == nullptr) missing.push_back(name);
    };
    visit_state(model, "", collect);
    for (io::archive_entry const& e : a.entries()) {
        if (!erased_name(e.name) || e.values.empty()) continue;
        std::string_view const prefix = std::string_view(e.name).substr(0, e.name.size() - ste::any_quantizer::parameter_name.size());
        std::vector<std::string> candidates;
        for (std::string const& m : missing)
            if (m.starts_with(prefix) && m.find('.', prefix.size()) != std::string::npos &&
                m.find("layer", prefix.size()) == std::string::npos)  // a parameter of this layer, not of one inside
                candidates.push_back(m);
        if (candidates.size() == 1) alias.emplace(candidates.front(), e.name);
    }
    return alias;
}

} // namespace detail

/// @brief Adds the model's state tensors (see the file comment) to @p a: what to_archive holds, for an
/// archive that carries more (a run state, train::trainer::save_state).
/// @throws invalid_input as to_archive.
template <nn::Layer Model>
void add_model_state(io::archive& a, Model& model)
{
    auto add = [&](std::string const& name, std::vector<std::size_t> shape, auto& target) {
        if constexpr (detail::is_span_v<decltype(target)>)
            a.add(name, std::move(shape), std::vector<float>(target.begin(), target.end()));
        else
            a.add(name, std::move(shape), target.values());
    };
    detail::visit_state(model, "", add);
}

/// @brief The model's state as an archive (what save_checkpoint writes), with @p meta as its metadata.
/// @throws invalid_input when two tensors of the model get the same name (a layer with two parameters of
/// one name).
template <nn::Layer Model>
io::archive to_archive(Model& model, checkpoint_meta meta = {})
{
    io::archive a;
    a.meta() = std::move(meta);
    add_model_state(a, model);
    return a;
}

/// @brief Sets the model's state from @p a, after checking that every metadata key of @p required has the
/// required value, that every tensor of the model is in @p a with the same shape, and that @p a has no
/// tensor the model lacks. Weights are set with nn::weight::assign (exact for float and shadow state).
/// @throws io_error naming a.source() for a metadata or architecture mismatch; the model is then unchanged.
template <nn::Layer Model>
void from_archive(Model& model, io::archive const& a, checkpoint_meta const& required = {})
{
    auto const& file = a.source();
    for (auto const& [key, value] : required) {
        auto const it = a.meta().find(key);
        if (it == a.meta().end())
            throw io::io_error{file, "metadata '" + key + "' is missing, expected '" + value + "'"};
        if (it->second != value)
            throw io::io_error{file, "metadata '" + key + "' is '" + it->second + "', expected '" + value + "'"};
    }
    // Files written before parameters of erased quantizers took their held type's name: see legacy_names.
    std::map<std::string, std::string, std::less<>> const legacy = detail::legacy_names(model, a);
    auto const entry = [&](std::string const& name) {
        io::archive_entry const* e = a.find(name);
        if (e != nullptr) return e;
        auto const it = legacy.find(name);
        return it == legacy.end() ? nullptr : a.find(it->second);
    };
    // Pass 1: check everything, change nothing.
    std::set<std::string, std::less<>> names, used;
    auto check = [&](std::string const& name, std::vector<std::size_t> const& shape, [[maybe_unused]] auto& target) {
        if (!names.insert(name).second)
            throw invalid_input("lowbit::train::from_archive: two tensors of the model are both named '" + name + "'");
        io::archive_entry const* e = entry(name);
        if (e == nullptr)
            throw io::io_error{file, "missing entry '" + name + "': the model has this tensor, the file does not "
                                     "(was the file saved from a different architecture?)"};
        if (e->dtype != io::archive_dtype::float32)
            throw io::io_error{file, "entry '" + name + "' holds " + io::archive_dtype_name(e->dtype) +
                                     " values; a model's state is float32 (is this a packed model file?)"};
        used.insert(e->name);
        if (e->shape != shape)
            throw io::io_error{file, "shape mismatch for entry '" + e->name + "': the file has " +
                                         io::archive::shape_string(e->shape) + ", the model " +
                                         io::archive::shape_string(shape)};
        if constexpr (!detail::is_span_v<decltype(target)>) {
            if (target.template holds<nn::packed_state>() &&
                std::ranges::any_of(e->values, [](float v) { return std::isnan(v); }))
                throw io::io_error{file, "entry '" + name + "' holds NaN values, which a packed weight cannot take"};
        }
    };
    detail::visit_state(model, "", check);
    // Entries under io::run_state_prefix are a run's state (a resumable checkpoint), not model tensors; an old
    // file's empty entries of erased quantizers that learn nothing stand for no tensor.
    auto const is_model_entry = [](io::archive_entry const& e) {
        return !e.name.starts_with(io::run_state_prefix) && !(detail::erased_name(e.name) && e.values.empty());
    };
    auto const model_entries = static_cast<std::size_t>(std::ranges::count_if(a.entries(), is_model_entry));
    if (names.size() != model_entries) {
        for (io::archive_entry const& e : a.entries())
            if (is_model_entry(e) && !used.contains(e.name))
                throw io::io_error{file, "unexpected entry '" + e.name + "': the file has this tensor, the model does "
                                         "not (the file has " + std::to_string(model_entries) +
                                         " entries, the model " + std::to_string(names.size()) +
                                         "; was the file saved from a different architecture?)"};
    }
    // Pass 2: assign; nothing can fail any more.
    auto assign = [&](std::string const& name, std::vector<std::size_t> const&, auto& target) {
        std::vector<float> const& v = entry(name)->values;
        if constexpr (detail::is_span_v<decltype(target)>)
            std::copy(v.begin(), v.end(), target.begin());
        else
            target.assign(v);
    };
    detail::visit_state(model, "", assign);
}

/// @brief Saves the model's state (see the file comment) with @p meta to @p file; an existing file is
/// replaced only once the new one is completely written.
/// @throws io::io_error naming @p file when it cannot be written (an existing file is then untouched).
template <nn::Layer Model>
void save_checkpoint(std::filesystem::path const& file, Model& model, checkpoint_meta meta = {})
{
    io::save_archive(file, to_archive(model, std::move(meta)));
}

/// @brief Loads the state saved by save_checkpoint from @p file into @p model, which must have the same
/// architecture (weight policies and states may differ: the real values are set); every key of @p required
/// must be in the file's metadata with the same value. Returns the file's metadata.
/// @throws io::io_error naming @p file for any problem with the file (missing, not a checkpoint, unsupported
/// version, truncated, corrupt) or with its fit to the model (metadata, missing / unexpected entry, shape
/// mismatch); the model is unchanged then.
template <nn::Layer Model>
checkpoint_meta load_checkpoint(std::filesystem::path const& file, Model& model, checkpoint_meta const& required = {})
{
    io::archive const a = io::load_archive(file);
    from_archive(model, a, required);
    return a.meta();
}

} // namespace lowbit::train
