// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Binary GEMM (XNOR-popcount): C[i][j] = sum_k a_ik * b_jk over values +-1 stored as bits,
/// computed as K - 2 * popcount(A_i xor B_j) on 64-bit words, with a fused output transform.
///
/// Operands are bit matrices (kernels/bit_matrix.hpp: bit 1 = +1, bit 0 = -1, lowbit's binary grid): A is
/// m x k (activations, one row per output row), B is n x k (weights, one row per output channel), so
/// C = A B^T as in a dense layer with weights [out, in]. Any k works: rows are padded with zero bits in both
/// operands when packed (0 xor 0 = 0 adds nothing) and the formula uses the true k.
///
/// @code
/// using namespace lowbit::kernels;
/// std::vector<std::uint64_t> x(m * words_for_bits(k)), w(n * words_for_bits(k));
/// pack_sign_rows(x_float, m, k, k, x.data(), words_for_bits(k));     // activations -> bits
/// pack_sign_rows(w_float, n, k, k, w.data(), words_for_bits(k));     // weights -> bits
/// binary_packed_b const wp({w.data(), n, k, words_for_bits(k)});    // pack the weights once
/// std::vector<std::int32_t> c(m * n);
/// binary_gemm({x.data(), m, k, words_for_bits(k)}, wp, int32_output{c.data(), n});
/// // c[i * n + j] == sum_p sign(x[i][p]) * sign(w[j][p])
/// @endcode
///
/// The work is split as in kernels/gemm.hpp: both operands are packed into panels (arch/popcount_job.hpp),
/// then (row block, 64-column block) tasks run on lowbit's thread pool with the fastest path of the CPU
/// (AVX-512 VPOPCNTDQ, AVX2 nibble tables, or scalar popcnt; kernels/cpu_features.hpp), chosen at run time
/// and cached, or forced with the trailing `isa` argument. Results are identical for every path and thread
/// count (integer arithmetic), and equal to kernels/reference/binary_gemm.hpp.

#include <lowbit/config.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_gemm.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::kernels {

/// @brief The right operand of binary_gemm (n rows of k bits, e.g. weights [out, in]) packed once into
/// panels of 16 rows, so repeated GEMMs with the same weights skip that step. The layout does not depend
/// on the instruction set.
class binary_packed_b {
public:
    binary_packed_b() = default;

    explicit binary_packed_b(bit_matrix_view b) : n_(b.rows), k_(b.cols), kw_(detail::popcount_words(b.cols))
    {
        std::size_t const panels = detail::popcount_b_panels(n_, 1), words = kw_ * detail::popcount_nr;
        panels_.resize(panels * words);
        parallel_for(panels, std::max<std::size_t>(1, 16384 / std::max<std::size_t>(words, 1)),
                     [&](std::size_t begin, std::size_t end) {
                         for (std::size_t g = begin; g < end; ++g)
                             detail::pack_binary_b_panel(b, kw_, g, panels_.data() + g * words);
                     });
    }

    std::size_t n() const noexcept { return n_; }  ///< output columns
    std::size_t k() const noexcept { return k_; }  ///< bits per row
    std::uint32_t const* panels() const noexcept { return panels_.data(); }

private:
    std::size_t n_ = 0, k_ = 0, kw_ = 0;
    detail::panel_buffer<std::uint32_t> panels_;
};

namespace detail {

/// Runs a binary GEMM of m rows on A panels (popcount_mr(1) rows each) against packed B panels; `out` is
/// the lowered output transform. The A panels are at `a_panels`, written by pack(u) for the packing units
/// u < units (none: already packed) in the same pool job as the tasks.
template <class Pack = no_packing>
void binary_gemm_packed(std::uint32_t const* a_panels, std::size_t m, std::uint32_t const* b_panels, std::size_t n,
                        std::size_t k, int_epilogue const& out, isa which, std::size_t units = 0, Pack&& pack = Pack{})
{
    popcount_job job;
    job.kw = popcount_words(k);
    job.m = m;
    job.n = n;
    job.k = k;
    job.mr = popcount_mr(1);
    job.out = out;
    job.a = a_panels;
    job.b = b_panels;
    plan_popcount_tasks(job);
    run_popcount_job(job, which, units, pack);
}

/// Packs A and runs a binary GEMM against packed B panels; `out` is the lowered output transform.
inline void binary_gemm_panels(bit_matrix_view const& a, std::uint32_t const* b_panels, std::size_t n, std::size_t k,
                               int_epilogue const& out, isa which)
{
    check_isa(which, int_kernel::popcount, "lowbit::kernels::binary_gemm");
    if (a.cols != k)
        throw invalid_input("lowbit::kernels::binary_gemm: A has " + std::to_string(a.cols) + " columns, B has " +
                            std::to_string(k));
    if (a.rows == 0 || n == 0) return;
    std::size_t const kw = popcount_words(k), mr = popcount_mr(1);
    std::size_t const panels = popcount_a_panels(a.rows, 1), words = kw * mr, per_unit = panels_per_unit(words);
    std::uint32_t* pa = popcount_buffer(0, panels * words);
    binary_gemm_packed(pa, a.rows, b_panels, n, k, out, which, (panels + per_unit - 1) / per_unit, [&](std::size_t u) {
        for (std::size_t p = u * per_unit; p < std::min(panels, (u + 1) * per_unit); ++p)
            pack_binary_a_panel(a, kw, mr, p, pa + p * words);
    });
}

} // namespace detail

/// @brief C = A B^T over +-1 values: element (i, j) is k - 2 * popcount(A_i xor B_j) for the m x k bit
/// matrix `a` and the packed n x k matrix `b`, written through the output transform `out`
/// (int32_output, float_output, sign_output). Threaded; runs the `which` path (default: the fastest the
/// CPU has); throws lowbit::invalid_input if the CPU lacks it or k differs.
template <IntGemmOutput Output>
void binary_gemm(bit_matrix_view a, binary_packed_b const& b, Output const& out,
                 isa which = best_isa(int_kernel::popcount))
{
    detail::binary_gemm_panels(a, b.panels(), b.n(), b.k(), detail::lower_output(out, b.n()), which);
}

/// @brief binary_gemm with B given as an n x k bit matrix (packed into a per-thread buffer on each call).
template <IntGemmOutput Output>
void binary_gemm(bit_matrix_view a, bit_matrix_view b, Output const& out, isa which = best_isa(int_kernel::popcount))
{
    std::size_t const kw = detail::popcount_words(b.cols), panels = detail::popcount_b_panels(b.rows, 1);
    std::size_t const words = kw * detail::popcount_nr;
    std::uint32_t* pb = detail::popcount_buffer(1, panels * words);
    parallel_for(panels, std::max<std::size_t>(1, 16384 / std::max<std::size_t>(words, 1)),
                 [&](std::size_t begin, std::size_t end) {
                     for (std::size_t g = begin; g < end; ++g) detail::pack_binary_b_panel(b, kw, g, pb + g * words);
                 });
    detail::binary_gemm_panels(a, pb, b.rows, b.cols, detail::lower_output(out, b.rows), which);
}

} // namespace lowbit::kernels
