/* Eligibility rules: an empty list means eligible.
 *
 * eligibility_plugin.h is generated from wit/ into target/bindings by
 * `thermoroute plugin build`. Arguments belong to this function (free them
 * before returning); what it returns must come from malloc. */

#include <stdlib.h>

#include "eligibility_plugin.h"

typedef exports_thermoroute_policy_eligibility_ineligible_t ineligible_t;

#define TARGET(t) THERMOROUTE_POLICY_TYPES_TARGET_##t
#define KIND(k) THERMOROUTE_POLICY_TYPES_NODE_KIND_##k
#define REASON(r) EXPORTS_THERMOROUTE_POLICY_ELIGIBILITY_INELIGIBLE_##r

static bool fits(thermoroute_policy_types_node_kind_t kind, thermoroute_policy_types_target_t t) {
    switch (kind) {
    case KIND(SAMPLE): return t == TARGET(TSU) || t == TARGET(GPU_SIM) || t == TARGET(CPU_REF);
    case KIND(TENSOR):
    case KIND(NN): return t == TARGET(CPU) || t == TARGET(GPU);
    default: return t == TARGET(CPU);
    }
}

bool exports_thermoroute_policy_eligibility_verdict(
    exports_thermoroute_policy_eligibility_node_summary_t *node,
    exports_thermoroute_policy_eligibility_qos_t *qos, thermoroute_policy_types_target_t target,
    exports_thermoroute_policy_eligibility_backend_limits_t *limits,
    exports_thermoroute_policy_eligibility_policy_context_t *context,
    exports_thermoroute_policy_eligibility_list_ineligible_t *ret, eligibility_plugin_string_t *err) {
    (void)context;
    ineligible_t reasons[2];
    size_t n = 0;
    if (!fits(node->kind, target)) {
        reasons[n].tag = REASON(UNSUPPORTED_NODE_KIND);
        reasons[n++].val.unsupported_node_kind = node->kind;
    } else if (target == TARGET(TSU) && node->program.is_some) {
        const thermoroute_policy_types_program_summary_t *p = &node->program.val;
        if (p->n_categorical + p->n_factors + p->n_constraints > 0) {
            reasons[n].tag = REASON(UNSUPPORTED_FACTORS);
            eligibility_plugin_string_dup(&reasons[n++].val.unsupported_factors,
                                          "the TSU runs spins with pairwise couplings only");
        }
        if (p->n_vars > limits->max_vars) {
            reasons[n].tag = REASON(EXCEEDS_LIMITS);
            eligibility_plugin_string_dup(&reasons[n].val.exceeds_limits.what, "variables");
            reasons[n].val.exceeds_limits.limit = (double)limits->max_vars;
            reasons[n++].val.exceeds_limits.requested = (double)p->n_vars;
        }
    }
    exports_thermoroute_policy_eligibility_node_summary_free(node);
    exports_thermoroute_policy_eligibility_qos_free(qos);
    ret->len = n;
    ret->ptr = NULL;
    if (n) {
        ret->ptr = malloc(n * sizeof *ret->ptr);
        if (!ret->ptr) {
            for (size_t i = 0; i < n; i++) exports_thermoroute_policy_eligibility_ineligible_free(&reasons[i]);
            eligibility_plugin_string_dup(err, "out of memory");
            return false;
        }
        for (size_t i = 0; i < n; i++) ret->ptr[i] = reasons[i];
    }
    return true;
}
