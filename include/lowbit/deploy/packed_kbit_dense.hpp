// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_kbit_dense: one fully connected layer on k-bit codes, the kernel of a packed model's
/// integer dense step on codes (deploy/packed_step.hpp). It reads unsigned 8-bit codes -- the input map's codes in the first layer,
/// PACT's k-bit codes 0..2^k - 1 after it -- multiplies them by binary (+-1) or odd-level integer weights with
/// kernels::int8_gemm (u8 x s8, exact int32), and writes either the next k-bit codes -- BatchNorm + ReLU +
/// PACT folded into per-channel level thresholds (deploy/level_thresholds.hpp) -- or float logits.
///
/// | weights        | kernel                   | integer result v                        |
/// |----------------|--------------------------|-----------------------------------------|
/// | binary s = +-1 | int8_gemm (u8 x +-1)     | sum_k q_k s_jk                          |
/// | levels 2c + 1  | int8_gemm (u8 x s8 c)    | 2 sum_k q_k c_jk + sum_k q_k            |
///
/// Output rules, for channel j and the integer result v of one row:
/// - codes: `thresholds().code(j, v)` (one byte per channel, rows of out bytes or more);
/// - logits: `float(double(v) * scale_j + double(bias_j))`, with scale_j the real value of one unit of v --
///   (alpha / n) of the input codes times alpha_j (binary) or 1 / (2^bits - 1) (levels) -- so one rounding.
///
/// @code
/// deploy::packed_kbit_dense const hidden(std::move(w), std::move(thresholds));       // codes -> codes
/// hidden.forward(kernels::matrix_view<std::uint8_t>{q, m, in, in}, next, out);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/detail/code_conv.hpp>
#include <lowbit/deploy/detail/scratch.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief One packed layer on 8-bit codes that writes k-bit codes or logits; see the file comment.
class packed_kbit_dense {
public:
    packed_kbit_dense() = default;

    /// @brief A layer whose output is the codes of @p t.
    /// @throws invalid_input for inconsistent sizes, bits outside 1..8, codes outside the bit width, a layer
    /// whose integer sums could leave int32, or thresholds of another width.
    packed_kbit_dense(packed_weights w, level_thresholds t) : w_(std::move(w)), t_(std::move(t))
    {
        check();
        if (!t_.fits(w_.out))
            throw invalid_input("lowbit::deploy::packed_kbit_dense: " + std::to_string(t_.threshold.size()) +
                                " thresholds of " + std::to_string(t_.levels) + " levels for " +
                                std::to_string(w_.out) + " channels");
        pack();
        table_ = detail::level_table(t_);
    }

    /// @brief A layer whose output is float logits v scale_j + bias_j.
    /// @throws invalid_input as the other constructor, or for a scale or bias of the wrong size.
    packed_kbit_dense(packed_weights w, std::vector<double> scale, std::vector<float> bias)
        : logits_(true), w_(std::move(w)), scale_(std::move(scale)), bias_(std::move(bias))
    {
        check();
        if (scale_.size() != w_.out || bias_.size() != w_.out)
            throw invalid_input("lowbit::deploy::packed_kbit_dense: a logits layer of " + std::to_string(w_.out) +
                                " channels has " + std::to_string(scale_.size()) + " scales and " +
                                std::to_string(bias_.size()) + " biases");
        pack();
    }

    bool logits() const noexcept { return logits_; }
    packed_weights const& weights() const noexcept { return w_; }
    level_thresholds const& thresholds() const noexcept { return t_; }
    std::span<double const> scale() const noexcept { return scale_; }
    std::span<float const> bias() const noexcept { return bias_; }
    std::size_t in() const noexcept { return w_.in; }
    std::size_t out() const noexcept { return w_.out; }

    /// @brief The logit of channel @p j for the integer result @p v (logits layers).
    float logit(std::size_t j, std::int64_t v) const noexcept
    {
        return static_cast<float>(static_cast<double>(v) * scale_[j] + static_cast<double>(bias_[j]));
    }

    /// @brief The integer results v (m x out, rows @p ldv apart) of codes @p x (m x in).
    void integers(kernels::matrix_view<std::uint8_t> x, std::int64_t* v, std::size_t ldv) const
    {
        expect(x.cols);
        if (x.rows == 0) return;
        raw const r = run(x);
        for (std::size_t i = 0; i < x.rows; ++i)
            for (std::size_t j = 0; j < w_.out; ++j) v[i * ldv + j] = r.value(i, j, w_.out);
    }

    /// @brief The output codes (m rows of @p ldy bytes, ldy >= out) of codes @p x (m x in).
    void forward(kernels::matrix_view<std::uint8_t> x, std::uint8_t* y, std::size_t ldy) const
    {
        expect(x.cols);
        if (logits_) throw invalid_input("lowbit::deploy::packed_kbit_dense: this layer writes logits, not codes");
        if (ldy < w_.out) throw invalid_input("lowbit::deploy::packed_kbit_dense: code rows shorter than the channels");
        if (x.rows == 0) return;
        raw const r = run(x);
        std::size_t const n = w_.out;
        std::vector<std::int32_t>& v = scratch<2>(n);
        for (std::size_t i = 0; i < x.rows; ++i) {
            for (std::size_t j = 0; j < n; ++j) v[j] = r.value(i, j, n);
            table_.codes(v.data(), y + i * ldy);
        }
    }

    /// @brief Logits (m rows of @p ldy floats, ldy >= out) of codes @p x (m x in).
    void forward(kernels::matrix_view<std::uint8_t> x, float* y, std::size_t ldy) const
    {
        expect(x.cols);
        if (!logits_) throw invalid_input("lowbit::deploy::packed_kbit_dense: this layer writes codes, not logits");
        if (ldy < w_.out) throw invalid_input("lowbit::deploy::packed_kbit_dense: logits rows shorter than the channels");
        if (x.rows == 0) return;
        raw const r = run(x);
        for (std::size_t i = 0; i < x.rows; ++i)
            for (std::size_t j = 0; j < w_.out; ++j) y[i * ldy + j] = logit(j, r.value(i, j, w_.out));
    }

private:
    void check() const { detail::check_code_weights(w_, "lowbit::deploy::packed_kbit_dense: "); }

    void pack()
    {
        i8_ = detail::int8_weights(w_);
    }

    void expect(std::size_t cols) const
    {
        if (cols != w_.in)
            throw invalid_input("lowbit::deploy::packed_kbit_dense: shape mismatch: expected " + std::to_string(w_.in) +
                                " input features, got " + std::to_string(cols));
    }

    /// The kernel's results and the per-row term: v(i, j) = mult * acc[i * n + j] + row[i].
    struct raw {
        std::int32_t const* acc = nullptr;
        std::int32_t const* row = nullptr;
        std::int32_t mult = 1;
        std::int32_t value(std::size_t i, std::size_t j, std::size_t n) const noexcept
        {
            return mult * acc[i * n + j] + row[i];
        }
    };

    template <int Slot>
    static std::vector<std::int32_t>& scratch(std::size_t n)
    {
        return detail::scratch<packed_kbit_dense, std::int32_t, Slot>(n);
    }

    /// v = sum_k q_k s_jk (binary), 2 sum_k q_k c_jk + sum_k q_k (levels 2c + 1: the per-row term is one the
    /// kernel's per-column output transforms cannot add), or sum_k q_k c_jk (integer levels).
    raw run(kernels::matrix_view<std::uint8_t> const& x) const
    {
        std::vector<std::int32_t>& acc = scratch<0>(x.rows * w_.out);
        std::vector<std::int32_t>& row = scratch<1>(x.rows);
        kernels::int8_gemm(x, i8_, kernels::int32_output{acc.data(), w_.out});
        for (std::size_t i = 0; i < x.rows; ++i) {
            std::int32_t sum = 0;
            if (w_.odd_levels())
                for (std::size_t k = 0; k < x.cols; ++k) sum += x.data[i * x.ld + k];
            row[i] = sum;
        }
        return {acc.data(), row.data(), w_.odd_levels() ? 2 : 1};
    }

    bool logits_ = false;
    packed_weights w_;
    level_thresholds t_;
    detail::level_table table_;  // t_, laid out for the output loop
    std::vector<double> scale_;
    std::vector<float> bias_;
    kernels::int8_packed_b i8_;
};

} // namespace lowbit::deploy
