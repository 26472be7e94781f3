/* A policy gate: allow, hold for review, or deny each effect.
 *
 * gate_plugin.h is generated from wit/ into target/bindings by
 * `thermoroute plugin build`. Arguments belong to this function (free them
 * before returning); what it returns must come from malloc. WIT strings are
 * not NUL-terminated: print them with "%.*s". */

#include <stdio.h>
#include <stdlib.h>

#include "gate_plugin.h"

typedef exports_thermoroute_policy_gate_effect_request_t request_t;
typedef exports_thermoroute_policy_gate_gate_decision_t decision_t;

/* Appends a copy of `text` to `list`; false when out of memory. */
static bool push(gate_plugin_list_string_t *list, const char *text) {
    gate_plugin_string_t *grown = realloc(list->ptr, (list->len + 1) * sizeof *grown);
    if (!grown) return false;
    list->ptr = grown;
    gate_plugin_string_dup(&list->ptr[list->len++], text);
    return true;
}

bool exports_thermoroute_policy_gate_decide(request_t *request,
                                            exports_thermoroute_policy_gate_thresholds_t *t,
                                            decision_t *ret, gate_plugin_string_t *err) {
    gate_plugin_list_string_t reasons = {NULL, 0};
    bool ok = true;
    char line[256];
    if (request->risk == THERMOROUTE_POLICY_TYPES_RISK_IRREVERSIBLE && request->evidence.len == 0) {
        ok = push(&reasons, "an irreversible effect needs evidence");
        ret->tag = EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_DENY;
        ret->val.deny = reasons;
    } else {
        for (size_t i = 0; ok && i < request->escalations.len; i++) {
            const gate_plugin_string_t *s = &request->escalations.ptr[i];
            snprintf(line, sizeof line, "%.*s", (int)s->len, (const char *)s->ptr);
            ok = push(&reasons, line);
        }
        for (size_t i = 0; ok && i < request->evidence.len; i++) {
            const exports_thermoroute_policy_gate_evidence_t *e = &request->evidence.ptr[i];
            if (!e->kind.is_some || e->kind.val != THERMOROUTE_POLICY_TYPES_NODE_KIND_SAMPLE) continue;
            int len = (int)e->node.len;
            const char *node = (const char *)e->node.ptr;
            if (!e->min_ess_bulk.is_some || e->min_ess_bulk.val < t->min_ess) {
                snprintf(line, sizeof line, "%.*s: ESS below %g", len, node, t->min_ess);
                ok = ok && push(&reasons, line);
            }
            if (!e->max_rhat.is_some || e->max_rhat.val > t->max_rhat) {
                snprintf(line, sizeof line, "%.*s: R-hat above %g", len, node, t->max_rhat);
                ok = ok && push(&reasons, line);
            }
        }
        ret->tag = reasons.len ? EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_REQUIRE_REVIEW
                               : EXPORTS_THERMOROUTE_POLICY_GATE_GATE_DECISION_ALLOW;
        if (reasons.len) ret->val.require_review = reasons;
    }
    exports_thermoroute_policy_gate_effect_request_free(request);
    if (!ok) {
        gate_plugin_list_string_free(&reasons);
        gate_plugin_string_dup(err, "out of memory");
    }
    return ok;
}
