// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief int8 GEMM: C[i][j] = sum_p a(i, p) * b(j, p) for 8-bit activations a (u8, or s8) and signed 8-bit
/// weights b (n x k, one row per output channel), exact in int32, with a fused output transform; and the
/// binary-weight variant for first and last layers, where b is +-1 from a bit matrix (bit 1 = +1).
///
/// Paths (kernels/cpu_features.hpp, int_kernel::int8): AVX-512 VNNI (vpdpbusd: 64 multiply-adds per
/// instruction), AVX2 (widened to 16 bits and vpmaddwd, exact; see arch/int8_avx2.hpp for why not
/// vpmaddubsw), and scalar. All compute the same integers. The operand layout is in arch/int8_job.hpp.
///
/// Binary weights are expanded to s8 +-1 bytes when packed: vpdpbusd then does 64 multiply-adds per
/// instruction, where a popcount formulation (sum of the x_p with bit 1, doubled, minus the sum of all x_p)
/// would need a mask-select, a byte sum and a horizontal reduction per 64 values. The packed weights take 8
/// bits per weight instead of 1, acceptable for the first and last layers that use this kernel.
///
/// Range: |a| <= 255 and |b| <= 128, so k <= 65793 keeps every sum inside int32; larger k throws.
///
/// @code
/// using namespace lowbit::kernels;
/// int8_packed_b const w8(matrix_view<std::int8_t>{w.data(), n, k, k});      // s8 weights [n, k]
/// int8_gemm(matrix_view<std::uint8_t>{x.data(), m, k, k}, w8,               // u8 activations [m, k]
///           float_output{y.data(), n, scale.data(), bias.data()});         // y = scale * (x w^T) + bias
/// int8_packed_b const wb(bit_matrix_view{bits.data(), n, k, words_for_bits(k)});  // +-1 weights
/// int8_gemm(matrix_view<std::uint8_t>{pixels.data(), m, k, k}, wb, int32_output{c.data(), n});
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/kernels/arch/int8_avx2.hpp>
#include <lowbit/kernels/arch/int8_avx512_vnni.hpp>
#include <lowbit/kernels/arch/int8_job.hpp>
#include <lowbit/kernels/arch/int8_scalar.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::kernels {

/// @brief The weights of an int8 GEMM (n rows of k s8 values, or of k bits meaning +-1) packed once into
/// panels of 16 columns, with their row sums (for signed activations). The layout does not depend on the
/// instruction set.
class int8_packed_b {
public:
    int8_packed_b() = default;

    /// @brief From n x k signed 8-bit weights.
    explicit int8_packed_b(matrix_view<std::int8_t> b) : n_(b.rows), k_(b.cols)
    {
        pack([&](std::size_t g, std::uint32_t* dst) { detail::pack_int8_b_panel(b, kw(), g, dst); });
        for (std::size_t j = 0; j < n_; ++j) {
            std::int32_t sum = 0;
            for (std::size_t p = 0; p < k_; ++p) sum += b.data[j * b.ld + p];
            offsets_[j] = -128 * sum;
        }
    }

    /// @brief From n x k bits: bit 1 is +1, bit 0 is -1 (binary weights, see binary_int8_gemm).
    explicit int8_packed_b(bit_matrix_view b) : n_(b.rows), k_(b.cols)
    {
        pack([&](std::size_t g, std::uint32_t* dst) { detail::pack_sign_b_panel(b, kw(), g, dst); });
        for (std::size_t j = 0; j < n_; ++j) {
            std::int32_t ones = 0;
            for (std::size_t p = 0; p < k_; ++p) ones += bit_at(b, j, p) ? 1 : 0;
            offsets_[j] = -128 * (2 * ones - static_cast<std::int32_t>(k_));
        }
    }

    std::size_t n() const noexcept { return n_; }
    std::size_t k() const noexcept { return k_; }
    std::uint32_t const* panels() const noexcept { return panels_.data(); }
    /// @brief -128 * (sum of weight row j): the correction for signed activations, stored as s8 + 128.
    std::int32_t const* signed_offsets() const noexcept { return offsets_.data(); }

private:
    std::size_t kw() const noexcept { return detail::int8_words(k_); }

    template <class PackPanel>
    void pack(PackPanel&& pack_panel)
    {
        if (k_ > detail::int8_max_k)
            throw invalid_input("lowbit::kernels::int8_packed_b: k = " + std::to_string(k_) + " exceeds " +
                                std::to_string(detail::int8_max_k) + ", beyond which int32 sums could overflow");
        std::size_t const panels = (n_ + detail::int8_nr - 1) / detail::int8_nr, words = kw() * detail::int8_nr;
        panels_.resize(panels * words);
        parallel_for(panels, std::max<std::size_t>(1, 16384 / std::max<std::size_t>(words, 1)),
                     [&](std::size_t begin, std::size_t end) {
                         for (std::size_t g = begin; g < end; ++g) pack_panel(g, panels_.data() + g * words);
                     });
        offsets_.assign(n_, 0);
    }

    std::size_t n_ = 0, k_ = 0;
    detail::panel_buffer<std::uint32_t> panels_;
    std::vector<std::int32_t> offsets_;
};

namespace detail {

/// Packs A (u8, or s8 with the sign bit flipped) and runs an int8 job against packed B.
template <class T>
void int8_gemm_packed(matrix_view<T> const& a, int8_packed_b const& b, int_epilogue out, isa which)
{
    static_assert(std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t>);
    check_isa(which, int_kernel::int8, "lowbit::kernels::int8_gemm");
    if (a.cols != b.k())
        throw invalid_input("lowbit::kernels::int8_gemm: A has " + std::to_string(a.cols) + " columns, B has " +
                            std::to_string(b.k()));
    if (a.rows == 0 || b.n() == 0) return;
    constexpr bool is_signed = std::is_same_v<T, std::int8_t>;
    if constexpr (is_signed) out.column_offset = b.signed_offsets();
    int8_job job;
    job.kw = int8_words(a.cols);
    job.m = a.rows;
    job.n = b.n();
    job.k = a.cols;
    job.out = out;
    std::size_t const panels = (job.m + int8_mr - 1) / int8_mr, words = job.a_panel_words();
    std::size_t const per_unit = panels_per_unit(words);
    std::uint32_t* pa = popcount_buffer(0, panels * words);
    job.a = pa;
    job.b = b.panels();
    plan_int8_tasks(job);
    using tasks_fn = void (*)(int8_job const&, std::size_t, std::size_t);
    tasks_fn f = &scalar::int8_tasks;
#if LOWBIT_X86_DISPATCH
    if (which == isa::avx512)
        f = &avx512::int8_tasks;
    else if (which == isa::avx2)
        f = &avx2::int8_tasks;
#endif
    std::uint8_t const flip = is_signed ? std::uint8_t{0x80} : std::uint8_t{0};
    run_tasks(
        job.tasks(), job.m * job.n * job.k < int8_parallel_min_madds,
        [&](std::size_t begin, std::size_t end) { f(job, begin, end); }, (panels + per_unit - 1) / per_unit,
        [&](std::size_t u) {
            for (std::size_t p = u * per_unit; p < std::min(panels, (u + 1) * per_unit); ++p)
                pack_int8_a_panel(a, job.kw, p, flip, pa + p * words);
        });
}

} // namespace detail

/// @brief C = A B^T for u8 activations `a` (m x k) and packed s8 (or +-1) weights `b`, through the output
/// transform `out`. Threaded; runs the `which` path (default: the fastest the CPU has); throws
/// lowbit::invalid_input for a k mismatch or an unsupported path.
template <IntGemmOutput Output>
void int8_gemm(matrix_view<std::uint8_t> a, int8_packed_b const& b, Output const& out, isa which = best_isa(int_kernel::int8))
{
    detail::int8_gemm_packed(a, b, detail::lower_output(out, b.n()), which);
}

/// @brief int8_gemm for s8 activations (stored as u8 + 128 internally and corrected exactly).
template <IntGemmOutput Output>
void int8_gemm(matrix_view<std::int8_t> a, int8_packed_b const& b, Output const& out, isa which = best_isa(int_kernel::int8))
{
    detail::int8_gemm_packed(a, b, detail::lower_output(out, b.n()), which);
}

/// @brief int8_gemm with s8 weights given unpacked (packed on each call).
template <class T, IntGemmOutput Output>
void int8_gemm(matrix_view<T> a, matrix_view<std::int8_t> b, Output const& out, isa which = best_isa(int_kernel::int8))
{
    detail::int8_gemm_packed(a, int8_packed_b(b), detail::lower_output(out, b.rows), which);
}

/// @brief Binary weights x 8-bit activations: C[i][j] = sum_p a(i, p) * s(j, p) with s = +1 for bit 1 and
/// -1 for bit 0 of the n x k bit matrix `w` (packed on each call; pack once with int8_packed_b(w) and call
/// int8_gemm to reuse it). `a` is u8 or s8.
template <class T, IntGemmOutput Output>
void binary_int8_gemm(matrix_view<T> a, bit_matrix_view w, Output const& out, isa which = best_isa(int_kernel::int8))
{
    detail::int8_gemm_packed(a, int8_packed_b(w), detail::lower_output(out, w.rows), which);
}

} // namespace lowbit::kernels
