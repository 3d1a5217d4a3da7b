// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_model: a packed inference model as a sequence of packed steps (deploy/packed_step.hpp)
/// over activations that are floats, codes or sign bits between steps. deploy::compile makes one from any
/// nn::sequential whose layers each lower (deploy/lowering.hpp); deploy::load_packed_model reads one from its
/// file (deploy/packed_model_file.hpp).
///
/// @code
/// lowbit::deploy::packed_model const packed = lowbit::deploy::compile(model);   // a user's own nn::sequential
/// xt::xtensor<float, 2> const logits = packed.forward(images);                 // [batch, outputs]
/// @endcode
///
/// forward() is const and keeps no model state between calls, so one model may serve several threads. Each
/// thread keeps two activation buffers from call to call (the largest activations it has run), so that a call
/// allocates only its output. On several lowbit threads a large batch is split into one part per thread, each
/// run through every step (batch_parts), when that cannot change a bit of the outputs.

#include <lowbit/config.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::deploy {

/// @brief A packed model: its input width, its steps and its output width; see the file comment.
class packed_model {
public:
    packed_model() = default;

    /// @brief The model of @p steps on @p inputs float features, writing @p outputs values per sample.
    /// @throws invalid_input when there are no steps or no inputs, or the steps do not chain (shape_after) from
    /// @p inputs floats to @p outputs floats.
    packed_model(std::size_t inputs, std::size_t outputs, std::vector<packed_step> steps)
        : inputs_(inputs), outputs_(outputs), steps_(std::move(steps))
    {
        if (inputs_ == 0 || outputs_ == 0 || steps_.empty())
            throw invalid_input("lowbit::deploy::packed_model: a model needs inputs, outputs and at least one step");
        activation_shape a{.kind = encoding::floats, .features = inputs_};
        for (packed_step const& s : steps_) a = shape_after(s, a);
        if (a.kind != encoding::floats || a.features != outputs_)
            throw invalid_input("lowbit::deploy::packed_model: the last step writes " + std::to_string(a.features) +
                                (a.kind == encoding::floats ? " floats" : " codes or sign bits") + ", not " +
                                std::to_string(outputs_) + " floats");
        splits_ = rows_apart(steps_);
    }

    std::size_t inputs() const noexcept { return inputs_; }
    std::size_t classes() const noexcept { return outputs_; }
    std::span<packed_step const> steps() const noexcept { return steps_; }

    /// @brief The outputs [batch, classes] of float input [batch, inputs].
    /// @throws invalid_input for a wrong width or a NaN value (an infinite one too, unless the model starts with
    /// the input map, which clamps it to the first or last code).
    xt::xtensor<float, 2> forward(xt::xtensor<float, 2> const& x) const
    {
        std::size_t const parts = batch_parts(x.shape(0));
        if (parts <= 1) {
            auto& [a, b] = buffers();
            return finish(a, b, start(x, a));
        }
        check_width(x);
        return split(x.shape(0), parts, [&](std::size_t r0, std::size_t r1, activations& a) {
            xt::xtensor<float, 2> const rows = xt::view(x, xt::range(r0, r1), xt::all());
            return start(rows, a);
        });
    }

    /// @brief The outputs [batch, classes] of 8-bit input codes [batch, inputs]: the codes q of the model's input
    /// map, x = scale q + offset (8-bit images as they are stored, under the default map of scale 1/255 and
    /// offset 0). The same as forward() of those floats, without mapping them to codes again.
    /// @throws invalid_input for a wrong width, or a model whose first step is not the input map (its first layer
    /// reads floats, as after a float layer or with a float first layer).
    xt::xtensor<float, 2> forward(xt::xtensor<std::uint8_t, 2> const& codes) const
    {
        if (steps_.empty() || !std::holds_alternative<input_codes_step>(steps_.front().op))
            throw invalid_input("lowbit::deploy::packed_model: this model reads floats, not 8-bit input codes: its "
                                "first layer does not start from the input map");
        if (codes.shape(1) != inputs_)
            throw invalid_input("lowbit::deploy::packed_model: shape mismatch: expected " + std::to_string(inputs_) +
                                " input codes per row, got " + std::to_string(codes.shape(1)));
        auto const load = [&](std::size_t r0, std::size_t r1, activations& a) -> std::size_t {
            a.reset(encoding::codes, r1 - r0, inputs_);
            a.codes.assign(codes.begin() + static_cast<std::ptrdiff_t>(r0 * inputs_),
                           codes.begin() + static_cast<std::ptrdiff_t>(r1 * inputs_));
            return 1;
        };
        std::size_t const parts = batch_parts(codes.shape(0));
        if (parts <= 1) {
            auto& [a, b] = buffers();
            return finish(a, b, load(0, codes.shape(0), a));
        }
        return split(codes.shape(0), parts, load);
    }

    /// @brief The outputs [batch, classes] of images [batch, channels, height, width] (a CNN compiled with
    /// compile_options' height and width): the same as forward() of their rows of channels x height x width values.
    xt::xtensor<float, 2> forward(xt::xtensor<float, 4> const& images) const
    {
        std::size_t const per_image = images.shape(1) * images.shape(2) * images.shape(3);
        xt::xtensor<float, 2> rows = xt::xtensor<float, 2>::from_shape({images.shape(0), per_image});
        std::copy(images.begin(), images.end(), rows.begin());
        return forward(rows);
    }

    /// @brief The activations after the first @p count steps (for diagnostics and tests).
    activations run(xt::xtensor<float, 2> const& x, std::size_t count) const
    {
        activations a;
        std::size_t const first = count > 0 ? start(x, a) : start_floats(x, a);
        advance(a, first, count);
        return a;
    }

    /// @brief Continues a run: @p a, the activations after the first @p done steps, becomes those after the
    /// first @p count (deploy::audit walks the steps this way, reading the codes between them).
    void advance(activations& a, std::size_t done, std::size_t count) const
    {
        activations b;
        for (std::size_t i = done; i < count && i < steps_.size(); ++i) {
            steps_[i].forward(a, b);
            std::swap(a, b);
        }
    }

private:
    /// Each thread's two activation buffers, kept from call to call (see the file comment): fresh ones for every
    /// step cost 7 % of the binary MLP's batch-1 time in malloc and free.
    static std::pair<activations, activations>& buffers()
    {
        thread_local std::pair<activations, activations> ab;
        return ab;
    }

    /// Runs the steps from @p first on @p a (@p b: the other buffer) and returns the outputs.
    xt::xtensor<float, 2> finish(activations& a, activations& b, std::size_t first) const
    {
        run_steps(a, b, first);
        // a holds floats of outputs_, as the constructor checked.
        xt::xtensor<float, 2> y = xt::xtensor<float, 2>::from_shape({a.rows, a.features});
        std::copy(a.floats.begin(), a.floats.end(), y.begin());
        return y;
    }

    void run_steps(activations& a, activations& b, std::size_t first) const
    {
        for (std::size_t i = first; i < steps_.size(); ++i) {
            steps_[i].forward(a, b);
            std::swap(a, b);
        }
    }

    /// Whether the batch may be split between threads: whether every step computes a sample from that sample alone
    /// with exact integer sums or elementwise float operations, so that no bit depends on which rows run together.
    /// The float layers' sgemm (OpenBLAS, when linked) may round a row differently with the number of rows, so a
    /// model with one keeps its batch whole and its threads inside the kernels.
    static bool rows_apart(std::span<packed_step const> steps)
    {
        return std::ranges::all_of(steps, [](packed_step const& s) {
            if (std::holds_alternative<float_dense_step>(s.op) || std::holds_alternative<float_conv_step>(s.op))
                return false;
            if (auto const* r = std::get_if<residual_step>(&s.op)) return rows_apart(r->inner);
            return true;
        });
    }

    /// Into how many parts forward() splits a batch of @p n samples: one per thread, of at least
    /// min_rows_per_part samples, when the model allows it. A thread that runs a whole part runs every step on it
    /// (the kernels' own parallel_for inside runs serially), so the steps between the kernels, which would
    /// otherwise run on one thread, are split too: at batch 256 on 2 threads the binarized CNN went from 1.17x its
    /// 1-thread rate to 1.91-1.98x, the 4-bit PACT CNN from 1.15x to 2.03-2.09x (bench_infer, docs/deploy.md).
    std::size_t batch_parts(std::size_t n) const noexcept
    {
        if (!splits_) return 1;
        return std::min<std::size_t>(num_threads(), n / min_rows_per_part);
    }
    static constexpr std::size_t min_rows_per_part = 16;

    /// The outputs of a batch of @p n samples in @p parts contiguous parts, one parallel_for range each: @p load(r0,
    /// r1, a) puts samples r0 .. r1 - 1 into the thread's buffer a and returns the steps it ran.
    template <class Load>
    xt::xtensor<float, 2> split(std::size_t n, std::size_t parts, Load&& load) const
    {
        xt::xtensor<float, 2> y = xt::xtensor<float, 2>::from_shape({n, outputs_});
        parallel_for(parts, 1, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::size_t const r0 = p * n / parts, r1 = (p + 1) * n / parts;
                auto& [a, b] = buffers();
                run_steps(a, b, load(r0, r1, a));
                std::copy(a.floats.begin(), a.floats.end(), y.data() + r0 * outputs_);
            }
        });
        return y;
    }

    /// The model's input @p x into @p a: the input map's codes when the first step is one (it reads the caller's
    /// floats directly, rejects NaN and clamps the infinities), else the floats. Returns the steps it ran.
    std::size_t start(xt::xtensor<float, 2> const& x, activations& a) const
    {
        if (auto const* in = steps_.empty() ? nullptr : std::get_if<input_codes_step>(&steps_.front().op)) {
            check_width(x);
            a.reset(encoding::codes, x.shape(0), inputs_);
            a.codes.resize(x.size());
            in->map.quantize(x.data(), x.size(), a.codes.data());
            return 1;
        }
        return start_floats(x, a);
    }

    std::size_t start_floats(xt::xtensor<float, 2> const& x, activations& a) const
    {
        check_width(x);
        std::size_t bad = 0;
        for (float const v : x) bad += std::isfinite(v) ? 0u : 1u;
        if (bad != 0)
            throw invalid_input("lowbit::deploy::packed_model: " + std::to_string(bad) +
                                " input value(s) are NaN or infinite");
        a.reset(encoding::floats, x.shape(0), inputs_);
        a.floats.assign(x.begin(), x.end());
        return 0;
    }

    void check_width(xt::xtensor<float, 2> const& x) const
    {
        if (x.shape(1) != inputs_)
            throw invalid_input("lowbit::deploy::packed_model: shape mismatch: expected " + std::to_string(inputs_) +
                                " input features, got " + std::to_string(x.shape(1)));
    }

    std::size_t inputs_ = 0;
    std::size_t outputs_ = 0;
    std::vector<packed_step> steps_;
    bool splits_ = false;  ///< rows_apart(steps_)
};

} // namespace lowbit::deploy
