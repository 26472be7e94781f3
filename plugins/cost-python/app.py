"""An energy-first cost model: joules dominate, latency only breaks ties.

Same terms as the native model, but the energy weight is raised to at least
1000 per joule and latency counts a hundredth as much, so a slower backend
that saves energy wins unless QoS constraints rule it out (the host enforces
those, not the cost model).
"""

from wit_world import exports
from wit_world.imports.types import Risk, Target
from wit_world.exports.cost_model import CostTerms, ModelInfo

ENERGY_FLOOR = 1000.0
LATENCY_SCALE = 0.01


class CostModel(exports.CostModel):
    def describe(self):
        # Each total below is the sum of its terms.
        return ModelInfo(additive=True)

    def score(self, decision, candidates):
        w = decision.weights
        energy_weight = max(w.energy, ENERGY_FLOOR)
        out = []
        for c in candidates:
            penalty = 0.0
            if decision.qos.risk == Risk.IRREVERSIBLE:
                if c.target == Target.TSU:
                    penalty = decision.penalties.tsu_irreversible
                elif c.target == Target.GPU_SIM:
                    penalty = decision.penalties.gpu_sim_irreversible
            latency = w.latency * LATENCY_SCALE * c.estimate.latency_p50_ms
            energy = energy_weight * c.estimate.energy_j
            error = w.error * c.estimate.error
            risk = w.risk * penalty
            out.append(CostTerms(latency, energy, error, risk, penalty, latency + energy + error + risk))
        return out
