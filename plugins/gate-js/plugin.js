// A strict policy gate: every effect needs full provenance, sampling evidence
// must meet at least the irreversible class's bar whatever the risk, and
// irreversible effects always wait for a human.

function lacks(e) {
  const missing = [];
  if (e.backend == null) missing.push("backend");
  if (e.outputHash == null) missing.push("output hash");
  if (e.inputHashes.length < Number(e.inputs)) missing.push("input hashes");
  if (e.kind === "sample") {
    if (e.schedule == null) missing.push("schedule");
    if (e.programHash == null) missing.push("program hash");
  }
  return missing;
}

// An error answers with its name, message and stack: the host shows the
// stack with the fault (QuickJS guests have no console to print it).
function reported(role) {
  for (const [name, f] of Object.entries(role)) {
    role[name] = (...args) => {
      try {
        return f.apply(role, args);
      } catch (e) {
        throw e instanceof Error ? new Error(`${e.name}: ${e.message}\n${e.stack ?? ""}`) : e;
      }
    };
  }
  return role;
}

export const gate = reported({
  decide(request, thresholds) {
    const deny = [];
    if (request.evidence.length === 0) deny.push("strict gate: the effect has no evidence");
    for (const e of request.evidence) {
      const missing = lacks(e);
      if (missing.length > 0) {
        deny.push(`strict gate: missing provenance from "${e.node}": ${missing.join(", ")}`);
      }
    }
    if (deny.length > 0) return { tag: "deny", val: deny };

    const minEss = Math.max(thresholds.minEss, 400);
    const maxRhat = Math.min(thresholds.maxRhat, 1.01);
    const review = [...request.escalations];
    if (request.risk === "irreversible" || thresholds.alwaysReview) {
      review.push(`strict gate: every ${request.risk} effect needs approval`);
    }
    for (const e of request.evidence) {
      if (e.kind !== "sample") continue;
      if (e.minEssBulk == null || e.minEssBulk < minEss) {
        review.push(`strict gate: "${e.node}" min ESS ${e.minEssBulk ?? "unknown"} below ${minEss}`);
      }
      if (e.maxRhat == null || e.maxRhat > maxRhat) {
        review.push(`strict gate: "${e.node}" max R-hat ${e.maxRhat ?? "unknown"} above ${maxRhat}`);
      }
      if (e.constraintRate != null && e.constraintRate < 1) {
        review.push(`strict gate: "${e.node}" violates hard constraints in ${(1 - e.constraintRate) * 100}% of draws`);
      }
    }
    return review.length === 0 ? { tag: "allow" } : { tag: "require-review", val: review };
  },
});
