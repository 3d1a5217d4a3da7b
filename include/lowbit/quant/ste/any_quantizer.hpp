// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::any_quantizer: a type-erased fake quantizer, for precision chosen at run time (a command line,
/// a config file).
///
/// lowbit's layers take their quantizer as a type, so every bit width x quantizer x layer position a
/// program may pick is one more instantiation of the whole model and training loop. A program that
/// reads its choice at run time wraps the concrete quantizer in `any_quantizer` instead: one model type
/// covers every choice, at the price of one indirect call per tensor and per pass (against a whole
/// tensor's work). The checks that the concrete types do at compile time (bit widths, CG-PACT on PACT
/// only) still happen where the concrete quantizer is named, before it is erased.
///
/// An empty any_quantizer is the identity: forward copies, backward passes the gradient through.
/// It always models LearnedFakeQuantizer; parameters() is empty when the held quantizer learns nothing.
///
/// @code
/// lowbit::ste::any_quantizer q = lowbit::ste::pact<4>({.alpha = 8.0f});
/// std::vector<float> x{-1.0f, 2.0f, 9.0f}, y(3);
/// q.forward(x, y);   // {0, 2.13.., 8}
/// @endcode

#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

namespace lowbit::ste {

class any_quantizer {
public:
    /// The name a learned parameter would have if none were held; a held quantizer's own name
    /// (held_parameter_name()) is what layers and checkpoints use.
    static constexpr std::string_view parameter_name = "any_quantizer.parameter";

    any_quantizer() = default;
    template <FakeQuantizer Q>
        requires(!std::same_as<std::remove_cvref_t<Q>, any_quantizer>)
    any_quantizer(Q q) : self_(std::make_unique<model<Q>>(std::move(q)))  // NOLINT: implicit by design
    {
    }
    any_quantizer(any_quantizer const& o) : self_(o.self_ ? o.self_->clone() : nullptr) {}
    any_quantizer(any_quantizer&&) noexcept = default;
    any_quantizer& operator=(any_quantizer const& o)
    {
        if (this != &o) self_ = o.self_ ? o.self_->clone() : nullptr;
        return *this;
    }
    any_quantizer& operator=(any_quantizer&&) noexcept = default;
    ~any_quantizer() = default;

    /// Whether a quantizer is held (an empty one is the identity).
    bool has_value() const noexcept { return self_ != nullptr; }
    /// The held quantizer, or nullptr if it is not a Q.
    template <class Q>
    Q* target() noexcept
    {
        auto* m = dynamic_cast<model<Q>*>(self_.get());
        return m ? &m->q : nullptr;
    }

    void bind(std::span<std::size_t const> shape)
    {
        if (self_) self_->bind(shape);
    }
    void forward(std::span<float const> x, std::span<float> y)
    {
        if (self_)
            self_->forward(x, y);
        else
            std::copy(x.begin(), x.end(), y.begin());
    }
    void backward(std::span<float const> dy, std::span<float> dx)
    {
        if (self_)
            self_->backward(dy, dx);
        else
            std::copy(dy.begin(), dy.end(), dx.begin());
    }
    std::span<float> parameters() noexcept { return self_ ? self_->parameters() : std::span<float>{}; }
    std::span<float> gradients() noexcept { return self_ ? self_->gradients() : std::span<float>{}; }
    /// The held quantizer's own parameter_name (`pact.alpha`, `lsq.step`), empty when it learns nothing: what
    /// ste::parameter_name_of() gives, so that a checkpoint names the parameter as the concrete type would.
    std::string_view held_parameter_name() const noexcept { return self_ ? self_->parameter_name() : std::string_view{}; }
    /// The held quantizer's policy_traits as values (float for an empty one: the identity); empty when the held
    /// type states no traits. What lowbit::describe() and lowbit::summary read.
    std::optional<policy_info> info() const { return self_ ? self_->info() : std::optional<policy_info>{policy_info{}}; }

private:
    struct concept_base {
        virtual ~concept_base() = default;
        virtual std::unique_ptr<concept_base> clone() const = 0;
        virtual void bind(std::span<std::size_t const>) = 0;
        virtual void forward(std::span<float const>, std::span<float>) = 0;
        virtual void backward(std::span<float const>, std::span<float>) = 0;
        virtual std::span<float> parameters() noexcept = 0;
        virtual std::span<float> gradients() noexcept = 0;
        virtual std::optional<policy_info> info() const = 0;
        virtual std::string_view parameter_name() const noexcept = 0;
    };
    template <class Q>
    struct model final : concept_base {
        explicit model(Q v) : q(std::move(v)) {}
        std::unique_ptr<concept_base> clone() const override { return std::make_unique<model>(q); }
        void bind(std::span<std::size_t const> s) override { q.bind(s); }
        void forward(std::span<float const> x, std::span<float> y) override { q.forward(x, y); }
        void backward(std::span<float const> dy, std::span<float> dx) override { q.backward(dy, dx); }
        std::span<float> parameters() noexcept override
        {
            if constexpr (LearnedFakeQuantizer<Q>)
                return q.parameters();
            else
                return {};
        }
        std::span<float> gradients() noexcept override
        {
            if constexpr (LearnedFakeQuantizer<Q>)
                return q.gradients();
            else
                return {};
        }
        std::optional<policy_info> info() const override { return describe(q); }
        std::string_view parameter_name() const noexcept override
        {
            if constexpr (LearnedFakeQuantizer<Q>)
                return Q::parameter_name;
            else
                return {};
        }
        Q q;
    };
    std::unique_ptr<concept_base> self_;
};

static_assert(LearnedFakeQuantizer<any_quantizer>);

} // namespace lowbit::ste
