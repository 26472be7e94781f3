// The native default cost model in JavaScript (jco componentize, QuickJS):
// wL*latency + wE*energy + wA*error + wR*risk, where hardware stochasticity
// carries a risk penalty for irreversible jobs only. Record fields arrive in
// camelCase; enums are their WIT names as strings.

export const costModel = {
  // Each total below is the sum of its terms.
  describe() {
    return { additive: true };
  },

  // decision also carries the job (decision.job), the node's budget share
  // (decision.share) and every device's queue and health (decision.devices).
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
};
