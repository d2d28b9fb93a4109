// Replicas, in the "Training vs inference" view: under tf.distribute with several replicas and
// synchronized=False, each replica normalises with its own batch statistics and keeps its own
// copy of the moving ones. Per layer over epochs, and per channel at one epoch.

import {spreadCharts} from "./channel_pairs.js";
import {gapHeatmapCard} from "./gap_heatmap.js";
import {api} from "./model.js";
import {card, el, field, select} from "./dom.js";

const SPREAD_COLORS = ["#9467bd", "#8c564b"];

/** The "Replicas" card of the focus run, or null when it ran on one replica or logged no spread. */
export async function replicasCard({answer, run, layer, schema, picks, refresh, channelAnswer}) {
  if (answer.meta.replicas < 2) return null;
  const heatmap = gapHeatmapCard({
    answer,
    quantities: schema.replica_gaps,
    picked: schema.replica_gaps[0],
    onPick: refresh,
    title: "Per layer: replica mean spread over epochs",
    caption: "Mean over channels of (max − min of the replicas' batch means) / batch standard deviation, on the probe split across replicas.",
    view: "replicas-heatmap",
    frozenUnmeasured: true,
  });
  if (!heatmap) return null;
  const content = [heatmap];
  const [batchSpread] = Object.values(schema.replica_spreads)[0];
  const steps = channelAnswer?.meta.quantity_steps[batchSpread] ?? [];
  if (steps.length) {
    if (!steps.includes(picks.replicaStep)) picks.replicaStep = steps[steps.length - 1];
    const {arrays} = picks.replicaStep === channelAnswer.meta.step ? channelAnswer : await api.layerStep(run, layer, picks.replicaStep);
    content.push(card(`Per channel: spread across replicas, layer “${layer}”`,
      "Batch statistics: each replica's shard of the probe; moving statistics: the replicas' own copies, which drift apart unless synchronized.", [
        el("div", {class: "bn-controls"}, [
          field("Epoch", select(steps, picks.replicaStep, (v) => ((picks.replicaStep = Number(v)), refresh()), {dataset: {control: "replica-step"}})),
        ]),
        spreadCharts(arrays, schema.replica_spreads, SPREAD_COLORS),
      ], {dataset: {view: "replicas-channels"}}));
  }
  return card(`Replicas: run “${run}” on ${answer.meta.replicas} replicas`,
    "How differently the replicas normalise: ~0 with BatchNormalization(synchronized=True), which all-reduces the batch statistics.",
    content, {class: "bn-card bn-replicas", dataset: {view: "modes-replicas"}});
}
