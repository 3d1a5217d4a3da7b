// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_dense: one fully connected layer of a packed inference model, run on the integer
/// kernels. It reads 8-bit input codes (the first layer) or sign bits (every later layer), multiplies them by
/// binary (+-1) or odd-level integer weights, and writes either sign bits -- BatchNorm + sign folded into
/// per-channel thresholds (deploy/sign_thresholds.hpp) -- or float logits.
///
/// | input      | weights            | kernel                                  | integer result v                 |
/// |------------|--------------------|-----------------------------------------|----------------------------------|
/// | codes q    | binary s = +-1     | int8_gemm (u8 x +-1)                    | sum_k q_k s_jk                   |
/// | codes q    | levels 2c + 1      | int8_gemm (u8 x s8 c)                   | sum_k q_k (2 c_jk + 1)           |
/// | signs x    | binary s = +-1     | binary_gemm (xnor-popcount)             | sum_k x_k s_jk = K - 2 popcount  |
/// | signs x    | levels 2c + 1      | binary_gemm over the B bit planes of c  | sum_b w_b (x . t_b)              |
/// | codes q    | integer levels c   | int8_gemm (u8 x s8 c)                   | sum_k q_k c_jk                   |
/// | signs x    | integer levels c   | as levels 2c + 1, then (v - sum x) / 2  | sum_k x_k c_jk                   |
///
/// Odd levels: a B-bit DoReFa weight is one of 2^B levels (2r - (2^B - 1)) / (2^B - 1), r = 0 .. 2^B - 1, i.e.
/// an odd integer d in [-(2^B - 1), 2^B - 1] times the step 1 / (2^B - 1). At 8 bits d needs 9 bits, so it is
/// stored as the int8 code c = (d - 1) / 2 in [-128, 127].
/// - On input codes, the kernel sums q c, and v = 2 * that + sum_k q_k, a per-row term the kernel's
///   per-column output transform cannot add, so the layer takes the int32 results and applies its thresholds
///   itself.
/// - On sign bits, the level is a sum of +-1 terms: with c_b the bits of c in two's complement and
///   t_b = 2 c_b - 1, 2c + 1 = sum_b w_b t_b exactly, w_b = 2^b for b < B - 1 and w_(B-1) = -2^(B-1)
///   (sum_b w_b (t_b + 1) = 2c and sum_b w_b = -1). So v = sum_b w_b (x . t_b): one XNOR-popcount GEMM against
///   B x out rows of bits, B times the binary cost instead of an int8 GEMM on unpacked signs.
/// Binary weights need neither, so their layers use the kernels' fused outputs (sign_output, float_output).
///
/// Output rules, for channel j and the integer result v of one row:
/// - sign bits: `thresholds().sign_bit(j, v)` (bit 1 means +1; rows of ceil(out / 64) words, bits past out 0);
/// - logits, binary weights: `std::fma(float(v), scale_j, bias_j)`, one rounding of alpha_j v + b_j;
/// - logits, odd levels: `float(double(v) * scale_j + double(bias_j))`, scale_j = step() when none is given.
///
/// @code
/// using namespace lowbit;
/// deploy::packed_weights w{.in = 128, .out = 10, .bits = 8, .codes = codes};   // 10 x 128 int8 codes
/// deploy::packed_dense const last(deploy::layer_input::signs, std::move(w), bias);  // logits
/// last.forward(kernels::bit_matrix_view{x_bits, m, 128, 2}, logits, 10);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/detail/scratch.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief What a packed layer reads: 8-bit input codes (a model's first layer) or sign bits.
enum class layer_input : std::uint8_t { codes, signs };

/// @brief The weights of a packed layer: +-1 bits (bits == 1), or levels stored as int8 codes c (bits 2..8):
/// the odd integers 2c + 1 of a mid-rise grid (DoReFa's: step 1 / (2^bits - 1)), or the integers c themselves
/// of a mid-tread grid (`odd` false: ternary, TWN, SQWA's uniform weights, LSQ's signed grid).
struct packed_weights {
    std::size_t in = 0;                ///< input features
    std::size_t out = 0;               ///< output channels
    int bits = 1;                      ///< 1: binary; 2..8: odd levels
    std::vector<std::uint64_t> signs{};  ///< bits == 1: out rows of ceil(in / 64) words, bit 1 = +1, bits past in 0
    std::vector<std::int8_t> codes{};    ///< bits >= 2: out x in codes c, row-major; the level is 2c + 1
    /// A logits layer's real value of level 1 per channel: alpha_j for binary weights (required), s_j / 2 for odd
    /// levels (empty: step(), the 1 / (2^bits - 1) of DoReFa's grid). Empty in other layers (folded).
    std::vector<float> scale{};
    bool odd = true;  ///< bits >= 2: the level of code c is 2c + 1 (mid-rise) or c (mid-tread, no default unit)

    bool binary() const noexcept { return bits == 1; }
    /// Whether the levels are the odd 2c + 1: then v over 8-bit codes q is 2 sum q c + sum q (the int8 kernel
    /// sums q c), where binary weights and integer levels give the kernel's sum itself.
    bool odd_levels() const noexcept { return !binary() && odd; }
    /// The largest level magnitude: 1 for binary weights, 2^bits - 1 for odd levels, 2^(bits - 1) for integers.
    std::int64_t max_level() const noexcept
    {
        if (binary()) return 1;
        return odd ? (std::int64_t{1} << bits) - 1 : std::int64_t{1} << (bits - 1);
    }
    /// The default real value of level 1 for odd levels, 1 / (2^bits - 1) (binary weights and integer levels
    /// carry `scale`).
    double step() const noexcept { return binary() || !odd ? 1.0 : 1.0 / static_cast<double>(max_level()); }
    /// Words of one row of signs.
    std::size_t words() const noexcept { return kernels::words_for_bits(in); }
    /// Throws invalid_input, prefixed by @p who, unless the sizes match in and out, bits is 1..8 and every
    /// code lies within its bit width.
    void check(std::string const& who) const
    {
        if (in == 0 || out == 0) throw invalid_input(who + "in and out must be positive");
        if (bits < 1 || bits > 8)
            throw invalid_input(who + "weights of " + std::to_string(bits) + " bits; packed layers take 1 (binary) "
                                "to 8 (odd levels in int8 codes)");
        if (binary() && signs.size() != out * words())
            throw invalid_input(who + std::to_string(signs.size()) + " sign words for " + std::to_string(out) +
                                " rows of " + std::to_string(words()));
        if (!binary()) {
            if (codes.size() != out * in)
                throw invalid_input(who + std::to_string(codes.size()) + " codes for " + std::to_string(out) + " x " +
                                    std::to_string(in) + " weights");
            int const lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
            for (std::int8_t const c : codes)
                if (c < lo || c > hi)
                    throw invalid_input(who + "code " + std::to_string(c) + " is outside [" + std::to_string(lo) + ", " +
                                        std::to_string(hi) + "] of " + std::to_string(bits) + "-bit levels");
        }
    }

    /// The integer weight of output j, input k: +-1, 2c + 1, or c.
    std::int32_t level(std::size_t j, std::size_t k) const noexcept
    {
        if (binary()) return ((signs[j * words() + k / 64] >> (k % 64)) & 1u) != 0 ? 1 : -1;
        std::int32_t const c = codes[j * in + k];
        return odd ? 2 * c + 1 : c;
    }
};

/// @brief One packed fully connected layer; see the file comment.
class packed_dense {
public:
    packed_dense() = default;

    /// @brief A layer whose output is BatchNorm + sign as bits, by the rules @p t.
    /// @throws invalid_input for inconsistent sizes, bits outside 1..8, codes outside the bit width, or a
    /// layer whose integer sums could leave int32.
    packed_dense(layer_input input, packed_weights w, sign_thresholds t)
        : input_(input), w_(std::move(w)), t_(std::move(t))
    {
        check();
        if (t_.threshold.size() != w_.out || t_.flip.size() != kernels::words_for_bits(w_.out))
            throw invalid_input("lowbit::deploy::packed_dense: " + std::to_string(t_.threshold.size()) +
                                " thresholds and " + std::to_string(t_.flip.size()) + " flip words for " +
                                std::to_string(w_.out) + " channels");
        pack();
    }

    /// @brief A layer whose output is float logits with @p bias (binary weights also need w.scale).
    /// @throws invalid_input as the other constructor, for a bias or scale of the wrong size, or for input codes
    /// (a logits layer reads sign bits).
    packed_dense(layer_input input, packed_weights w, std::vector<float> bias)
        : input_(input), logits_(true), w_(std::move(w)), bias_(std::move(bias))
    {
        check();
        if (input_ != layer_input::signs)
            throw invalid_input("lowbit::deploy::packed_dense: a logits layer reads sign bits, not input codes");
        if (bias_.size() != w_.out || ((w_.binary() || !w_.odd) && w_.scale.size() != w_.out) ||
            (!w_.binary() && !w_.scale.empty() && w_.scale.size() != w_.out))
            throw invalid_input("lowbit::deploy::packed_dense: a logits layer of " + std::to_string(w_.out) +
                                " channels has " + std::to_string(bias_.size()) + " biases and " +
                                std::to_string(w_.scale.size()) + " scales");
        pack();
    }

    layer_input input() const noexcept { return input_; }
    bool logits() const noexcept { return logits_; }
    packed_weights const& weights() const noexcept { return w_; }
    sign_thresholds const& thresholds() const noexcept { return t_; }
    std::span<float const> bias() const noexcept { return bias_; }
    std::size_t in() const noexcept { return w_.in; }
    std::size_t out() const noexcept { return w_.out; }

    /// @brief The logit of channel @p j for the integer result @p v (logits layers).
    float logit(std::size_t j, std::int64_t v) const noexcept
    {
        if (w_.binary()) return std::fma(static_cast<float>(v), w_.scale[j], bias_[j]);
        double const unit = w_.scale.empty() ? w_.step() : static_cast<double>(w_.scale[j]);
        return static_cast<float>(static_cast<double>(v) * unit + static_cast<double>(bias_[j]));
    }

    /// @brief The integer results v (m x out, rows @p ldv apart) of input codes @p x (m x in).
    void integers(kernels::matrix_view<std::uint8_t> x, std::int64_t* v, std::size_t ldv) const
    {
        expect(layer_input::codes, x.cols);
        write_integers(raw_codes(x), x.rows, v, ldv);
    }
    /// @brief The integer results v of input sign bits @p x (m x in).
    void integers(kernels::bit_matrix_view x, std::int64_t* v, std::size_t ldv) const
    {
        expect(layer_input::signs, x.cols);
        write_integers(raw_signs(x), x.rows, v, ldv);
    }

    /// @brief Sign bits (m rows of @p ldy words, ldy >= ceil(out / 64)) of input codes @p x.
    void forward(kernels::matrix_view<std::uint8_t> x, std::uint64_t* y, std::size_t ldy) const
    {
        expect(layer_input::codes, x.cols);
        expect_signs(ldy);
        if (x.rows == 0) return;
        if (w_.binary())
            kernels::int8_gemm(x, i8_, t_.output(y, ldy));
        else
            threshold_rows(raw_codes(x), x.rows, y, ldy);
    }
    /// @brief Sign bits of input sign bits @p x.
    void forward(kernels::bit_matrix_view x, std::uint64_t* y, std::size_t ldy) const
    {
        expect(layer_input::signs, x.cols);
        expect_signs(ldy);
        if (x.rows == 0) return;
        if (w_.binary())
            kernels::binary_gemm(x, bin_, t_.output(y, ldy));
        else
            threshold_rows(raw_signs(x), x.rows, y, ldy);
    }
    /// @brief Logits (m rows of @p ldy floats, ldy >= out) of input sign bits @p x.
    void forward(kernels::bit_matrix_view x, float* y, std::size_t ldy) const
    {
        expect(layer_input::signs, x.cols);
        if (!logits_) throw invalid_input("lowbit::deploy::packed_dense: this layer writes sign bits, not logits");
        if (ldy < w_.out) throw invalid_input("lowbit::deploy::packed_dense: logits rows shorter than the channels");
        if (x.rows == 0) return;
        if (w_.binary()) {
            kernels::binary_gemm(x, bin_, kernels::float_output{.data = y, .ld = ldy, .scale = w_.scale.data(),
                                                                 .bias = bias_.data()});
            return;
        }
        raw const r = raw_signs(x);
        for (std::size_t i = 0; i < x.rows; ++i)
            for (std::size_t j = 0; j < w_.out; ++j) y[i * ldy + j] = logit(j, r.value(i, j, w_.out));
    }

private:
    void check() const
    {
        std::string const who = "lowbit::deploy::packed_dense: ";
        w_.check(who);
        // Every int32 in sight must not overflow: |v| <= max input * max level * in, and for levels the
        // kernel's sum of q c and its double, <= max input * 2^bits * in.
        std::int64_t const input_max = input_ == layer_input::codes ? 255 : 1;
        std::int64_t const largest = w_.binary() ? 1 : std::int64_t{1} << w_.bits;
        if (static_cast<double>(input_max * largest) * static_cast<double>(w_.in) >=
            static_cast<double>(std::numeric_limits<std::int32_t>::max()))
            throw invalid_input(who + std::to_string(w_.in) + " inputs of " + std::to_string(w_.bits) +
                                "-bit weights could overflow the int32 sums");
    }

    void pack()
    {
        if (w_.binary()) {
            kernels::bit_matrix_view const b{w_.signs.data(), w_.out, w_.in, w_.words()};
            if (input_ == layer_input::signs)
                bin_ = kernels::binary_packed_b(b);
            else
                i8_ = kernels::int8_packed_b(b);
        } else if (input_ == layer_input::codes) {
            i8_ = kernels::int8_packed_b(kernels::matrix_view<std::int8_t>{w_.codes.data(), w_.out, w_.in, w_.in});
        } else {
            // Plane b of output j is row b * out + j: bit k is bit b of the code c_jk (two's complement).
            std::size_t const planes = static_cast<std::size_t>(w_.bits), words = w_.words();
            std::vector<std::uint64_t> rows(planes * w_.out * words, 0);
            for (std::size_t b = 0; b < planes; ++b)
                for (std::size_t j = 0; j < w_.out; ++j)
                    for (std::size_t k = 0; k < w_.in; ++k)
                        if (((static_cast<std::uint8_t>(w_.codes[j * w_.in + k]) >> b) & 1u) != 0)
                            rows[(b * w_.out + j) * words + k / 64] |= std::uint64_t{1} << (k % 64);
            bin_ = kernels::binary_packed_b(kernels::bit_matrix_view{rows.data(), planes * w_.out, w_.in, words});
        }
    }

    void expect(layer_input got, std::size_t cols) const
    {
        if (got != input_)
            throw invalid_input(std::string("lowbit::deploy::packed_dense: the layer reads ") +
                                (input_ == layer_input::codes ? "input codes" : "sign bits") + ", not " +
                                (got == layer_input::codes ? "input codes" : "sign bits"));
        if (cols != w_.in)
            throw invalid_input("lowbit::deploy::packed_dense: shape mismatch: expected " + std::to_string(w_.in) +
                                " input features, got " + std::to_string(cols));
    }
    void expect_signs(std::size_t ldy) const
    {
        if (logits_) throw invalid_input("lowbit::deploy::packed_dense: this layer writes logits, not sign bits");
        if (ldy < kernels::words_for_bits(w_.out))
            throw invalid_input("lowbit::deploy::packed_dense: sign rows shorter than ceil(out / 64) words");
    }

    /// Per-thread scratch buffers, reused from call to call: a 256-row batch needs 1 MiB of int32 results,
    /// which as a fresh allocation would be mapped, page-faulted and zeroed on every call.
    template <class T, int Slot>
    static std::vector<T>& scratch(std::size_t n)
    {
        return detail::scratch<packed_dense, T, Slot>(n);
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

    /// Input codes: v = sum_k q_k s_jk (binary), 2 sum_k q_k c_jk + sum_k q_k (levels 2c + 1), or sum_k q_k c_jk
    /// (integer levels).
    raw raw_codes(kernels::matrix_view<std::uint8_t> const& x) const
    {
        std::vector<std::int32_t>& acc = scratch<std::int32_t, 0>(x.rows * w_.out);
        std::vector<std::int32_t>& row = scratch<std::int32_t, 1>(x.rows);
        kernels::int8_gemm(x, i8_, kernels::int32_output{acc.data(), w_.out});
        for (std::size_t i = 0; i < x.rows; ++i) {
            std::int32_t sum = 0;
            if (w_.odd_levels())
                for (std::size_t k = 0; k < x.cols; ++k) sum += x.data[i * x.ld + k];
            row[i] = sum;
        }
        return {acc.data(), row.data(), w_.odd_levels() ? 2 : 1};
    }

    /// Input sign bits: v = K - 2 popcount (binary), or the weighted sum of the bit planes' products (levels).
    raw raw_signs(kernels::bit_matrix_view const& x) const
    {
        std::vector<std::int32_t>& acc = scratch<std::int32_t, 0>(x.rows * w_.out);
        std::vector<std::int32_t>& row = scratch<std::int32_t, 1>(x.rows);
        if (w_.binary()) {
            kernels::binary_gemm(x, bin_, kernels::int32_output{acc.data(), w_.out});
            std::fill(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(x.rows), 0);
            return {acc.data(), row.data(), 1};
        }
        // Odd levels over their bit planes: level = sum_b w_b t_b (see the file comment), so
        // v = sum_b w_b (x . t_b), one binary GEMM against the bits x out plane rows.
        std::size_t const planes = static_cast<std::size_t>(w_.bits), wide = planes * w_.out;
        std::vector<std::int32_t>& p = scratch<std::int32_t, 2>(x.rows * wide);
        kernels::binary_gemm(x, bin_, kernels::int32_output{p.data(), wide});
        for (std::size_t i = 0; i < x.rows; ++i) {
            std::int32_t* v = acc.data() + i * w_.out;
            std::int32_t const* pi = p.data() + i * wide;
            for (std::size_t j = 0; j < w_.out; ++j) v[j] = -(pi[(planes - 1) * w_.out + j] << (planes - 1));
            for (std::size_t b = 0; b + 1 < planes; ++b)
                for (std::size_t j = 0; j < w_.out; ++j) v[j] += pi[b * w_.out + j] << b;
            if (!w_.odd) {
                // Integer levels c = ((2c + 1) - 1) / 2: x . c = (x . (2c + 1) - sum_k x_k) / 2, with
                // sum_k x_k = 2 popcount(x) - in over the row's +-1 inputs (the bits past in are 0).
                std::int32_t ones = 0;
                std::size_t const words = kernels::words_for_bits(x.cols);
                for (std::size_t w = 0; w < words; ++w) {
                    std::uint64_t word = x.data[i * x.ld + w];
                    if (w + 1 == words && x.cols % 64 != 0) word &= (std::uint64_t{1} << (x.cols % 64)) - 1;
                    ones += std::popcount(word);
                }
                std::int32_t const sum = 2 * ones - static_cast<std::int32_t>(x.cols);
                for (std::size_t j = 0; j < w_.out; ++j) v[j] = (v[j] - sum) / 2;
            }
        }
        std::fill(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(x.rows), 0);
        return {acc.data(), row.data(), 1};
    }

    void write_integers(raw const& r, std::size_t m, std::int64_t* v, std::size_t ldv) const
    {
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < w_.out; ++j) v[i * ldv + j] = r.value(i, j, w_.out);
    }

    /// The sign bits of the results, 64 channels at a time: compare into bytes (a loop the compiler
    /// vectorises), then gather 8 bytes of 0/1 into 8 bits with one multiplication -- the products of the
    /// 0x0102040810204080 magic land bit i of byte i at bit 56 + i, with no two terms on the same bit.
    void threshold_rows(raw const& r, std::size_t m, std::uint64_t* y, std::size_t ldy) const
    {
        std::size_t const n = w_.out, words = kernels::words_for_bits(n);
        std::int32_t const* t = t_.threshold.data();
        for (std::size_t i = 0; i < m; ++i) {
            std::int32_t const* a = r.acc + i * n;
            std::int32_t const row = r.row[i], mult = r.mult;
            for (std::size_t w = 0; w < words; ++w) {
                std::size_t const j0 = 64 * w, count = std::min<std::size_t>(64, n - j0);
                alignas(64) std::uint8_t pass[64] = {};
                for (std::size_t c = 0; c < count; ++c) pass[c] = mult * a[j0 + c] + row >= t[j0 + c] ? 1 : 0;
                std::uint64_t bits = 0;
                for (std::size_t g = 0; g < 8; ++g) {
                    std::uint64_t eight = 0;
                    std::memcpy(&eight, pass + 8 * g, 8);
                    bits |= ((eight * 0x0102040810204080ull) >> 56) << (8 * g);
                }
                std::uint64_t const mask = count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
                y[i * ldy + w] = (bits ^ t_.flip[w]) & mask;
            }
        }
    }

    layer_input input_ = layer_input::signs;
    bool logits_ = false;
    packed_weights w_;
    sign_thresholds t_;
    std::vector<float> bias_;
    kernels::binary_packed_b bin_;  // sign bits in: the weights, or the bit planes of their codes
    kernels::int8_packed_b i8_;     // input codes in
};

} // namespace lowbit::deploy
