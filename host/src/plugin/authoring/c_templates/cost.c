/* A cost model: one cost per candidate, lowest total wins. Start from the
 * native formula and change what you need.
 *
 * cost_plugin.h is generated from wit/ into target/bindings by
 * `thermoroute plugin build`. Arguments belong to this function (free them
 * before returning); what it returns must come from malloc (the bindings
 * free it after the host has copied it out). */

#include <stdlib.h>

#include "cost_plugin.h"

typedef exports_thermoroute_policy_cost_model_decision_t decision_t;
typedef exports_thermoroute_policy_cost_model_list_candidate_t candidates_t;
typedef exports_thermoroute_policy_cost_model_list_cost_terms_t terms_t;

bool exports_thermoroute_policy_cost_model_score(decision_t *decision, candidates_t *candidates,
                                                 terms_t *ret, cost_plugin_string_t *err) {
    const exports_thermoroute_policy_cost_model_weights_t w = decision->weights;
    const bool irreversible = decision->qos.risk == THERMOROUTE_POLICY_TYPES_RISK_IRREVERSIBLE;
    bool ok = true;
    ret->len = candidates->len;
    ret->ptr = ret->len ? malloc(ret->len * sizeof *ret->ptr) : NULL;
    if (ret->len && !ret->ptr) {
        cost_plugin_string_dup(err, "out of memory");
        ok = false;
    }
    for (size_t i = 0; ok && i < candidates->len; i++) {
        const exports_thermoroute_policy_cost_model_candidate_t *c = &candidates->ptr[i];
        double penalty = 0.0;
        if (irreversible && c->target == THERMOROUTE_POLICY_TYPES_TARGET_TSU)
            penalty = decision->penalties.tsu_irreversible;
        else if (irreversible && c->target == THERMOROUTE_POLICY_TYPES_TARGET_GPU_SIM)
            penalty = decision->penalties.gpu_sim_irreversible;
        double latency = w.latency * c->estimate.latency_p50_ms;
        double energy = w.energy * c->estimate.energy_j;
        double error = w.error * c->estimate.error;
        double risk = w.risk * penalty;
        ret->ptr[i] = (exports_thermoroute_policy_cost_model_cost_terms_t){
            .latency = latency,
            .energy = energy,
            .error = error,
            .risk = risk,
            .risk_penalty = penalty,
            .total = latency + energy + error + risk,
        };
    }
    exports_thermoroute_policy_cost_model_decision_free(decision);
    exports_thermoroute_policy_cost_model_list_candidate_free(candidates);
    return ok;
}
