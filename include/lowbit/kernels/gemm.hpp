// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Single-precision GEMM, row-major: C = alpha * op(A) * op(B) + beta * C.
///
/// `sgemm` forwards to CBLAS (`cblas_sgemm`) when lowbit::blas is linked (`LOWBIT_WITH_BLAS=1`; with
/// OpenBLAS as single-threaded calls over ranges of C on lowbit's pool, see detail::blas_single_thread), and
/// otherwise runs `sgemm_fallback`, a portable xsimd kernel that is always compiled so it can be tested
/// (and benchmarked) beside BLAS.
///
/// The fallback is bit-identical to kernels/reference/gemm.hpp wherever the target has a fused
/// multiply-add (builds with `__FMA__`; kernels/arch/fma.hpp says why that is not simply xsimd::fma),
/// because it vectorises across columns of C, never across k: every C element is one lane of one
/// accumulator that starts at 0 and takes fma(a(i,p), b(p,j), acc) for p = 0, 1, ..., k-1,
/// exactly the reference's order. Blocking k (KC) keeps that order: between k blocks a tile's partial sums
/// wait in a small per-task buffer, stored and reloaded as floats (exact), and the last block applies alpha
/// and beta. The blocking:
/// - op(A) and op(B) are packed once per call, A into panels of MR rows and B into panels of NR = 2 batches
///   of columns, each panel k deep and zero-padded, so the microkernel reads both with unit stride and
///   tails need no special arithmetic (padded lanes are computed and thrown away);
/// - the work is a list of (MC-row block, B panel) tasks, ordered row block first, split into contiguous
///   ranges by lowbit::parallel_for: a thread keeps its MC x k block of A in L2 across consecutive tasks
///   (MC shrinks as k grows so that it stays near 512 KiB), and inside a task each KC x NR slice of the B
///   panel stays in L1 while every MR-row tile of the block passes over it.
/// Packing both operands up front (O((m + n) k) work and memory, against 2mnk flops) avoids the barriers a
/// shared BLIS-style B block would need; the thread pool has none.
/// Results do not depend on the thread count: each element is computed by one thread in the same order.

#include <lowbit/kernels/arch/fma.hpp>
#include <lowbit/kernels/reference/gemm.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstring>
#include <vector>

#ifndef LOWBIT_WITH_BLAS
#define LOWBIT_WITH_BLAS 0
#endif

#if LOWBIT_WITH_BLAS
#include <cblas.h>
#endif

namespace lowbit::kernels {

namespace detail {

/// Register tile of the fallback for an architecture: MR rows by NB batches of columns. MR * NB
/// accumulators, NB loads of B and one broadcast of A must fit the register file: 12 x 2 = 24 of AVX-512's
/// 32 registers, 6 x 2 = 12 of AVX2's and SSE's 16 (SSE also needs a temporary: it has no FMA).
template <class Arch>
struct gemm_tile {
    static constexpr std::size_t width = xsimd::batch<float, Arch>::size;
    static constexpr std::size_t mr = width >= 16 ? 12 : 6;
    static constexpr std::size_t nb = 2;
    static constexpr std::size_t nr = nb * width;
};

/// Floats of packed A kept per thread block (MC x k): about a quarter of a 2 MiB L2, half of a 1 MiB one.
inline constexpr std::size_t gemm_a_block_floats = std::size_t{128} * 1024;
/// Row blocks never exceed this many rows, so that small-k problems still split into several tasks.
inline constexpr std::size_t gemm_mc_max = 240;
/// Depth of one pass of the microkernel: KC x NR floats of B (32 KiB at AVX-512's NR = 32) stay in L1.
inline constexpr std::size_t gemm_kc = 256;
/// Below this many multiply-adds (about 160^3, some 30 us on one AVX-512 core) a GEMM runs on the calling
/// thread: waking the pool costs more than it saves (measured: 64^3 took 6 us alone, 87 us on 2 threads
/// of a loaded machine).
inline constexpr std::size_t gemm_parallel_min_madds = std::size_t{1} << 22;

/// Packing buffer owned by the calling thread and reused across calls, so that repeated GEMMs of a
/// training loop neither allocate nor page-fault. It grows to the largest (m + n) * k seen on that thread.
inline std::vector<float, xsimd::aligned_allocator<float, 64>>& gemm_buffer()
{
    thread_local std::vector<float, xsimd::aligned_allocator<float, 64>> buffer;
    return buffer;
}

/// Packs rows i0 .. i0 + rows of op(A) (rows <= MR), all k columns, as dst[p * MR + r]; rows past the
/// end of A are zero.
template <std::size_t MR>
void gemm_pack_a(transpose ta, float const* a, std::size_t lda, std::size_t i0, std::size_t rows,
                 std::size_t k, float* dst) noexcept
{
    if (ta == transpose::no) {
        for (std::size_t r = 0; r < rows; ++r) {
            float const* src = a + (i0 + r) * lda;
            for (std::size_t p = 0; p < k; ++p) dst[p * MR + r] = src[p];
        }
        for (std::size_t r = rows; r < MR; ++r)
            for (std::size_t p = 0; p < k; ++p) dst[p * MR + r] = 0.0f;
    } else {
        for (std::size_t p = 0; p < k; ++p) {
            float const* src = a + p * lda + i0;
            for (std::size_t r = 0; r < rows; ++r) dst[p * MR + r] = src[r];
            for (std::size_t r = rows; r < MR; ++r) dst[p * MR + r] = 0.0f;
        }
    }
}

/// Packs columns j0 .. j0 + cols of op(B) (cols <= NR), all k rows, as dst[p * NR + c]; columns past
/// the end of B are zero.
template <std::size_t NR>
void gemm_pack_b(transpose tb, float const* b, std::size_t ldb, std::size_t j0, std::size_t cols,
                 std::size_t k, float* dst) noexcept
{
    if (tb == transpose::no) {
        for (std::size_t p = 0; p < k; ++p) {
            float const* src = b + p * ldb + j0;
            for (std::size_t c = 0; c < cols; ++c) dst[p * NR + c] = src[c];
            for (std::size_t c = cols; c < NR; ++c) dst[p * NR + c] = 0.0f;
        }
    } else {
        for (std::size_t c = 0; c < cols; ++c) {
            float const* src = b + (j0 + c) * ldb;
            for (std::size_t p = 0; p < k; ++p) dst[p * NR + c] = src[p];
        }
        for (std::size_t c = cols; c < NR; ++c)
            for (std::size_t p = 0; p < k; ++p) dst[p * NR + c] = 0.0f;
    }
}

/// The microkernel: one MR x NR tile of C over kc steps of k, from an A panel (kc x MR) and a B panel
/// (kc x NR). The accumulators start at 0 (`first`) or continue from the tile's partial sums in `ws`
/// (stored there by the previous kc block, exactly: a float stored and reloaded is the same float). The
/// last block writes c = alpha * acc (+ beta * c, fused, as in the reference); the others store to `ws`.
/// `bp` and `ws` must be aligned to the batch.
template <class Arch, std::size_t MR, std::size_t NB>
inline void gemm_micro(std::size_t kc, float const* ap, float const* bp, float* ws, bool first, bool last,
                       float alpha, float beta, float* c, std::size_t ldc) noexcept
{
    using batch = xsimd::batch<float, Arch>;
    constexpr std::size_t w = batch::size;
    constexpr std::size_t nr = NB * w;
    batch acc[MR][NB];
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t j = 0; j < NB; ++j)
            acc[r][j] = first ? batch(0.0f) : batch::load_aligned(ws + r * nr + j * w);
    for (std::size_t p = 0; p < kc; ++p, ap += MR, bp += nr) {
        batch bv[NB];
        for (std::size_t j = 0; j < NB; ++j) bv[j] = batch::load_aligned(bp + j * w);
        for (std::size_t r = 0; r < MR; ++r) {
            batch const av(ap[r]);
            for (std::size_t j = 0; j < NB; ++j) acc[r][j] = detail::fused_fma(av, bv[j], acc[r][j]);
        }
    }
    if (!last) {
        for (std::size_t r = 0; r < MR; ++r)
            for (std::size_t j = 0; j < NB; ++j) acc[r][j].store_aligned(ws + r * nr + j * w);
        return;
    }
    batch const va(alpha);
    if (beta == 0.0f) {
        // BLAS semantics: C is not read, so NaN in it does not survive.
        for (std::size_t r = 0; r < MR; ++r)
            for (std::size_t j = 0; j < NB; ++j) (va * acc[r][j]).store_unaligned(c + r * ldc + j * w);
    } else {
        batch const vb(beta);
        for (std::size_t r = 0; r < MR; ++r)
            for (std::size_t j = 0; j < NB; ++j) {
                float* cp = c + r * ldc + j * w;
                detail::fused_fma(vb, batch::load_unaligned(cp), va * acc[r][j]).store_unaligned(cp);
            }
    }
}

/// C = beta * C (0 when beta == 0): the whole GEMM when alpha == 0 or k == 0, as in BLAS and the reference.
inline void gemm_scale(std::size_t m, std::size_t n, float beta, float* c, std::size_t ldc) noexcept
{
    if (beta == 1.0f) return;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

} // namespace detail

/// @brief The portable xsimd GEMM (see the file comment): C = alpha * op(A) * op(B) + beta * C, row-major,
/// leading dimensions in elements. Handles any sizes (0 included), transposes and strides; beta == 0 never
/// reads C. Threaded with lowbit::parallel_for; bit-identical to reference::sgemm when `__FMA__` is defined,
/// and for every thread count.
template <class Arch = xsimd::default_arch>
void sgemm_fallback(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                    float const* a, std::size_t lda, float const* b, std::size_t ldb, float beta, float* c,
                    std::size_t ldc)
{
    using tile = detail::gemm_tile<Arch>;
    constexpr std::size_t mr = tile::mr, nr = tile::nr;
    if (m == 0 || n == 0) return;
    if (alpha == 0.0f || k == 0) {
        detail::gemm_scale(m, n, beta, c, ldc);
        return;
    }

    std::size_t const a_panels = (m + mr - 1) / mr;
    std::size_t const b_panels = (n + nr - 1) / nr;
    // Row blocks: as many MR panels as keep MC x k near gemm_a_block_floats, then evened out so the last
    // block is not a sliver.
    std::size_t const mc_panels_max =
        std::clamp<std::size_t>(detail::gemm_a_block_floats / (k * mr), 1, detail::gemm_mc_max / mr);
    std::size_t const m_blocks = (a_panels + mc_panels_max - 1) / mc_panels_max;
    std::size_t const mc_panels = (a_panels + m_blocks - 1) / m_blocks;

    // One buffer: packed A, then packed B from a 64-byte boundary (the microkernel loads B aligned; every
    // B panel is k * nr floats, a multiple of the batch, so all panels stay aligned).
    std::size_t const a_size = a_panels * k * mr, b_size = b_panels * k * nr;
    std::size_t const b_offset = (a_size + 15) / 16 * 16;
    auto& buffer = detail::gemm_buffer();
    if (buffer.size() < b_offset + b_size) {
        buffer.clear();  // no copy of the old contents
        buffer.resize(b_offset + b_size);
    }
    float* const pa = buffer.data();
    float* const pb = pa + b_offset;

    bool const serial = m * n * k < detail::gemm_parallel_min_madds;

    // 1. Pack op(A) and op(B): a_panels + b_panels independent units.
    std::size_t const units = a_panels + b_panels;
    std::size_t const pack_grain = serial ? units : std::max<std::size_t>(1, 16384 / (k * mr));
    parallel_for(units, pack_grain, [&](std::size_t begin, std::size_t end) {
        for (std::size_t u = begin; u < end; ++u) {
            if (u < a_panels) {
                std::size_t const i0 = u * mr;
                detail::gemm_pack_a<mr>(ta, a, lda, i0, std::min(mr, m - i0), k, pa + u * k * mr);
            } else {
                std::size_t const j = u - a_panels, j0 = j * nr;
                detail::gemm_pack_b<nr>(tb, b, ldb, j0, std::min(nr, n - j0), k, pb + j * k * nr);
            }
        }
    });

    // 2. Tasks (row block, B panel), row block first so a thread's consecutive tasks share the A block.
    //    Inside a task, k runs in blocks of KC so the KC x NR slice of the B panel stays in L1 while every
    //    MR-row tile of the block passes over it; partial sums wait in `ws` between blocks.
    std::size_t const tasks = m_blocks * b_panels;
    parallel_for(tasks, serial ? tasks : 1, [&](std::size_t begin, std::size_t end) {
        alignas(64) float edge[mr * nr];
        alignas(64) float ws[detail::gemm_mc_max / mr * mr * nr];
        for (std::size_t t = begin; t < end; ++t) {
            std::size_t const ib = t / b_panels, jp = t % b_panels;
            std::size_t const j0 = jp * nr, cols = std::min(nr, n - j0);
            std::size_t const ip_begin = ib * mc_panels, ip_end = std::min(a_panels, (ib + 1) * mc_panels);
            for (std::size_t pc = 0; pc < k; pc += detail::gemm_kc) {
                std::size_t const kc = std::min(detail::gemm_kc, k - pc);
                bool const first = pc == 0, last = pc + kc == k;
                float const* bpanel = pb + jp * k * nr + pc * nr;
                for (std::size_t ip = ip_begin; ip < ip_end; ++ip) {
                    std::size_t const i0 = ip * mr, rows = std::min(mr, m - i0);
                    float const* apanel = pa + ip * k * mr + pc * mr;
                    float* const wt = ws + (ip - ip_begin) * mr * nr;
                    float* const ct = c + i0 * ldc + j0;
                    if (!last || (rows == mr && cols == nr)) {
                        detail::gemm_micro<Arch, mr, tile::nb>(kc, apanel, bpanel, wt, first, last, alpha, beta,
                                                               ct, ldc);
                    } else {
                        // Tail tile: run the same kernel on a copy, so tails get the same arithmetic.
                        if (beta != 0.0f)
                            for (std::size_t r = 0; r < rows; ++r)
                                std::memcpy(edge + r * nr, ct + r * ldc, cols * sizeof(float));
                        detail::gemm_micro<Arch, mr, tile::nb>(kc, apanel, bpanel, wt, first, last, alpha, beta,
                                                               edge, nr);
                        for (std::size_t r = 0; r < rows; ++r)
                            std::memcpy(ct + r * ldc, edge + r * nr, cols * sizeof(float));
                    }
                }
            }
        }
    });
}

namespace detail {

/// OpenBLAS runs on one thread of its own inside lowbit: sgemm splits the product over lowbit's pool
/// instead. OpenBLAS's idle threads spin (sched_yield) for about 2^28 cycles after each call, and on a
/// machine with as many cores as threads they take half of a core from lowbit's pool when the element-wise
/// kernels run between two GEMMs (measured in bench_train_qat: a SAT training step at 2 threads was 39 %
/// slower than BinaryConnect's with OpenBLAS threading, 2 % with OPENBLAS_THREAD_TIMEOUT=4). One pool for
/// both removes the contention. The call is skipped when the count is already 1 (it takes a lock).
/// Other CBLAS implementations have no such function; sgemm then makes one call on the calling thread.
inline void blas_single_thread() noexcept
{
#if LOWBIT_WITH_BLAS && defined(OPENBLAS_VERSION)
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#endif
}

#if LOWBIT_WITH_BLAS
/// One CBLAS call (all sizes fit int): cblas_sgemm, or cblas_sgemv for a single row of C (a batch of one).
/// OpenBLAS 0.3.21's sgemm at m = 1 packs and blocks as for a full GEMM: 1 x 1024 by 1024 x 1024 took 688 us
/// (B transposed, as a dense layer's weights) and 421 us (not), where sgemv takes 54 us and 52 us on one core
/// of the same machine; at k = 784 both took about 41 us. sgemv writes y = alpha op(B)^T x + beta y.
inline void cblas_call(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                       float const* a, std::size_t lda, float const* b, std::size_t ldb, float beta, float* c,
                       std::size_t ldc) noexcept
{
    if (m == 1) {
        // x: the one row of op(A), contiguous in A, or its first column (stride lda) when A is transposed.
        int const incx = ta == transpose::yes ? static_cast<int>(lda) : 1;
        if (beta == 0.0f) std::fill_n(c, n, 0.0f);  // sgemm's contract: C is not read when beta is 0 (NaN)
        if (tb == transpose::yes)  // B is n x k: y = B x
            cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), alpha, b,
                        static_cast<int>(ldb), a, incx, beta, c, 1);
        else  // B is k x n: y = B^T x
            cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(n), alpha, b,
                        static_cast<int>(ldb), a, incx, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta == transpose::yes ? CblasTrans : CblasNoTrans,
                tb == transpose::yes ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                static_cast<int>(ldc));
}
#endif

/// Below this many multiply-adds a GEMM stays on the calling thread.
inline constexpr std::size_t blas_split_min_macs = std::size_t{1} << 21;

} // namespace detail

/// @brief C = alpha * op(A) * op(B) + beta * C, row-major as cblas_sgemm with CblasRowMajor; op(A) is
/// m x k, op(B) is k x n, C is m x n, leading dimensions in elements. beta == 0 overwrites C without
/// reading it. With `LOWBIT_WITH_BLAS` (link lowbit::blas) the work is cblas_sgemm (cblas_sgemv when m is 1,
/// see detail::cblas_call): with OpenBLAS, on
/// single-threaded OpenBLAS calls for column (or row) ranges of C run on lowbit's pool (see
/// detail::blas_single_thread); otherwise sgemm_fallback on lowbit's pool.
inline void sgemm(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                  float const* a, std::size_t lda, float const* b, std::size_t ldb, float beta, float* c,
                  std::size_t ldc)
{
#if LOWBIT_WITH_BLAS
    if (m == 0 || n == 0) return;
    if (alpha == 0.0f || k == 0) {
        // CBLAS would reject a leading dimension of 0 here (lda >= max(1, k)) and print an error.
        detail::gemm_scale(m, n, beta, c, ldc);
        return;
    }
    constexpr std::size_t int_max = INT_MAX;
    if (m <= int_max && n <= int_max && k <= int_max && lda <= int_max && ldb <= int_max && ldc <= int_max) {
#if defined(OPENBLAS_VERSION)
        detail::blas_single_thread();
        if (m * n * k >= detail::blas_split_min_macs && std::max(m, n) >= 32) {
            // Ranges of C, 16-aligned: columns (op(B) columns) when C is at least as wide as tall, else rows
            // (op(A) rows), one cblas_sgemm call each, run on lowbit's pool. The ranges depend on the shape
            // only, never on the thread count: OpenBLAS computes the edge of a call (its last columns or rows)
            // with other code than the middle, which can round differently (its Haswell sgemm does), so only
            // the same calls on 1 and on n threads give the same bits. Up to 8 ranges of at least
            // blas_split_min_macs multiply-adds each.
            bool const by_columns = n >= m;
            std::size_t const len = by_columns ? n : m;
            std::size_t const parts = std::clamp<std::size_t>(m * n * k / detail::blas_split_min_macs, 1, 8);
            std::size_t const width = std::max<std::size_t>(16, ((len + parts - 1) / parts + 15) / 16 * 16);
            std::size_t const ranges = (len + width - 1) / width;
            parallel_for(ranges, 1, [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    std::size_t const begin = r * width, count = std::min(len, begin + width) - begin;
                    if (by_columns)
                        detail::cblas_call(ta, tb, m, count, k, alpha, a, lda,
                                           tb == transpose::no ? b + begin : b + begin * ldb, ldb, beta, c + begin, ldc);
                    else
                        detail::cblas_call(ta, tb, count, n, k, alpha, ta == transpose::no ? a + begin * lda : a + begin,
                                           lda, b, ldb, beta, c + begin * ldc, ldc);
                }
            });
            return;
        }
#endif
        detail::cblas_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    // Dimensions beyond CBLAS's int: the fallback takes std::size_t.
#endif
    sgemm_fallback(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

} // namespace lowbit::kernels
