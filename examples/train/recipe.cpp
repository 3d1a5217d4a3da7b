// SPDX-License-Identifier: MIT
// lowbit-train: the fake-quantizer recipes (see recipe.hpp and the README's option table).
#include "recipe.hpp"

#include <lowbit/quant/ste/ste.hpp>

#include <utility>

namespace lowbit_train {

namespace {
using namespace lowbit;

/// Calls f(std::integral_constant<int, B>) for B = bits in {1, 2, 4, 8}.
template <class F>
ste::any_quantizer with_bits(int bits, F&& f)
{
    switch (bits) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 8>{});
    }
}

/// A weight quantizer of the family at `bits`; 32 bits: float (SAT's clamp for sat, none otherwise).
ste::any_quantizer weight_quantizer(std::string const& family, int bits, bool sat)
{
    if (bits >= 32) return sat ? ste::any_quantizer{ste::tanh_clamp<>{}} : ste::any_quantizer{};
    if (family == "xnor" && bits == 1) return ste::xnor_weight<>{};
    if (family == "twn" && bits == 2) return ste::twn_weight<>{};
    // lsq's signed grid and uniform's odd grid need 2 bits (compile-time checks; check_recipe rejects 1 bit).
    if (family == "lsq" && bits >= 2) return with_bits(bits, []<int B>(std::integral_constant<int, B>) {
        if constexpr (B >= 2) return ste::any_quantizer{ste::lsq<B, grid::signed_int>{}};
        return ste::any_quantizer{};
    });
    if (family == "uniform" && bits >= 2) return with_bits(bits, []<int B>(std::integral_constant<int, B>) {
        if constexpr (B >= 2) return ste::any_quantizer{ste::uniform_weight<B>{}};
        return ste::any_quantizer{};
    });
    // dorefa, pact, cg-pact (PACT quantizes weights with DoReFa), and the first / last layers of xnor / twn.
    return with_bits(bits, []<int B>(std::integral_constant<int, B>) { return ste::any_quantizer{ste::dorefa_weight<B>{}}; });
}

ste::any_quantizer activation_quantizer(std::string const& family, int bits, float alpha)
{
    if (bits >= 32 || bits == 1) return {};  // 1 bit: ste::sign_activation, named by the model type (run.hpp)
    if (family == "dorefa") return with_bits(bits, []<int B>(std::integral_constant<int, B>) {
        return ste::any_quantizer{ste::dorefa_activation<B>{}};
    });
    if (family == "lsq") return with_bits(bits, []<int B>(std::integral_constant<int, B>) {
        return ste::any_quantizer{ste::lsq<B, grid::unsigned_int>{}};
    });
    if (family == "cg-pact") return with_bits(bits, [alpha]<int B>(std::integral_constant<int, B>) {
        return ste::any_quantizer{ste::calibrated_t<ste::pact<B>>({.alpha = alpha})};
    });
    return with_bits(bits, [alpha]<int B>(std::integral_constant<int, B>) {  // pact, and the weight-only families
        return ste::any_quantizer{ste::pact<B>({.alpha = alpha})};
    });
}

} // namespace

std::string quantizer_family(config const& c)
{
    if (!c.quantizer.empty()) return c.quantizer;
    return c.method == "sat" ? "cg-pact" : "uniform";  // sat: DoReFa weights + CG-PACT; sqwa: the L2-optimal grid
}
bool uses_recipe(config const& c)
{
    return c.method == "sat" || !c.quantizer.empty() || (c.method == "sqwa" && c.act_bits < 32) || c.head == "bias";
}

std::string check_recipe(config const& c)
{
    if (c.gradient_bits != 32 && !c.distributed)
        return "--gradient-bits sets what the processes of --distributed send each other: use it with --distributed";
    if (c.shards != 0 && !c.distributed)
        return "--shards splits each batch over the processes of --distributed: use it with --distributed";
    if ((c.checkpoint_every == 0) != c.checkpoint_dir.empty())
        return "--checkpoint-every and --checkpoint-dir go together: every N steps, a checkpoint into the directory";
    if (!c.save_fp.empty() && c.method != "fp" && c.method != "sqwa")
        return "--save-fp saves a float model: use it with --method fp, or --method sqwa (after step 1)";
    if (!c.save_fp.empty() && !c.load_fp.empty() && c.method == "sqwa")
        return "--method sqwa with --load-fp skips step 1, so there is nothing for --save-fp to save";
    if (!uses_recipe(c)) {
        if (c.act_bits == 1) {  // Li et al.'s quantizers with sign activations (and the bias head): deployable
            if (c.method != "bc" && c.method != "sr" && c.method != "r")
                return "--act-bits 1 without --quantizer (sign activations, Li et al.'s weight grid) is for --method "
                       "bc, sr or r";
            if (c.bits != 1 && c.bits != 2) return "--act-bits 1 without --quantizer takes --bits 1 or 2";
            return "";
        }
        if (c.act_bits < 32)
            return "--act-bits needs --quantizer (or --method sat / sqwa); without one it may be 1 (sign activations) "
                   "with --method bc, sr or r";
        if (c.bits == 32 && c.method != "fp") return "--bits 32 (float weights) is for --method sat or fp";
        return "";
    }
    if (c.method == "sr" || c.method == "r")
        return "--quantizer trains float shadow weights through a fake quantizer: use --method bc, sat or sqwa "
               "(sr and r store only packed codes)";
    if (c.method == "fp") {
        if (!c.quantizer.empty() || c.act_bits < 32)
            return "--method fp takes no --quantizer or --act-bits; use --method sat --bits 32 for SAT on a float model";
        return "";
    }
    if (c.head == "bn") return "--quantizer and --method sat use the bias head; drop --head bn";
    std::string const f = quantizer_family(c);
    if (c.act_bits == 1 && c.method != "bc") return "--act-bits 1 (sign activations) is for --method bc";
    if (c.bits == 32 && c.method != "sat") return "--bits 32 (float weights) is for --method sat or fp";
    if (f == "xnor" && c.bits != 1) return "--quantizer xnor is binary: use --bits 1";
    if (f == "twn" && c.bits != 2) return "--quantizer twn is ternary: use --bits 2";
    if ((f == "uniform" || f == "lsq") && c.bits == 1)
        return "--quantizer " + f + " needs at least 2 bits (for 1 bit use dorefa or xnor)";
    return "";
}

recipe make_recipe(config const& c)
{
    if (c.method == "fp") return {};  // float everywhere: empty quantizers are the identity
    std::string const f = quantizer_family(c);
    bool const sat = c.method == "sat";
    int const edge = c.first_last_bits == 0 ? c.bits : c.first_last_bits;
    // Edge layers at 8 bits or more use DoReFa (xnor / twn exist only at 1 / 2 bits).
    std::string const edge_family = (f == "xnor" || f == "twn") && edge != c.bits ? "dorefa" : f;
    ste::any_quantizer hidden = weight_quantizer(f, c.bits, sat);
    if (sat && c.rescale_hidden) hidden = ste::sat_rescale<ste::any_quantizer>(std::move(hidden));
    return {.weights = std::move(hidden),
            .first = weight_quantizer(edge_family, edge, sat),
            .last = weight_quantizer(edge_family, edge, sat),
            .acts = activation_quantizer(f, c.act_bits, c.pact_alpha)};
}

} // namespace lowbit_train
