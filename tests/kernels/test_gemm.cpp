// SPDX-License-Identifier: MIT
// The xsimd GEMM fallback against the scalar reference: every size in {0, 1, 3, 7, 17, 64, 65, 130} for m, n
// and k, all four transpose pairs, leading dimensions above the minimum, several alpha/beta, beta = 0 over a
// C full of NaN, untouched padding between rows of C, blocks large enough to split into several tasks, and
// 1 vs 2 threads. With lowbit::blas linked, the public sgemm (OpenBLAS) is checked too, with a tolerance.
// This file is compiled once per instruction set (see CMakeLists.txt); each build checks the fallback for
// its own xsimd::default_arch and skips itself on a CPU that lacks it.
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/reference/gemm.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef LOWBIT_TEST_CPU
#define LOWBIT_TEST_CPU "sse2"
#endif

using namespace lowbit;
using namespace lowbit::kernels;

namespace {

bool cpu_ok() { return __builtin_cpu_supports(LOWBIT_TEST_CPU); }

float const qnan = std::numeric_limits<float>::quiet_NaN();
float const sentinel = -12345.0f;  // in the padding of C between n and ldc; must survive every call

/// One GEMM problem with stored operands and a C that both implementations start from.
struct problem {
    transpose ta, tb;
    std::size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    std::vector<float> a, b, c;

    problem(transpose ta_, transpose tb_, std::size_t m_, std::size_t n_, std::size_t k_, float alpha_,
            float beta_, std::size_t pad, std::mt19937& rng)
        : ta(ta_), tb(tb_), m(m_), n(n_), k(k_), alpha(alpha_), beta(beta_)
    {
        // Stored shapes: A is m x k (k x m when transposed), B is k x n (n x k).
        std::size_t const a_rows = ta == transpose::no ? m : k, a_cols = ta == transpose::no ? k : m;
        std::size_t const b_rows = tb == transpose::no ? k : n, b_cols = tb == transpose::no ? n : k;
        lda = a_cols + pad;
        ldb = b_cols + (pad ? pad + 2 : 0);
        ldc = n + (pad ? pad + 5 : 0);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        a.resize(a_rows * lda + 1);
        b.resize(b_rows * ldb + 1);
        for (auto& x : a) x = u(rng);
        for (auto& x : b) x = u(rng);
        c.assign(m * ldc + 1, sentinel);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? qnan : u(rng);
    }

    template <class F>
    std::vector<float> run(F&& gemm) const
    {
        std::vector<float> out = c;
        gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, out.data(), ldc);
        return out;
    }

    /// |alpha| * sum_p |a(i,p) b(p,j)| + |beta c(i,j)|: the scale of the rounding errors of element (i, j).
    double magnitude(std::size_t i, std::size_t j) const
    {
        double s = 0;
        for (std::size_t p = 0; p < k; ++p) {
            double const av = ta == transpose::no ? a[i * lda + p] : a[p * lda + i];
            double const bv = tb == transpose::no ? b[p * ldb + j] : b[j * ldb + p];
            s += std::fabs(av * bv);
        }
        s *= std::fabs(alpha);
        if (beta != 0.0f) s += std::fabs(static_cast<double>(beta) * c[i * ldc + j]);
        return s;
    }

    std::string name() const
    {
        return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
               " ta=" + std::to_string(ta == transpose::yes) + " tb=" + std::to_string(tb == transpose::yes) +
               " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) +
               " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta);
    }
};

std::uint32_t bits(float x)
{
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

/// Counts elements of `got` that differ from `want`: bit for bit when `exact`, else beyond a relative bound
/// of rel * (k + 2) * eps * magnitude. Padding elements (j >= n) must be exactly the sentinel.
std::size_t mismatches(problem const& p, std::vector<float> const& got, std::vector<float> const& want, bool exact,
                       double rel = 4.0)
{
    std::size_t bad = 0;
    double const eps = std::numeric_limits<float>::epsilon();
    for (std::size_t i = 0; i < p.m; ++i)
        for (std::size_t j = 0; j < p.ldc; ++j) {
            float const g = got[i * p.ldc + j], w = want[i * p.ldc + j];
            if (j >= p.n) {
                bad += bits(g) != bits(sentinel) ? 1 : 0;
            } else if (exact) {
                bad += bits(g) != bits(w) ? 1 : 0;
            } else {
                double const tol = rel * static_cast<double>(p.k + 2) * eps * p.magnitude(i, j) + 1e-30;
                bad += std::isfinite(g) && std::fabs(static_cast<double>(g) - w) <= tol ? 0 : 1;
            }
        }
    return bad;
}

// Bit identity needs the kernel's multiply-add (detail::fused_fma) to be one fused operation, as std::fma is
// in the reference. Without FMA hardware (the baseline x86-64 build, SSE2) it is a multiply then an add, two
// roundings, so there
// the fallback is only checked against the reference within a relative tolerance.
#if defined(__FMA__)
constexpr bool fallback_exact = true;
#else
constexpr bool fallback_exact = false;
#endif

auto const fallback = [](auto... args) { sgemm_fallback(args...); };
auto const reference_gemm = [](auto... args) { reference::sgemm(args...); };

constexpr transpose both[] = {transpose::no, transpose::yes};

} // namespace

TEST_CASE("sgemm_fallback matches the reference for every size, transpose and stride" * doctest::skip(!cpu_ok()))
{
    std::size_t const sizes[] = {0, 1, 3, 7, 17, 64, 65, 130};
    struct ab { float alpha, beta; };
    ab const scalars[] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 0.25f}, {2.0f, -1.5f}, {0.0f, 0.5f}, {0.75f, 0.0f}};
    std::mt19937 rng(42);
    std::size_t variant = 0, total = 0;
    for (std::size_t m : sizes)
        for (std::size_t n : sizes)
            for (std::size_t k : sizes)
                for (transpose ta : both)
                    for (transpose tb : both) {
                        ++variant;
                        // The largest cubes take most of the time; run them with one transpose pair only.
                        if (m * n * k > 130 * 130 * 65 && (ta == transpose::yes || tb == transpose::yes)) continue;
                        ab const s = scalars[variant % std::size(scalars)];
                        problem const p(ta, tb, m, n, k, s.alpha, s.beta, variant % 3 == 0 ? 0 : variant % 7 + 1, rng);
                        auto const want = p.run(reference_gemm);
                        auto const got = p.run(fallback);
                        INFO(p.name());
                        CHECK(mismatches(p, got, want, fallback_exact) == 0);
                        ++total;
                    }
    CHECK(total > 1500);
}

TEST_CASE("sgemm_fallback overwrites NaN in C when beta is 0 and scales C when alpha or k is 0" *
          doctest::skip(!cpu_ok()))
{
    std::mt19937 rng(7);
    for (std::size_t k : {std::size_t{0}, std::size_t{5}}) {
        for (float alpha : {0.0f, 1.0f}) {
            problem const p(transpose::no, transpose::no, 9, 21, k, alpha, 0.0f, 3, rng);
            auto const got = p.run(fallback);
            INFO(p.name());
            CHECK(mismatches(p, got, p.run(reference_gemm), fallback_exact) == 0);
            for (std::size_t i = 0; i < p.m; ++i)
                for (std::size_t j = 0; j < p.n; ++j) CHECK(!std::isnan(got[i * p.ldc + j]));
        }
    }
    // alpha == 0 reads neither A nor B (BLAS's quick return): NaN in them must not reach C.
    problem p(transpose::no, transpose::yes, 5, 6, 7, 0.0f, 2.0f, 1, rng);
    std::fill(p.a.begin(), p.a.end(), qnan);
    auto const got = p.run(fallback);
    for (std::size_t i = 0; i < p.m; ++i)
        for (std::size_t j = 0; j < p.n; ++j) CHECK(bits(got[i * p.ldc + j]) == bits(2.0f * p.c[i * p.ldc + j]));
}

TEST_CASE("sgemm_fallback splits large problems into blocks and tasks correctly" * doctest::skip(!cpu_ok()))
{
    // k = 700 makes row blocks shorter than m and runs the microkernel in 3 k blocks (gemm_kc = 256); n spans
    // many B panels; odd sizes leave tails everywhere.
    std::mt19937 rng(3);
    for (transpose ta : both)
        for (transpose tb : both) {
            problem const p(ta, tb, 203, 301, 700, 1.25f, -0.5f, 3, rng);
            INFO(p.name());
            CHECK(mismatches(p, p.run(fallback), p.run(reference_gemm), fallback_exact) == 0);
            // Several k blocks on tail tiles only, with beta = 0 (C full of NaN) and beta != 0.
            for (float beta : {0.0f, 2.0f}) {
                problem const q(ta, tb, 5, 3, 513, -1.0f, beta, 1, rng);
                INFO(q.name());
                CHECK(mismatches(q, q.run(fallback), q.run(reference_gemm), fallback_exact) == 0);
            }
        }
}

TEST_CASE("sgemm_fallback gives the same bits on 1 and 2 threads" * doctest::skip(!cpu_ok()))
{
    static_assert(std::size_t{257} * 190 * 131 >= kernels::detail::gemm_parallel_min_madds);
    unsigned const before = num_threads();
    std::mt19937 rng(11);
    for (transpose ta : both)
        for (transpose tb : both) {
            // 257 * 190 * 131 multiply-adds is above detail::gemm_parallel_min_madds: 2 threads really split it.
            problem const p(ta, tb, 257, 190, 131, 1.0f, 0.5f, 2, rng);
            set_num_threads(1);
            auto const one = p.run(fallback);
            set_num_threads(2);
            auto const two = p.run(fallback);
            INFO(p.name());
            CHECK(mismatches(p, two, one, true) == 0);
        }
    set_num_threads(before);
}

TEST_CASE("the public sgemm agrees with the reference" * doctest::skip(!cpu_ok()))
{
    // With lowbit::blas this is OpenBLAS, which sums in its own order: compare within a tolerance. Without
    // it sgemm is the fallback, checked exactly (FMA builds) above; the tolerance check applies either way.
    auto const gemm = [](auto... args) { sgemm(args...); };
    std::mt19937 rng(5);
    unsigned const before = num_threads();
    // m = 1 is a batch of one (cblas_sgemv with OpenBLAS); the next case splits one over the pool.
    std::size_t const sizes[][3] = {{1, 1, 1},     {3, 7, 17}, {65, 64, 130}, {130, 17, 65}, {200, 150, 300},
                                    {0, 4, 4},     {4, 4, 0},  {1, 17, 65},   {1, 1000, 300}};
    for (unsigned threads : {1u, 2u}) {
        set_num_threads(threads);
        for (auto const& s : sizes)
            for (transpose ta : both)
                for (transpose tb : both)
                    for (float beta : {0.0f, 0.75f}) {
                        problem const p(ta, tb, s[0], s[1], s[2], 1.5f, beta, 1, rng);
                        INFO(p.name(), " threads=", threads, " blas=", LOWBIT_WITH_BLAS);
                        CHECK(mismatches(p, p.run(gemm), p.run(reference_gemm), false) == 0);
                    }
    }
    set_num_threads(before);
}

TEST_CASE("the public sgemm gives the same bits on 1 and 2 threads for a batch of one" * doctest::skip(!cpu_ok()))
{
    // With OpenBLAS, m = 1 large enough to be split over the pool (two column ranges, one sgemv each): the ranges
    // depend on the shape only, so the bits do not depend on the thread count. Without it sgemm is the
    // fallback, whose splitting the tests above cover: a smaller problem suffices there.
    std::size_t const n = LOWBIT_WITH_BLAS ? 4096 : 512, k = LOWBIT_WITH_BLAS ? 1024 : 256;
    auto const gemm = [](auto... args) { sgemm(args...); };
    std::mt19937 rng(9);
    unsigned const before = num_threads();
    for (transpose ta : both)
        for (transpose tb : both)
            for (float beta : {0.0f, 0.5f}) {
                problem const p(ta, tb, 1, n, k, 1.0f, beta, 1, rng);
                INFO(p.name());
                set_num_threads(1);
                std::vector<float> const one = p.run(gemm);
                set_num_threads(2);
                std::vector<float> const two = p.run(gemm);
                CHECK(mismatches(p, two, one, true) == 0);
                CHECK(mismatches(p, one, p.run(reference_gemm), false) == 0);
            }
    set_num_threads(before);
}
