// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::audit: a compiled model against the fake-quant model it was compiled from, on a test set, with
/// every code (sign or k-bit) of every hidden layer and every logit checked to within the fake-quant model's own
/// float rounding (deploy::rounding_audit) -- a check whose outcome does not depend on the summation order of the
/// fake-quant model's GEMMs (the OpenBLAS kernel, the thread count, -march).
///
/// It lowers the model again leaf by leaf (nested nn::sequential opened) to learn which packed steps write each
/// quantizer's codes, runs the packed model step by step beside the fake-quant model's layers, and audits every
/// quantizer whose codes an integer layer writes, whatever the model's shape. The images are fed 1000 at a time.
///
/// @code
/// lowbit::deploy::packed_model const packed = lowbit::deploy::compile(model, options);
/// lowbit::deploy::rounding_audit const a = lowbit::deploy::audit(model, packed, x, labels, options);
/// assert(a.unexplained == 0 && a.argmax_disagreements_where_codes_agree == 0 && a.logits_outside == 0);
/// @endcode

#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/lower.hpp>
#include <lowbit/deploy/lowering.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/rounding_audit.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/residual.hpp>
#include <lowbit/nn/sequential.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace lowbit::deploy {

namespace detail {

inline constexpr std::size_t audit_chunk = 1000;

/// A fake-quant activation of the general audit: flat rows [n, features] or images [n, C, H, W].
using audit_tensor = std::variant<xt::xtensor<float, 2>, xt::xtensor<float, 4>>;

/// @p l's evaluation forward pass on @p t (the activations before it: images where the lowering read images).
template <class L>
audit_tensor audit_forward(L& l, audit_tensor const& t)
{
    nn::forward_context const eval{.training = false};
    return std::visit(
        [&](auto const& x) -> audit_tensor {
            if constexpr (requires { l.forward(x, eval); })
                return l.forward(x, eval);
            else
                throw invalid_input("lowbit::deploy::audit: a layer cannot read the activations before it");
        },
        t);
}

/// What the general audit learns of each leaf layer of a model (nested nn::sequential opened, a residual block
/// one leaf) from lowering it: whether it is a weight layer, and, for a quantizer whose codes an integer step
/// writes, how many packed steps lead to them and the float each code stands for.
struct audit_leaf {
    bool weight = false;
    std::size_t steps = 0;        ///< 0: no audited codes after this leaf
    std::vector<float> values{};  ///< the codes' floats, increasing
};

template <class L>
inline constexpr bool is_sequential_v = false;
template <class... Ls>
inline constexpr bool is_sequential_v<nn::sequential<Ls...>> = true;

/// Calls @p f on each leaf of @p l in order (a nested nn::sequential opened; anything else, a residual block
/// included, is a leaf).
template <class L, class F>
void for_each_audit_leaf(L& l, F&& f)
{
    if constexpr (is_sequential_v<L>)
        l.for_each_layer([&](auto& inner) { for_each_audit_leaf(inner, f); });
    else
        f(l);
}

template <class L>
inline constexpr bool is_weight_layer_v = requires(L& l) {
    l.weight();
    l.options().out;
};

/// The lowering of @p model leaf by leaf: what the audit needs of each leaf, the finished model's step count,
/// and whether the model reads its input as images (its steps start with the NHWC step).
struct audit_plan_t {
    std::vector<audit_leaf> leaves;
    std::size_t steps = 0;
    bool images = false;
};

template <class Model>
audit_plan_t audit_plan(Model& model, compile_options const& options)
{
    lowering c(options);
    std::vector<audit_leaf> plan;
    for_each_audit_leaf(model, [&]<class L>(L& l) {
        std::size_t const before = c.steps().size();
        lower(l, c);
        audit_leaf leaf{.weight = is_weight_layer_v<L>};
        if (c.steps().size() > before) {
            // A quantizer that closes an integer layer with thresholds: the step it emits writes its codes.
            auto const writes = std::visit(
                []<class S>(S const& s) {
                    if constexpr (requires { s.writes(); }) return s.writes();
                    else return encoding::floats;
                },
                c.steps().back().op);
            if (writes != encoding::floats && c.current() == writes) {
                leaf.steps = c.steps().size();
                leaf.values.assign(c.code_values().begin(), c.code_values().end());
            }
        }
        plan.push_back(std::move(leaf));
    });
    packed_model const finished = c.finish();
    bool const images = std::holds_alternative<nhwc_step>(finished.steps().front().op);
    return {.leaves = std::move(plan), .steps = finished.steps().size(), .images = images};
}

} // namespace detail

/// @brief @p packed, deploy::compile(@p model, @p options), against @p model on float input @p x [n, inputs] (rows of channels x height x width
/// values for a CNN) with @p labels. Every quantizer whose codes or sign bits an integer step writes is audited
/// code by code (rounding_audit::layer: the pre-activation of the weight layer before it, that layer's
/// rounding_bound for the largest input of the chunk, and the model's own layers from there to the quantizer),
/// then the logits, against the bound of the last layer. @p x must lie on the input map's
/// grid (check that the map reproduces it), so that the two models read the same inputs. The layers inside a
/// residual block are not audited code by code (the block writes floats); an image whose block differs shows in
/// the codes or logits after it.
/// @throws invalid_input when @p packed is not that model's lowering (its steps differ in number), or the model
/// does not end with a dense layer (the logits' bound is that layer's).
template <class Model>
rounding_audit audit(Model& model, packed_model const& packed, xt::xtensor<float, 2> const& x,
                     xt::xtensor<std::uint8_t, 1> const& labels, compile_options const& options = {})
{
    detail::audit_plan_t const lowered = detail::audit_plan(model, options);
    std::vector<detail::audit_leaf> const& plan = lowered.leaves;
    if (!plan.back().weight)
        throw invalid_input("lowbit::deploy::audit: the model's last layer must be a dense layer, whose rounding bound "
                            "the logits are checked against");
    if (lowered.steps != packed.steps().size())
        throw invalid_input("lowbit::deploy::audit: the packed model has " + std::to_string(packed.steps().size()) +
                            " steps, the lowering of this model " + std::to_string(lowered.steps) +
                            ": it is not this model's");
    std::size_t const n = x.shape(0);
    rounding_audit r(n);
    for (std::size_t i0 = 0; i0 < n; i0 += detail::audit_chunk) {
        std::size_t const m = std::min(detail::audit_chunk, n - i0);
        xt::xtensor<float, 2> const xi = xt::view(x, xt::range(i0, i0 + m), xt::all());
        detail::audit_tensor fake = xi;
        if (lowered.images) {
            std::size_t const pixels = options.height * options.width;
            fake = nn::as_images(xi, xi.shape(1) / pixels, options.height, options.width);
        }
        detail::audit_tensor pre = fake;
        activations a = packed.run(xi, 0);  // the packed model's activations after `done` steps
        std::size_t done = 0;
        std::vector<double> bound;
        std::vector<std::function<detail::audit_tensor(detail::audit_tensor const&)>> tail;  // since the weight layer
        std::size_t leaf = 0;
        detail::for_each_audit_leaf(model, [&]<class L>(L& l) {
            detail::audit_leaf const& at = plan[leaf++];
            if constexpr (detail::is_weight_layer_v<L>) {
                double const max_abs =
                    std::visit([](auto const& t) { return static_cast<double>(xt::amax(xt::abs(t))()); }, fake);
                bound = rounding_bound(l, max_abs);
                pre = fake = detail::audit_forward(l, fake);
                tail.clear();
                return;
            }
            tail.push_back([&l](detail::audit_tensor const& t) { return detail::audit_forward(l, t); });
            if (at.steps == 0) {
                fake = detail::audit_forward(l, fake);
                return;
            }
            // Codes: r.layer runs the layers since the weight layer (tail) on its output itself, and returns that.
            packed.advance(a, done, at.steps);
            done = at.steps;
            std::size_t const plane = a.height * a.width, words = a.words();
            auto const packed_code = [&a, plane, words](std::size_t i, std::size_t c, std::size_t p) -> long {
                std::size_t const row = i * plane + p;
                if (a.kind == encoding::signs) return static_cast<long>((a.signs[row * words + c / 64] >> (c % 64)) & 1u);
                return static_cast<long>(a.codes[row * a.features + c]);
            };
            auto const code_of = [&v = at.values](float y) -> long {  // the nearest code's index
                auto const it = std::lower_bound(v.begin(), v.end(), y);
                if (it == v.begin()) return 0;
                if (it == v.end()) return static_cast<long>(v.size() - 1);
                return static_cast<long>(it - v.begin()) - (y - *(it - 1) < *it - y ? 1 : 0);
            };
            std::visit(
                [&]<class Y>(Y const& y) {
                    auto const through_tail = [&](Y const& t) {
                        detail::audit_tensor u = t;
                        for (auto const& f : tail) u = f(u);
                        return std::get<Y>(u);
                    };
                    fake = r.layer(i0, y, bound, through_tail, code_of, packed_code);
                },
                pre);
        });
        packed.advance(a, done, packed.steps().size());  // the rest of the steps: the logits, as forward() gives them
        xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({a.rows, a.features});
        std::copy(a.floats.begin(), a.floats.end(), logits.begin());
        r.logits(i0, std::get<xt::xtensor<float, 2>>(fake), logits, bound,
                 std::span<std::uint8_t const>(labels.data(), labels.size()));
    }
    return r;
}

} // namespace lowbit::deploy
