/* A cost model that keeps batch work off a queued-up TSU.
 *
 * The native formula (wL*latency + wE*energy + wA*error + wR*risk_penalty,
 * with hardware stochasticity penalised for irreversible jobs only), except
 * that a batch job's latency on the TSU counts the TSU's queue wait
 * BATCH_TSU_QUEUE_FACTOR more times: under batch load the TSU's queue is
 * paid for thrice, so throughput work spills to GPU-simulated or CPU
 * sampling and the TSU stays free for interactive jobs. An idle TSU (no
 * wait) costs what it costs natively.
 *
 * Built by `thermoroute plugin build plugins/cost-c`: the C bindings
 * (cost_plugin.h) are generated from ../../wit/0.1.0 into target/bindings:
 * C plugins are still built against the frozen thermoroute:policy@0.1.0,
 * which the host keeps loading. */

#include <stdlib.h>

#include "cost_plugin.h"

#define BATCH_TSU_QUEUE_FACTOR 2.0

typedef exports_thermoroute_policy_cost_model_decision_t decision_t;
typedef exports_thermoroute_policy_cost_model_list_candidate_t candidates_t;
typedef exports_thermoroute_policy_cost_model_list_cost_terms_t terms_t;

static double risk_penalty(const decision_t *d, thermoroute_policy_types_target_t target) {
    if (d->qos.risk != THERMOROUTE_POLICY_TYPES_RISK_IRREVERSIBLE) return 0.0;
    switch (target) {
    case THERMOROUTE_POLICY_TYPES_TARGET_TSU: return d->penalties.tsu_irreversible;
    case THERMOROUTE_POLICY_TYPES_TARGET_GPU_SIM: return d->penalties.gpu_sim_irreversible;
    default: return 0.0;
    }
}

bool exports_thermoroute_policy_cost_model_score(decision_t *decision, candidates_t *candidates,
                                                 terms_t *ret, cost_plugin_string_t *err) {
    const exports_thermoroute_policy_cost_model_weights_t w = decision->weights;
    const bool batch = decision->qos.priority == THERMOROUTE_POLICY_TYPES_PRIORITY_BATCH;
    size_t n = candidates->len;
    /* The host frees what it receives with free(): allocate with malloc. */
    ret->ptr = n ? malloc(n * sizeof *ret->ptr) : NULL;
    ret->len = n;
    if (n && !ret->ptr) {
        cost_plugin_string_dup(err, "out of memory");
        exports_thermoroute_policy_cost_model_decision_free(decision);
        exports_thermoroute_policy_cost_model_list_candidate_free(candidates);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const exports_thermoroute_policy_cost_model_candidate_t *c = &candidates->ptr[i];
        double wait = 0.0;
        if (batch && c->target == THERMOROUTE_POLICY_TYPES_TARGET_TSU)
            wait = BATCH_TSU_QUEUE_FACTOR * c->estimate.queue_wait_ms;
        double penalty = risk_penalty(decision, c->target);
        double latency = w.latency * (c->estimate.latency_p50_ms + wait);
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
    /* Arguments belong to the callee: free them before returning. */
    exports_thermoroute_policy_cost_model_decision_free(decision);
    exports_thermoroute_policy_cost_model_list_candidate_free(candidates);
    return true;
}
