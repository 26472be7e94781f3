// The native default cost model in JavaScript (jco componentize, QuickJS):
// wL*latency + wE*energy + wA*error + wR*risk, where hardware stochasticity
// carries a risk penalty for irreversible jobs only. Record fields arrive in
// camelCase; enums are their WIT names as strings.

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

export const costModel = reported({
  score(decision, candidates) {
    const w = decision.weights;
    return candidates.map((c) => {
      let riskPenalty = 0;
      if (decision.qos.risk === "irreversible") {
        if (c.target === "tsu") riskPenalty = decision.penalties.tsuIrreversible;
        if (c.target === "gpu-sim") riskPenalty = decision.penalties.gpuSimIrreversible;
      }
      const latency = w.latency * c.estimate.latencyP50Ms;
      const energy = w.energy * c.estimate.energyJ;
      const error = w.error * c.estimate.error;
      const risk = w.risk * riskPenalty;
      return { latency, energy, error, risk, riskPenalty, total: latency + energy + error + risk };
    });
  },
});
