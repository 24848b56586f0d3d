/**
 * The topology of the flow revision an execution runs, its nodes coloured by the state of
 * their task runs. A node's `taskId` matches the task runs' `taskId`; a task run many times
 * (inside a ForEach) shows its most alarming state (model.statesByTaskId).
 */
import { useMemo } from "react";
import { errorMessage } from "../../api";
import { useApi } from "../../hooks";
import Topology from "../../components/Topology";
import type { Execution, FlowGraph } from "../../types";
import { statesByTaskId } from "./model";

export default function ExecutionTopology({ execution, onSelect }: {
  execution: Execution; onSelect?: (taskId: string) => void;
}) {
  const rev = execution.flowRevision ? `?revision=${execution.flowRevision}` : "";
  const graph = useApi<FlowGraph>(
    `/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}/graph${rev}`);
  const byTask = useMemo(() => statesByTaskId(execution.taskRuns), [execution.taskRuns]);
  const states = useMemo(() => {
    const out: Record<string, string> = {};
    for (const node of graph.data?.nodes ?? []) {
      const state = byTask[node.taskId];
      if (state) out[node.uid] = state;
    }
    return out;
  }, [graph.data, byTask]);
  const nodes = graph.data?.nodes;

  if (graph.error) return <div className="error-box">{errorMessage(graph.error)}</div>;
  if (!graph.data) return <span className="spinner" />;
  return (
    <div data-testid="execution-topology">
      <Topology graph={graph.data} states={states} onSelect={(uid) => {
        const node = nodes?.find((n) => n.uid === uid);
        if (node) onSelect?.(node.taskId);
      }} />
    </div>
  );
}
