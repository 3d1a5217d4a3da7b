// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Bit-serial GEMM of k-bit codes: C[i][j] = sum_p u_ip * v_jp for unsigned codes u (activations, 2 or
/// 4 bits) and v (weights, 2 or 4 bits), computed over bit planes as
/// sum_{s, t} 2^(s+t) * popcount(plane_s(U_i) and plane_t(V_j)).
///
/// Each code row becomes `bits` rows of K bits (plane s holds bit s of every code), so a bits_a x bits_b GEMM
/// is bits_a * bits_b binary-like products (and instead of xor) on the same panels and microkernels as
/// binary_gemm (arch/popcount_job.hpp); the tile epilogue adds the plane pairs with their weights before
/// the output transform. Codes are given one per byte (matrix_view<std::uint8_t>, as
/// reference::unpack_codes produces them from a packed qtensor); bits above the code width are ignored.
///
/// Signed and offset grids map onto unsigned codes by an affine change of variables. For integer values
/// x = alpha_a * u + beta_a and w = alpha_w * v + beta_w (code_affine), for example symmetric_even weights
/// of b bits, whose levels are (2v - (2^b - 1)) * step / 2, i.e. alpha = 2, beta = -(2^b - 1) in half steps,
/// sum_p x_ip w_jp = alpha_a alpha_w C[i][j] + alpha_a beta_w U_i + beta_a alpha_w V_j + K beta_a beta_w,
/// with the row sums U_i = sum_p u_ip and V_j = sum_p v_jp (code_row_sums). bitserial_affine_correct
/// applies this to an int32 result; scale the result by the steps afterwards.
///
/// @code
/// using namespace lowbit::kernels;
/// // a: m x k activation codes (0..3), w: n x k weight codes (0..3), one byte each
/// bitserial_packed_b const wp(matrix_view<std::uint8_t>{w.data(), n, k, k}, 2);
/// std::vector<std::int32_t> c(m * n);
/// bitserial_gemm(matrix_view<std::uint8_t>{a.data(), m, k, k}, 2, wp, int32_output{c.data(), n});
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_gemm.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::kernels {

namespace detail {

inline void check_bitserial_bits(int bits, char const* what)
{
    if (bits != 2 && bits != 4)
        throw invalid_input(std::string("lowbit::kernels::bitserial_gemm: ") + what + " codes have " +
                            std::to_string(bits) + " bits; supported: 2 or 4 (binary_gemm handles 1 bit)");
}

} // namespace detail

/// @brief The weights of a bit-serial GEMM (n rows of k codes of `bits` bits) packed once into bit-plane
/// panels. The layout does not depend on the instruction set.
class bitserial_packed_b {
public:
    bitserial_packed_b() = default;

    bitserial_packed_b(matrix_view<std::uint8_t> b, int bits)
        : n_(b.rows), k_(b.cols), kw_(detail::popcount_words(b.cols)), bits_(bits)
    {
        detail::check_bitserial_bits(bits, "weight");
        std::size_t const groups = (n_ + detail::popcount_nr - 1) / detail::popcount_nr;
        std::size_t const words = kw_ * detail::popcount_nr * static_cast<std::size_t>(bits);  // per group
        panels_.resize(groups * words);
        parallel_for(groups, std::max<std::size_t>(1, 16384 / std::max<std::size_t>(words, 1)),
                     [&](std::size_t begin, std::size_t end) {
                         for (std::size_t g = begin; g < end; ++g)
                             detail::pack_codes_b_group(b, bits, kw_, g, panels_.data() + g * words);
                     });
    }

    std::size_t n() const noexcept { return n_; }
    std::size_t k() const noexcept { return k_; }
    int bits() const noexcept { return bits_; }
    std::uint32_t const* panels() const noexcept { return panels_.data(); }

private:
    std::size_t n_ = 0, k_ = 0, kw_ = 0;
    int bits_ = 2;
    detail::panel_buffer<std::uint32_t> panels_;
};

/// @brief C[i][j] = sum_p a(i, p) * b(j, p) for the m x k codes `a` of `a_bits` bits (2 or 4) and the packed
/// weights `b`, through the output transform `out`. Threaded, exact (int32, K * 225 < 2^31 for 4 x 4 bits),
/// identical on every path; runs the `which` path (default: the fastest the CPU has). Throws
/// lowbit::invalid_input for another width, a k mismatch or an unsupported path.
template <IntGemmOutput Output>
void bitserial_gemm(matrix_view<std::uint8_t> a, int a_bits, bitserial_packed_b const& b, Output const& out,
                    isa which = best_isa(int_kernel::popcount))
{
    detail::check_isa(which, int_kernel::popcount, "lowbit::kernels::bitserial_gemm");
    detail::check_bitserial_bits(a_bits, "activation");
    if (a.cols != b.k())
        throw invalid_input("lowbit::kernels::bitserial_gemm: A has " + std::to_string(a.cols) + " columns, B has " +
                            std::to_string(b.k()));
    if (a.rows == 0 || b.n() == 0) return;
    detail::popcount_job job;
    job.kw = detail::popcount_words(a.cols);
    job.m = a.rows;
    job.n = b.n();
    job.k = a.cols;
    job.ba = a_bits;
    job.bw = b.bits();
    job.xor_op = false;
    job.mr = detail::popcount_mr(a_bits);
    job.out = detail::lower_output(out, b.n());
    std::size_t const panels = detail::popcount_a_panels(job.m, a_bits), words = job.a_panel_words();
    std::size_t const per_unit = detail::panels_per_unit(words);
    std::uint32_t* pa = detail::popcount_buffer(0, panels * words);
    job.a = pa;
    job.b = b.panels();
    detail::plan_popcount_tasks(job);
    detail::run_popcount_job(job, which, (panels + per_unit - 1) / per_unit, [&](std::size_t u) {
        for (std::size_t p = u * per_unit; p < std::min(panels, (u + 1) * per_unit); ++p)
            detail::pack_codes_a_panel(a, a_bits, job.kw, job.mr, p, pa + p * words);
    });
}

/// @brief bitserial_gemm with the weights given as codes (packed on each call).
template <IntGemmOutput Output>
void bitserial_gemm(matrix_view<std::uint8_t> a, int a_bits, matrix_view<std::uint8_t> b, int b_bits, Output const& out,
                    isa which = best_isa(int_kernel::popcount))
{
    bitserial_gemm(a, a_bits, bitserial_packed_b(b, b_bits), out, which);
}

/// @brief An integer affine map of codes, value = scale * code + offset (see the file comment).
struct code_affine {
    std::int32_t scale = 1;
    std::int32_t offset = 0;
};

/// @brief sums[r] = sum of the codes of row r (the U_i and V_j of the affine correction).
inline void code_row_sums(matrix_view<std::uint8_t> codes, std::int32_t* sums) noexcept
{
    for (std::size_t r = 0; r < codes.rows; ++r) {
        std::int32_t s = 0;
        for (std::size_t p = 0; p < codes.cols; ++p) s += codes.data[r * codes.ld + p];
        sums[r] = s;
    }
}

/// @brief Turns the unsigned-code products c (m x n, int32_output of bitserial_gemm) into the products of
/// the values x = a.scale * u + a.offset and w = w_map.scale * v + w_map.offset, in place:
/// c = sa sw c + sa ow U_i + oa sw V_j + k oa ow, with U = code_row_sums(activations), V = code_row_sums(weights).
inline void bitserial_affine_correct(std::int32_t* c, std::size_t ldc, std::size_t m, std::size_t n, std::size_t k,
                                     std::int32_t const* u_sums, std::int32_t const* v_sums, code_affine a,
                                     code_affine w_map) noexcept
{
    std::int32_t const kk = static_cast<std::int32_t>(k) * a.offset * w_map.offset;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            std::int32_t& v = c[i * ldc + j];
            v = a.scale * w_map.scale * v + a.scale * w_map.offset * u_sums[i] + a.offset * w_map.scale * v_sums[j] + kk;
        }
}

} // namespace lowbit::kernels
