// Eligibility rules: an empty list means eligible.
//
// eligibility_plugin.h is the C binding generated from wit/ into
// target/bindings by `thermoroute plugin build`; C++ uses it as is.
// Arguments belong to this function (free them before returning); what it
// returns must come from malloc. Built with -fno-exceptions -fno-rtti.

#include <cstdlib>
#include <vector>

#include "eligibility_plugin.h"

namespace {

using Ineligible = exports_thermoroute_policy_eligibility_ineligible_t;
using Target = thermoroute_policy_types_target_t;

bool fits(thermoroute_policy_types_node_kind_t kind, Target t) {
    switch (kind) {
    case THERMOROUTE_POLICY_TYPES_NODE_KIND_SAMPLE:
        return t == THERMOROUTE_POLICY_TYPES_TARGET_TSU || t == THERMOROUTE_POLICY_TYPES_TARGET_GPU_SIM ||
               t == THERMOROUTE_POLICY_TYPES_TARGET_CPU_REF;
    case THERMOROUTE_POLICY_TYPES_NODE_KIND_TENSOR:
    case THERMOROUTE_POLICY_TYPES_NODE_KIND_NN:
        return t == THERMOROUTE_POLICY_TYPES_TARGET_CPU || t == THERMOROUTE_POLICY_TYPES_TARGET_GPU;
    default:
        return t == THERMOROUTE_POLICY_TYPES_TARGET_CPU;
    }
}

Ineligible with_text(uint8_t tag, const char *text) {
    Ineligible r{};
    r.tag = tag;
    // Every text case of the variant is a string at the same place.
    eligibility_plugin_string_dup(&r.val.unsupported_factors, text);
    return r;
}

}  // namespace

extern "C" bool exports_thermoroute_policy_eligibility_verdict(
    exports_thermoroute_policy_eligibility_node_summary_t *node,
    exports_thermoroute_policy_eligibility_qos_t *qos, Target target,
    exports_thermoroute_policy_eligibility_backend_limits_t *limits,
    exports_thermoroute_policy_eligibility_policy_context_t * /*context*/,
    exports_thermoroute_policy_eligibility_list_ineligible_t *ret, eligibility_plugin_string_t *err) {
    std::vector<Ineligible> reasons;
    if (!fits(node->kind, target)) {
        Ineligible r{};
        r.tag = EXPORTS_THERMOROUTE_POLICY_ELIGIBILITY_INELIGIBLE_UNSUPPORTED_NODE_KIND;
        r.val.unsupported_node_kind = node->kind;
        reasons.push_back(r);
    } else if (target == THERMOROUTE_POLICY_TYPES_TARGET_TSU && node->program.is_some) {
        const auto &p = node->program.val;
        if (p.n_categorical + p.n_factors + p.n_constraints > 0) {
            reasons.push_back(with_text(EXPORTS_THERMOROUTE_POLICY_ELIGIBILITY_INELIGIBLE_UNSUPPORTED_FACTORS,
                                        "the TSU runs spins with pairwise couplings only"));
        }
        if (p.n_vars > limits->max_vars) {
            Ineligible r{};
            r.tag = EXPORTS_THERMOROUTE_POLICY_ELIGIBILITY_INELIGIBLE_EXCEEDS_LIMITS;
            eligibility_plugin_string_dup(&r.val.exceeds_limits.what, "variables");
            r.val.exceeds_limits.limit = static_cast<double>(limits->max_vars);
            r.val.exceeds_limits.requested = static_cast<double>(p.n_vars);
            reasons.push_back(r);
        }
    }
    exports_thermoroute_policy_eligibility_node_summary_free(node);
    exports_thermoroute_policy_eligibility_qos_free(qos);
    ret->len = reasons.size();
    ret->ptr = nullptr;
    if (reasons.empty()) return true;
    ret->ptr = static_cast<Ineligible *>(std::malloc(reasons.size() * sizeof(Ineligible)));
    if (ret->ptr == nullptr) {
        for (auto &r : reasons) exports_thermoroute_policy_eligibility_ineligible_free(&r);
        eligibility_plugin_string_dup(err, "out of memory");
        return false;
    }
    for (size_t i = 0; i < reasons.size(); i++) ret->ptr[i] = reasons[i];
    return true;
}
