// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Direct stride-1 convolution kernels on zero-padded planes, with no im2col: the forward product
/// y = W x (also the input gradient, as a convolution with flipped weights) and the weight gradient
/// dW = dY x^T. kernels/reference/plane_conv.hpp defines the arithmetic; these kernels are bit-identical to
/// it wherever the target has a fused multiply-add (`__FMA__`), for every size.
///
/// The input of output position q for tap t is `x[off[t] + q]` (reference/plane_conv.hpp says why a convolution
/// is that), so a run of consecutive positions is one unaligned vector load per tap: the patch matrix of
/// im2col is never written, which is what made the im2col + sgemm layer memory-bound (its patch matrix is
/// k*k times the input, 45 MB per 16-channel 28x28 layer at batch 100).
/// - Forward: register tiles of MR output rows by NB batches of positions. Per tap the tile loads NB
///   batches of x and broadcasts MR weights from a packed [taps x MR] panel (one cache line per tap), then
///   MR * NB fused multiply-adds: 8 x 3 = 24 accumulators on AVX-512, 4 x 3 = 12 on AVX2 and SSE.
/// - Weight gradient: tiles of GR rows of dY by GT taps, each accumulator a batch of lane sums over q
///   (8 x 3 = 24 on AVX-512, 2 x 4 on the others); the remainder of q and the lane sums (a tree) are scalar, in the
///   reference's order. The taps' loads are unaligned (two cache lines each), dY's can be aligned by the
///   caller, so the tile takes more rows of dY than taps.
/// The kernels are single-threaded: the caller (nn::conv2d) runs one image per task, which keeps one
/// image's planes in L2 and makes results independent of the thread count.

#include <lowbit/kernels/arch/fma.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace lowbit::kernels {

/// @brief Floats past `off[t] + n - 1` that plane_conv may read (and ignore): a caller's input buffer must
/// extend that far beyond its last output position's last tap. The values there never reach an output.
inline constexpr std::size_t plane_conv_overread = 64;

namespace detail {

template <class Arch>
struct plane_conv_tile {
    static constexpr std::size_t width = xsimd::batch<float, Arch>::size;
    static constexpr std::size_t mr = width >= 16 ? 8 : 4;   // forward: output rows
    static constexpr std::size_t nb = 3;                      // forward: batches of positions
    static constexpr std::size_t nr = nb * width;
    static constexpr std::size_t gr = width >= 16 ? 8 : 2;   // weight gradient: rows of dY
    static constexpr std::size_t gt = width >= 16 ? 3 : 4;   // weight gradient: taps
    static_assert(nr <= plane_conv_overread, "a forward tile would read past the documented overread");
};

/// Packed forward weights, owned by the calling thread and reused across calls.
inline std::vector<float, xsimd::aligned_allocator<float, 64>>& plane_conv_buffer()
{
    thread_local std::vector<float, xsimd::aligned_allocator<float, 64>> buffer;
    return buffer;
}

/// reference::lane_tree_sum with the lane count known: the tree unrolls into registers (in place in memory,
/// each level would wait on the stores of the one before).
template <std::size_t L>
inline float lane_tree_sum(float const* s) noexcept
{
    float v[L];
    for (std::size_t i = 0; i < L; ++i) v[i] = s[i];
    for (std::size_t h = L / 2; h >= 1; h /= 2)
        for (std::size_t i = 0; i < h; ++i) v[i] += v[i + h];
    return v[0];
}

template <class Arch, std::size_t MR, std::size_t NB>
inline void plane_conv_micro(std::size_t taps, std::ptrdiff_t const* off, float const* wp, float const* x, float* y,
                             std::size_t ldy) noexcept
{
    using batch = xsimd::batch<float, Arch>;
    constexpr std::size_t w = batch::size;
    batch acc[MR][NB];
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t j = 0; j < NB; ++j) acc[r][j] = batch(0.0f);
    for (std::size_t t = 0; t < taps; ++t, wp += MR) {
        float const* xs = x + off[t];
        batch xv[NB];
        for (std::size_t j = 0; j < NB; ++j) xv[j] = batch::load_unaligned(xs + j * w);
        for (std::size_t r = 0; r < MR; ++r) {
            batch const wv(wp[r]);
            for (std::size_t j = 0; j < NB; ++j) acc[r][j] = fused_fma(wv, xv[j], acc[r][j]);
        }
    }
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t j = 0; j < NB; ++j) acc[r][j].store_unaligned(y + r * ldy + j * w);
}

/// Lane sums of a GR x GT tile of the weight gradient over the first nvec batches of positions.
template <class Arch, std::size_t GR, std::size_t GT>
inline void plane_conv_grad_micro(std::size_t nvec, float const* const* dy, float const* const* x, float* lanes) noexcept
{
    using batch = xsimd::batch<float, Arch>;
    constexpr std::size_t w = batch::size;
    batch acc[GR][GT];
    for (std::size_t r = 0; r < GR; ++r)
        for (std::size_t t = 0; t < GT; ++t) acc[r][t] = batch(0.0f);
    for (std::size_t v = 0; v < nvec; ++v) {
        std::size_t const q = v * w;
        batch d[GR];
        for (std::size_t r = 0; r < GR; ++r) d[r] = batch::load_unaligned(dy[r] + q);
        for (std::size_t t = 0; t < GT; ++t) {
            batch const xv = batch::load_unaligned(x[t] + q);
            for (std::size_t r = 0; r < GR; ++r) acc[r][t] = fused_fma(d[r], xv, acc[r][t]);
        }
    }
    for (std::size_t r = 0; r < GR; ++r)
        for (std::size_t t = 0; t < GT; ++t) acc[r][t].store_unaligned(lanes + (r * GT + t) * w);
}

} // namespace detail

/// @brief The forward plane convolution: y[o * ldy + q] = sum over t of w[o * ldw + t] * x[off[t] + q], for
/// o < m and q < n, summed in increasing t (reference::plane_conv). Reads x up to plane_conv_overread floats
/// past each tap's last position; writes exactly the m x n outputs.
template <class Arch = xsimd::default_arch>
void plane_conv(std::size_t m, std::size_t n, std::size_t taps, std::ptrdiff_t const* off, float const* w,
                std::size_t ldw, float const* x, float* y, std::size_t ldy)
{
    using tile = detail::plane_conv_tile<Arch>;
    constexpr std::size_t mr = tile::mr, nr = tile::nr;
    if (m == 0 || n == 0) return;
    std::size_t const panels = (m + mr - 1) / mr;
    auto& buffer = detail::plane_conv_buffer();
    if (buffer.size() < panels * taps * mr) {
        buffer.clear();
        buffer.resize(panels * taps * mr);
    }
    float* const wp = buffer.data();
    for (std::size_t i = 0; i < panels * mr; ++i)
        for (std::size_t t = 0; t < taps; ++t)
            wp[((i / mr) * taps + t) * mr + i % mr] = i < m ? w[i * ldw + t] : 0.0f;

    alignas(64) float edge[mr * nr];
    for (std::size_t ip = 0; ip < panels; ++ip) {
        std::size_t const i0 = ip * mr, rows = std::min(mr, m - i0);
        float const* const panel = wp + ip * taps * mr;
        for (std::size_t q = 0; q < n; q += nr) {
            std::size_t const cols = std::min(nr, n - q);
            if (rows == mr && cols == nr) {
                detail::plane_conv_micro<Arch, mr, tile::nb>(taps, off, panel, x + q, y + i0 * ldy + q, ldy);
            } else {
                detail::plane_conv_micro<Arch, mr, tile::nb>(taps, off, panel, x + q, edge, nr);
                for (std::size_t r = 0; r < rows; ++r) std::copy_n(edge + r * nr, cols, y + (i0 + r) * ldy + q);
            }
        }
    }
}

/// @brief Whether the plane kernels are the faster way to convolve in this build: compiled with FMA for
/// 8 lanes or more, and optimised. xsimd's types are compile-time: a build for baseline x86-64 gets 4-lane
/// SSE2 without FMA, while OpenBLAS (im2col + sgemm) picks AVX2 or AVX-512 at run time; and an unoptimised
/// build (-O0) leaves every batch operation a function call (measured on the CNN of lowbit-train: 10x slower
/// than im2col + OpenBLAS). nn::execution::automatic follows this.
template <class Arch = xsimd::default_arch>
inline constexpr bool plane_conv_preferred =
#if defined(__FMA__) && defined(__OPTIMIZE__)
    xsimd::batch<float, Arch>::size >= 8;
#else
    false;
#endif

/// @brief The lane count of plane_conv_weight_grad on Arch: the `lanes` of reference::plane_conv_weight_grad.
template <class Arch = xsimd::default_arch>
inline constexpr std::size_t plane_conv_lanes = detail::plane_conv_tile<Arch>::width;

/// @brief The weight gradient of a plane convolution: dw[o * lddw + t] = sum over q < n of dy[o * lddy + q] *
/// x[off[t] + q], for o < m and t < taps, in plane_conv_lanes<Arch> interleaved partial sums
/// (reference::plane_conv_weight_grad). Reads no x or dy outside those ranges; writes (not adds) dw.
template <class Arch = xsimd::default_arch>
void plane_conv_weight_grad(std::size_t m, std::size_t n, std::size_t taps, std::ptrdiff_t const* off,
                            float const* dy, std::size_t lddy, float const* x, float* dw, std::size_t lddw)
{
    using tile = detail::plane_conv_tile<Arch>;
    constexpr std::size_t gr = tile::gr, gt = tile::gt, w = tile::width;
    if (m == 0 || taps == 0) return;
    std::size_t const nvec = n / w;
    alignas(64) float lanes[gr * gt * w];
    float const* dyr[gr];
    float const* xr[gt];
    for (std::size_t i0 = 0; i0 < m; i0 += gr) {
        std::size_t const rows = std::min(gr, m - i0);
        // Rows and taps past the end repeat the last one: valid addresses, results not stored.
        for (std::size_t r = 0; r < gr; ++r) dyr[r] = dy + (i0 + std::min(r, rows - 1)) * lddy;
        for (std::size_t t0 = 0; t0 < taps; t0 += gt) {
            std::size_t const cols = std::min(gt, taps - t0);
            for (std::size_t t = 0; t < gt; ++t) xr[t] = x + off[t0 + std::min(t, cols - 1)];
            detail::plane_conv_grad_micro<Arch, gr, gt>(nvec, dyr, xr, lanes);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t t = 0; t < cols; ++t) {
                    float* const s = lanes + (r * gt + t) * w;
                    for (std::size_t q = nvec * w; q < n; ++q) s[q - nvec * w] = std::fma(dyr[r][q], xr[t][q], s[q - nvec * w]);
                    dw[(i0 + r) * lddw + t0 + t] = detail::lane_tree_sum<w>(s);
                }
        }
    }
}

} // namespace lowbit::kernels
