// A policy gate: allow, hold for review, or deny each effect.
//
// gate_plugin.h is the C binding generated from wit/ into target/bindings by
// `thermoroute plugin build`; C++ uses it as is. Arguments belong to this
// function (free them before returning); what it returns must come from
// malloc. Built with -fno-exceptions -fno-rtti against libc++.

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gate_plugin.h"

namespace {

using Request = exports_thermoroute_policy_gate_effect_request_t;
using Decision = exports_thermoroute_policy_gate_gate_decision_t;

std::string_view view(const gate_plugin_string_t &s) {
    return {reinterpret_cast<const char *>(s.ptr), s.len};
}

std::vector<std::string> review_reasons(const Request &r, const exports_thermoroute_policy_gate_thresholds_t &t) {
    std::vector<std::string> reasons;
    for (size_t i = 0; i < r.escalations.len; i++) reasons.emplace_back(view(r.escalations.ptr[i]));
    for (size_t i = 0; i < r.evidence.len; i++) {
        const auto &e = r.evidence.ptr[i];
        if (!e.kind.is_some || e.kind.val != THERMOROUTE_POLICY_TYPES_NODE_KIND_SAMPLE) continue;
        const std::string node(view(e.node));
        if (!e.min_ess_bulk.is_some || e.min_ess_bulk.val < t.min_ess)
            reasons.push_back(node + ": ESS below " + std::to_string(t.min_ess));
        if (!e.max_rhat.is_some || e.max_rhat.val > t.max_rhat)
            reasons.push_back(node + ": R-hat above " + std::to_string(t.max_rhat));
    }
    return reasons;
}

// A malloc'd WIT list of copies of `reasons`.
bool to_list(const std::vector<std::string> &reasons, gate_plugin_list_string_t *out) {
    out->len = reasons.size();
    out->ptr = static_cast<gate_plugin_string_t *>(std::malloc(reasons.size() * sizeof(gate_plugin_string_t)));
    if (out->ptr == nullptr) return false;
    for (size_t i = 0; i < reasons.size(); i++)
        gate_plugin_string_dup_n(&out->ptr[i], reasons[i].data(), reasons[i].size());
    return true;
}

}  // namespace

extern "C" bool exports_thermoroute_policy_gate_decide(Request *request,
                                                       exports_thermoroute_policy_gate_thresholds_t *t,
                                                       Decision *ret, gate_plugin_string_t *err) {
    bool ok = true;
    if (request->risk == THERMOROUTE_POLICY_TYPES_RISK_IRREVERSIBLE && request->evidence.len == 0) {
        ret->tag = EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_DENY;
        ok = to_list({"an irreversible effect needs evidence"}, &ret->val.deny);
    } else if (const auto reasons = review_reasons(*request, *t); reasons.empty()) {
        ret->tag = EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_ALLOW;
    } else {
        ret->tag = EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_REQUIRE_REVIEW;
        ok = to_list(reasons, &ret->val.require_review);
    }
    exports_thermoroute_policy_gate_effect_request_free(request);
    if (!ok) gate_plugin_string_dup(err, "out of memory");
    return ok;
}
