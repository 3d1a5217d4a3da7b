// SPDX-License-Identifier: MIT
// The integer GEMM kernels (binary_gemm, bitserial_gemm, int8_gemm, binary_int8_gemm, binary_conv2d) against
// their scalar references, bit for bit: odd shapes (m, n, k not multiples of anything, k = 0, 1, 31, 63, 64, 65,
// 1000 ...), garbage in the padding bits of the inputs, leading dimensions above the minimum, every output
// transform (int32, float with per-column scale and bias, BatchNorm sign bits) with sentinels around the output,
// every instruction-set path the running CPU supports (forced explicitly), 1 vs 2 threads, and the automatic
// dispatch against the scalar path. Built with baseline flags only: the kernels' run-time dispatch reaches the
// AVX2 / AVX-512 code (tests/kernels/CMakeLists.txt).
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/bitserial_gemm.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/reference/binary_conv2d.hpp>
#include <lowbit/kernels/reference/binary_gemm.hpp>
#include <lowbit/kernels/reference/bitserial_gemm.hpp>
#include <lowbit/kernels/reference/int8_gemm.hpp>
#include <lowbit/kernels/reference/int_gemm_output.hpp>
#include <lowbit/kernels/reference/pack.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <algorithm>
#include <string>
#include <vector>

using namespace lowbit;
using namespace lowbit::kernels;

namespace {

constexpr isa all_isas[] = {isa::scalar, isa::avx2, isa::avx512};

std::vector<isa> isas_for(int_kernel k)
{
    std::vector<isa> r;
    for (isa i : all_isas)
        if (supports(i, k)) r.push_back(i);
    return r;
}

/// Restores the thread count at the end of a test.
struct thread_guard {
    unsigned before = num_threads();
    ~thread_guard() { set_num_threads(before); }
};

/// A random bit matrix with `extra` words of padding per row; bits past `cols` are random too (the kernels
/// must ignore them).
struct bits {
    std::vector<std::uint64_t> words;
    bit_matrix_view view;
    bits(std::size_t rows, std::size_t cols, std::size_t extra, std::mt19937_64& rng)
    {
        std::size_t const ld = words_for_bits(cols) + extra;
        words.resize(rows * ld + 1);
        for (auto& w : words) w = rng();
        view = {words.data(), rows, cols, ld};
    }
};

template <class T>
struct bytes {
    std::vector<T> data;
    matrix_view<T> view;
    bytes(std::size_t rows, std::size_t cols, std::size_t extra, std::mt19937_64& rng, unsigned mask = 0xFF)
    {
        std::size_t const ld = cols + extra;
        data.resize(rows * ld + 1);
        for (auto& v : data) v = static_cast<T>(rng() & mask);
        view = {data.data(), rows, cols, ld};
    }
};

/// Per-column parameters of the output transforms for n columns, with values that make every transform
/// non-trivial for results of magnitude around `scale_of_v`.
struct transforms {
    std::vector<float> scale, bias;
    std::vector<std::int32_t> threshold;
    std::vector<std::uint64_t> flip;
    transforms(std::size_t n, double scale_of_v, std::mt19937_64& rng)
    {
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        std::normal_distribution<double> g(0.0, scale_of_v);
        for (std::size_t j = 0; j < n; ++j) {
            scale.push_back(u(rng) * 0.37f);
            bias.push_back(u(rng) * 3.0f);
            threshold.push_back(static_cast<std::int32_t>(std::lround(g(rng))));
        }
        flip.resize(words_for_bits(n) + 1);
        for (auto& w : flip) w = rng();
    }
};

std::uint32_t float_bits(float x)
{
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

constexpr std::int32_t int_sentinel = -777777;
constexpr float float_sentinel = -12345.5f;
constexpr std::uint64_t word_sentinel = 0xDEADBEEFCAFEF00Dull;

/// Runs `gemm(out)` for each output transform with a padded, sentinel-filled output, and checks every
/// element (and the padding) against the reference transform of the int32 results `want` (m x n).
template <class Gemm>
void check_outputs(std::vector<std::int32_t> const& want, std::size_t m, std::size_t n, transforms const& t, Gemm&& gemm)
{
    {  // int32
        std::size_t const ld = n + 3;
        std::vector<std::int32_t> got(m * ld + 1, int_sentinel), ref(m * ld + 1, int_sentinel);
        reference::write_output(want.data(), m, n, int32_output{ref.data(), ld});
        gemm(int32_output{got.data(), ld});
        CHECK(got == ref);
    }
    for (int variant = 0; variant < 2; ++variant) {  // float, with scale and bias, and with defaults
        std::size_t const ld = n + 5;
        float_output const spec{nullptr, ld, variant == 0 ? t.scale.data() : nullptr, variant == 0 ? t.bias.data() : nullptr};
        std::vector<float> got(m * ld + 1, float_sentinel), ref(m * ld + 1, float_sentinel);
        float_output r = spec, g = spec;
        r.data = ref.data();
        g.data = got.data();
        reference::write_output(want.data(), m, n, r);
        gemm(g);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < got.size(); ++i) bad += float_bits(got[i]) != float_bits(ref[i]) ? 1 : 0;
        INFO("float variant ", variant);
        CHECK(bad == 0);
    }
    for (int variant = 0; variant < 2; ++variant) {  // sign bits, with and without flips
        std::size_t const ld = words_for_bits(n) + 2;
        sign_output const spec{nullptr, ld, t.threshold.data(), variant == 0 ? t.flip.data() : nullptr};
        std::vector<std::uint64_t> got(m * ld + 1, word_sentinel), ref(m * ld + 1, word_sentinel);
        sign_output r = spec, g = spec;
        r.data = ref.data();
        g.data = got.data();
        reference::write_output(want.data(), m, n, r);
        gemm(g);
        INFO("sign variant ", variant);
        CHECK(got == ref);
    }
}

std::string shape_name(std::size_t m, std::size_t n, std::size_t k)
{
    return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

} // namespace

TEST_CASE("cpu features: the best path is supported, scalar always is, and an unsupported path throws")
{
    for (int_kernel k : {int_kernel::popcount, int_kernel::int8}) {
        CHECK(supports(isa::scalar, k));
        CHECK(supports(best_isa(k), k));
        MESSAGE("best path for ", k == int_kernel::popcount ? "popcount" : "int8", ": ", isa_name(best_isa(k)));
    }
    std::mt19937_64 rng(1);
    bits const a(3, 70, 0, rng), b(5, 70, 0, rng);
    std::vector<std::int32_t> c(15);
    for (isa i : all_isas) {
        if (supports(i, int_kernel::popcount))
            CHECK_NOTHROW(binary_gemm(a.view, b.view, int32_output{c.data(), 5}, i));
        else
            CHECK_THROWS_AS(binary_gemm(a.view, b.view, int32_output{c.data(), 5}, i), invalid_input);
    }
    CHECK_THROWS_AS(binary_gemm(a.view, bit_matrix_view{b.view.data, 5, 69, b.view.ld}, int32_output{c.data(), 5}),
                    invalid_input);
}

// The tests below run every path isas_for() finds on this CPU. Where the AVX-512 (or AVX2) paths are missing they
// are not tested, and these cases say so by being skipped (ctest reports them as such; CI fails on a skip where
// the CPU has AVX-512 VPOPCNTDQ).
TEST_CASE("int kernels: the AVX-512 paths are among those tested here" *
          doctest::skip(!supports(isa::avx512, int_kernel::popcount) || !supports(isa::avx512, int_kernel::int8)))
{
    for (int_kernel k : {int_kernel::popcount, int_kernel::int8}) {
        std::vector<isa> const tested = isas_for(k);
        CHECK(std::ranges::find(tested, isa::avx512) != tested.end());
    }
}

TEST_CASE("int kernels: the AVX2 paths are among those tested here" *
          doctest::skip(!supports(isa::avx2, int_kernel::popcount) || !supports(isa::avx2, int_kernel::int8)))
{
    for (int_kernel k : {int_kernel::popcount, int_kernel::int8}) {
        std::vector<isa> const tested = isas_for(k);
        CHECK(std::ranges::find(tested, isa::avx2) != tested.end());
    }
}

TEST_CASE("bit matrix helpers: pack_sign_rows and bitstream_to_rows")
{
    std::mt19937_64 rng(2);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (std::size_t cols : {1, 7, 63, 64, 65, 130}) {
        std::size_t const rows = 5, ld = words_for_bits(cols) + 1;
        std::vector<float> x(rows * cols);
        for (auto& v : x) v = g(rng);
        x[0] = 0.0f;
        x[rows * cols - 1] = -0.0f;
        std::vector<std::uint64_t> out(rows * ld, word_sentinel);
        pack_sign_rows(x.data(), rows, cols, cols, out.data(), ld);
        // The same bits through lowbit's 1-bit code stream (code 1 = +a: x >= 0).
        std::vector<std::uint8_t> codes(rows * cols);
        for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = x[i] < 0.0f ? 0 : 1;
        std::vector<std::uint8_t> stream(kernels::packed_bytes(codes.size(), 1));
        reference::pack_codes(codes.data(), codes.size(), 1, stream.data());
        std::vector<std::uint64_t> from_stream(rows * ld, word_sentinel);
        bitstream_to_rows(stream.data(), rows, cols, from_stream.data(), ld);
        CAPTURE(cols);
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t w = 0; w < words_for_bits(cols); ++w) CHECK(out[r * ld + w] == from_stream[r * ld + w]);
            CHECK(out[r * ld + ld - 1] == word_sentinel);  // the padding word is not written
            for (std::size_t c = 0; c < cols; ++c) CHECK(bit_at({out.data(), rows, cols, ld}, r, c) == !(x[r * cols + c] < 0.0f));
            if (cols % 64) CHECK((out[r * ld + cols / 64] >> (cols % 64)) == 0);  // bits past cols are 0
        }
    }
}

TEST_CASE("binary_gemm matches the reference on odd shapes, every path and every output transform")
{
    std::mt19937_64 rng(3);
    std::size_t const ms[] = {1, 5, 6, 7, 13, 97};
    std::size_t const ns[] = {1, 15, 16, 17, 63, 64, 65, 130};
    std::size_t const ks[] = {0, 1, 31, 32, 33, 63, 64, 65, 127, 1000};
    std::size_t total = 0;
    for (std::size_t m : ms)
        for (std::size_t n : ns)
            for (std::size_t k : ks) {
                if (m * n * k > 97 * 65 * 127 && !(m == 7 && n == 130 && k == 1000)) continue;  // Debug-build budget
                bits const a(m, k, (m + k) % 3, rng), b(n, k, (n + k) % 2, rng);
                std::vector<std::int32_t> want(m * n);
                reference::binary_gemm(a.view, b.view, int32_output{want.data(), n});
                transforms const t(n, std::sqrt(static_cast<double>(k) + 1.0), rng);
                binary_packed_b const packed(b.view);
                for (isa i : isas_for(int_kernel::popcount)) {
                    INFO(shape_name(m, n, k), " isa=", isa_name(i));
                    check_outputs(want, m, n, t, [&](auto const& out) { binary_gemm(a.view, packed, out, i); });
                    // The unpacked-B overload, once per shape.
                    std::vector<std::int32_t> got(m * n, int_sentinel);
                    binary_gemm(a.view, b.view, int32_output{got.data(), n}, i);
                    CHECK(got == want);
                }
                ++total;
            }
    CHECK(total > 300);
}

TEST_CASE("binary_gemm: 1 and 2 threads give the same bits, and the automatic path equals scalar")
{
    thread_guard const guard;
    std::mt19937_64 rng(4);
    // 257 * 200 * 1400 bit operations are above detail::popcount_parallel_min_ops: 2 threads really split it.
    static_assert(std::size_t{257} * 200 * 1400 >= kernels::detail::popcount_parallel_min_ops);
    bits const a(257, 1400, 1, rng), b(200, 1400, 0, rng);
    binary_packed_b const packed(b.view);
    std::vector<std::int32_t> scalar_result(257 * 200), one(257 * 200), two(257 * 200), automatic(257 * 200);
    set_num_threads(1);
    binary_gemm(a.view, packed, int32_output{scalar_result.data(), 200}, isa::scalar);
    binary_gemm(a.view, packed, int32_output{automatic.data(), 200});
    CHECK(automatic == scalar_result);
    for (isa i : isas_for(int_kernel::popcount)) {
        INFO("isa=", isa_name(i));
        set_num_threads(1);
        binary_gemm(a.view, packed, int32_output{one.data(), 200}, i);
        set_num_threads(2);
        binary_gemm(a.view, packed, int32_output{two.data(), 200}, i);
        CHECK(one == scalar_result);
        CHECK(two == scalar_result);
        // Sign output on 2 threads: tasks own whole words.
        std::vector<std::int32_t> thr(200, 3);
        std::vector<std::uint64_t> s1(257 * 4, word_sentinel), s2(257 * 4, word_sentinel);
        set_num_threads(1);
        binary_gemm(a.view, packed, sign_output{s1.data(), 4, thr.data(), nullptr}, i);
        set_num_threads(2);
        binary_gemm(a.view, packed, sign_output{s2.data(), 4, thr.data(), nullptr}, i);
        CHECK(s1 == s2);
    }
    // A reference check of the large product (the scalar path is itself checked above on small shapes).
    std::vector<std::int32_t> want(257 * 200);
    reference::binary_gemm(a.view, b.view, int32_output{want.data(), 200});
    CHECK(scalar_result == want);
}

TEST_CASE("batch_norm_sign_thresholds folds BatchNorm + sign into integer thresholds")
{
    std::mt19937_64 rng(5);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::size_t const n = 70;
    std::vector<float> mean(n), var(n), gamma(n), beta(n);
    for (std::size_t j = 0; j < n; ++j) {
        mean[j] = g(rng) * 20.0f;
        var[j] = std::fabs(g(rng)) * 30.0f + 0.1f;
        gamma[j] = j % 7 == 3 ? 0.0f : g(rng);
        beta[j] = g(rng);
    }
    std::vector<std::int32_t> thr(n);
    std::vector<std::uint64_t> flip(2);
    batch_norm_sign_thresholds(n, mean.data(), var.data(), gamma.data(), beta.data(), 1e-5f, thr.data(), flip.data());
    std::size_t checked = 0;
    for (std::size_t j = 0; j < n; ++j)
        for (int v = -120; v <= 120; ++v) {
            double const y = gamma[j] * (v - static_cast<double>(mean[j])) / std::sqrt(static_cast<double>(var[j]) + 1e-5) + beta[j];
            if (std::fabs(y) < 1e-9) continue;  // on the boundary the float rounding decides
            bool const want = y >= 0.0;
            bool const got = (v >= thr[j]) != (((flip[j / 64] >> (j % 64)) & 1u) != 0);
            CAPTURE(j);
            CAPTURE(v);
            CHECK(got == want);
            ++checked;
        }
    CHECK(checked > 16000);
}

TEST_CASE("bitserial_gemm matches the reference for 2 and 4 bits, every path and every output transform")
{
    std::mt19937_64 rng(6);
    struct shape { std::size_t m, n, k; };
    shape const shapes[] = {{1, 1, 1}, {3, 17, 31}, {7, 16, 32}, {6, 33, 33}, {13, 64, 63}, {5, 65, 64}, {2, 130, 65},
                            {31, 40, 200}, {4, 9, 1000}, {9, 5, 0}};
    for (int ba : {2, 4})
        for (int bw : {2, 4})
            for (shape const s : shapes) {
                // Codes carry random high bits beyond their width: the kernels must ignore them.
                bytes<std::uint8_t> const a(s.m, s.k, 2, rng), b(s.n, s.k, 1, rng);
                std::vector<std::int32_t> want(s.m * s.n);
                reference::bitserial_gemm(a.view, ba, b.view, bw, int32_output{want.data(), s.n});
                transforms const t(s.n, static_cast<double>(s.k) * (ba + bw), rng);
                bitserial_packed_b const packed(b.view, bw);
                for (isa i : isas_for(int_kernel::popcount)) {
                    INFO(shape_name(s.m, s.n, s.k), " bits=", ba, "x", bw, " isa=", isa_name(i));
                    check_outputs(want, s.m, s.n, t, [&](auto const& out) { bitserial_gemm(a.view, ba, packed, out, i); });
                }
            }
    bytes<std::uint8_t> const a(2, 3, 0, rng), b(2, 3, 0, rng);
    std::vector<std::int32_t> c(4);
    CHECK_THROWS_AS(bitserial_gemm(a.view, 3, b.view, 2, int32_output{c.data(), 2}), invalid_input);
    CHECK_THROWS_AS(bitserial_gemm(a.view, 2, b.view, 8, int32_output{c.data(), 2}), invalid_input);
}

TEST_CASE("bitserial_gemm: threads, automatic path, and the affine correction for signed grids")
{
    thread_guard const guard;
    std::mt19937_64 rng(7);
    std::size_t const m = 100, n = 90, k = 2000;
    static_assert(std::size_t{100} * 90 * 2000 * 4 >= kernels::detail::popcount_parallel_min_ops);
    bytes<std::uint8_t> const a(m, k, 0, rng, 3), w(n, k, 0, rng, 15);
    bitserial_packed_b const packed(w.view, 4);
    std::vector<std::int32_t> scalar_result(m * n), got(m * n);
    set_num_threads(1);
    bitserial_gemm(a.view, 2, packed, int32_output{scalar_result.data(), n}, isa::scalar);
    bitserial_gemm(a.view, 2, packed, int32_output{got.data(), n});
    CHECK(got == scalar_result);
    for (isa i : isas_for(int_kernel::popcount))
        for (unsigned threads : {1u, 2u}) {
            set_num_threads(threads);
            std::fill(got.begin(), got.end(), int_sentinel);
            bitserial_gemm(a.view, 2, packed, int32_output{got.data(), n}, i);
            INFO("isa=", isa_name(i), " threads=", threads);
            CHECK(got == scalar_result);
        }
    // Unsigned 2-bit activations x symmetric_even 4-bit weights (value 2v - 15, in half steps).
    std::vector<std::int32_t> u_sums(m), v_sums(n);
    code_row_sums(a.view, u_sums.data());
    code_row_sums(w.view, v_sums.data());
    bitserial_affine_correct(scalar_result.data(), n, m, n, k, u_sums.data(), v_sums.data(), code_affine{1, 0},
                             code_affine{2, -15});
    std::size_t bad = 0;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            std::int32_t s = 0;
            for (std::size_t p = 0; p < k; ++p) s += a.view.data[i * k + p] * (2 * w.view.data[j * k + p] - 15);
            bad += s != scalar_result[i * n + j] ? 1 : 0;
        }
    CHECK(bad == 0);
}

TEST_CASE_TEMPLATE("int8_gemm and binary_int8_gemm match the reference, every path and output transform", T, std::uint8_t,
                   std::int8_t)
{
    std::mt19937_64 rng(8);
    struct shape { std::size_t m, n, k; };
    shape const shapes[] = {{1, 1, 1}, {1, 10, 784}, {5, 15, 3}, {6, 16, 4}, {7, 17, 5}, {13, 64, 63}, {2, 65, 64},
                            {12, 130, 65}, {25, 33, 257}, {3, 7, 1000}, {4, 4, 0}};
    for (shape const s : shapes) {
        bytes<T> a(s.m, s.k, 3, rng);
        bytes<std::int8_t> b(s.n, s.k, 1, rng);
        if (s.m > 1 && s.n > 1)  // extremes: 255 (or -128) x -128 along a whole row and column
            for (std::size_t p = 0; p < s.k; ++p) {
                a.data[p] = std::is_signed_v<T> ? static_cast<T>(-128) : static_cast<T>(255);
                b.data[p] = -128;
            }
        bits const w(s.n, s.k, 1, rng);
        std::vector<std::int32_t> want(s.m * s.n), want_binary(s.m * s.n);
        reference::int8_gemm(a.view, b.view, int32_output{want.data(), s.n});
        reference::binary_int8_gemm(a.view, w.view, int32_output{want_binary.data(), s.n});
        transforms const t(s.n, 100.0 * std::sqrt(static_cast<double>(s.k) + 1.0), rng);
        int8_packed_b const packed(b.view), packed_binary(w.view);
        for (isa i : isas_for(int_kernel::int8)) {
            INFO(shape_name(s.m, s.n, s.k), " isa=", isa_name(i), " signed=", std::is_signed_v<T>);
            check_outputs(want, s.m, s.n, t, [&](auto const& out) { int8_gemm(a.view, packed, out, i); });
            check_outputs(want_binary, s.m, s.n, t, [&](auto const& out) { int8_gemm(a.view, packed_binary, out, i); });
            std::vector<std::int32_t> got(s.m * s.n, int_sentinel);
            binary_int8_gemm(a.view, w.view, int32_output{got.data(), s.n}, i);
            CHECK(got == want_binary);
            int8_gemm(a.view, b.view, int32_output{got.data(), s.n}, i);
            CHECK(got == want);
        }
    }
    std::vector<std::int8_t> big(65794);
    CHECK_THROWS_AS(int8_packed_b(matrix_view<std::int8_t>{big.data(), 1, big.size(), big.size()}), invalid_input);
}

TEST_CASE("int8_gemm: 1 and 2 threads give the same bits, and the automatic path equals scalar")
{
    thread_guard const guard;
    std::mt19937_64 rng(9);
    std::size_t const m = 160, n = 200, k = 300;
    static_assert(std::size_t{160} * 200 * 300 >= kernels::detail::int8_parallel_min_madds);
    bytes<std::uint8_t> const a(m, k, 0, rng);
    bytes<std::int8_t> const b(n, k, 0, rng);
    int8_packed_b const packed(b.view);
    std::vector<std::int32_t> scalar_result(m * n), got(m * n), want(m * n);
    set_num_threads(1);
    int8_gemm(a.view, packed, int32_output{scalar_result.data(), n}, isa::scalar);
    int8_gemm(a.view, packed, int32_output{got.data(), n});
    CHECK(got == scalar_result);
    reference::int8_gemm(a.view, b.view, int32_output{want.data(), n});
    CHECK(scalar_result == want);
    for (isa i : isas_for(int_kernel::int8))
        for (unsigned threads : {1u, 2u}) {
            set_num_threads(threads);
            std::fill(got.begin(), got.end(), int_sentinel);
            int8_gemm(a.view, packed, int32_output{got.data(), n}, i);
            INFO("isa=", isa_name(i), " threads=", threads);
            CHECK(got == scalar_result);
        }
}

TEST_CASE("binary_conv2d matches the direct reference with zero padding, every path and output transform")
{
    thread_guard const guard;
    std::mt19937_64 rng(10);
    struct conv { std::size_t c, h, w, f, k, s, p, batch; };
    conv const convs[] = {
        {16, 28, 28, 16, 3, 1, 1, 1},  // the cnn's second convolution (lowbit::nn::cnn on 28x28 inputs)
        {16, 14, 14, 32, 3, 1, 1, 2},  // third
        {32, 14, 14, 32, 3, 1, 1, 1},  // fourth
        {1, 5, 7, 3, 3, 1, 1, 1},      {70, 9, 8, 65, 3, 2, 1, 2}, {3, 6, 6, 5, 5, 1, 2, 1},
        {5, 4, 4, 3, 3, 1, 4, 1},  // padding wider than the kernel: windows entirely outside the image
        {8, 10, 9, 20, 1, 1, 0, 1},    {32, 7, 7, 10, 3, 1, 0, 3},
    };
    for (conv const g : convs) {
        binary_conv2d_shape const s{g.c, g.h, g.w, g.f, g.k, g.s, g.p};
        bits const x(g.batch * g.h * g.w, g.c, 1, rng), w(g.f, s.patch_bits(), 0, rng);
        binary_conv2d_weights const wb(s, w.view);
        std::size_t const m = g.batch * s.out_height() * s.out_width();
        std::vector<std::int32_t> want(m * g.f);
        reference::binary_conv2d(s, w.view, x.view, g.batch, int32_output{want.data(), g.f});
        transforms const t(g.f, std::sqrt(static_cast<double>(s.patch_bits())), rng);
        for (isa i : isas_for(int_kernel::popcount))
            for (unsigned threads : {1u, 2u}) {
                set_num_threads(threads);
                INFO("c=", g.c, " h=", g.h, " w=", g.w, " f=", g.f, " k=", g.k, " s=", g.s, " p=", g.p, " batch=", g.batch,
                     " isa=", isa_name(i), " threads=", threads);
                check_outputs(want, m, g.f, t, [&](auto const& out) { binary_conv2d(wb, x.view, g.batch, out, i); });
            }
    }
}

TEST_CASE("binary layers chain: sign output of one convolution is the input of the next")
{
    std::mt19937_64 rng(11);
    std::normal_distribution<float> g(0.0f, 1.0f);
    binary_conv2d_shape const s1{16, 12, 12, 32, 3, 1, 1}, s2{32, 12, 12, 16, 3, 1, 1};
    std::size_t const batch = 2, pixels = batch * 12 * 12;
    std::vector<float> images(batch * 16 * 12 * 12), w1(32 * 16 * 9), w2(16 * 32 * 9);
    for (auto* v : {&images, &w1, &w2})
        for (auto& x : *v) x = g(rng);
    std::vector<std::uint64_t> x(pixels), k1(32 * 3), k2(16 * 5);
    pack_images_sign(images.data(), batch, 16, 12, 12, x.data(), 1);
    pack_conv_weights_sign(w1.data(), s1, k1.data(), 3);
    pack_conv_weights_sign(w2.data(), s2, k2.data(), 5);
    bit_matrix_view const xv{x.data(), pixels, 16, 1}, k1v{k1.data(), 32, 144, 3}, k2v{k2.data(), 16, 288, 5};
    // The packed weights and images agree with the float signs.
    for (std::size_t f = 0; f < 32; ++f)
        for (std::size_t c = 0; c < 16; ++c)
            for (std::size_t t = 0; t < 9; ++t) CHECK(bit_at(k1v, f, t * 16 + c) == !(w1[(f * 16 + c) * 9 + t] < 0.0f));
    for (std::size_t c = 0; c < 16; ++c) CHECK(bit_at(xv, 5, c) == !(images[c * 144 + 5] < 0.0f));
    std::vector<std::int32_t> thr(32, 0);
    std::vector<std::uint64_t> mid(pixels), want_mid(pixels);
    binary_conv2d(binary_conv2d_weights(s1, k1v), xv, batch, sign_output{mid.data(), 1, thr.data(), nullptr});
    reference::binary_conv2d(s1, k1v, xv, batch, sign_output{want_mid.data(), 1, thr.data(), nullptr});
    CHECK(mid == want_mid);
    bit_matrix_view const mv{mid.data(), pixels, 32, 1};
    std::vector<float> scale(16, 0.5f), y(pixels * 16), want_y(pixels * 16);
    binary_conv2d(binary_conv2d_weights(s2, k2v), mv, batch, float_output{y.data(), 16, scale.data(), nullptr});
    reference::binary_conv2d(s2, k2v, mv, batch, float_output{want_y.data(), 16, scale.data(), nullptr});
    CHECK(y == want_y);
}
