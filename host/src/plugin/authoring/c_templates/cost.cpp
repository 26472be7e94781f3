// A cost model: one cost per candidate, lowest total wins. Start from the
// native formula and change what you need.
//
// cost_plugin.h is the C binding generated from wit/ into target/bindings by
// `thermoroute plugin build`; C++ uses it as is. Arguments belong to this
// function (free them before returning); what it returns must come from
// malloc (the bindings free it after the host has copied it out). Built with
// -fno-exceptions -fno-rtti against libc++.

#include <cstdlib>
#include <span>

#include "cost_plugin.h"

namespace {

using Decision = exports_thermoroute_policy_cost_model_decision_t;
using Candidate = exports_thermoroute_policy_cost_model_candidate_t;
using Terms = exports_thermoroute_policy_cost_model_cost_terms_t;

double risk_penalty(const Decision &d, thermoroute_policy_types_target_t target) {
    if (d.qos.risk != THERMOROUTE_POLICY_TYPES_RISK_IRREVERSIBLE) return 0.0;
    switch (target) {
    case THERMOROUTE_POLICY_TYPES_TARGET_TSU: return d.penalties.tsu_irreversible;
    case THERMOROUTE_POLICY_TYPES_TARGET_GPU_SIM: return d.penalties.gpu_sim_irreversible;
    default: return 0.0;
    }
}

Terms cost(const Decision &d, const Candidate &c) {
    const auto &w = d.weights;
    const double penalty = risk_penalty(d, c.target);
    const double latency = w.latency * c.estimate.latency_p50_ms;
    const double energy = w.energy * c.estimate.energy_j;
    const double error = w.error * c.estimate.error;
    const double risk = w.risk * penalty;
    return Terms{latency, energy, error, risk, penalty, latency + energy + error + risk};
}

}  // namespace

extern "C" bool exports_thermoroute_policy_cost_model_score(
    Decision *decision, exports_thermoroute_policy_cost_model_list_candidate_t *candidates,
    exports_thermoroute_policy_cost_model_list_cost_terms_t *ret, cost_plugin_string_t *err) {
    const std::span<const Candidate> cands(candidates->ptr, candidates->len);
    ret->len = cands.size();
    ret->ptr = cands.empty() ? nullptr : static_cast<Terms *>(std::malloc(cands.size() * sizeof(Terms)));
    const bool ok = cands.empty() || ret->ptr != nullptr;
    if (ok) {
        for (size_t i = 0; i < cands.size(); i++) ret->ptr[i] = cost(*decision, cands[i]);
    } else {
        cost_plugin_string_dup(err, "out of memory");
    }
    exports_thermoroute_policy_cost_model_decision_free(decision);
    exports_thermoroute_policy_cost_model_list_candidate_free(candidates);
    return ok;
}
