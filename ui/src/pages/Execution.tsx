/**
 * One execution, live: a header (flow, state, duration, labels, inputs, actions) and tabs
 * for the Gantt, the topology coloured by task-run state, the logs and the outputs. The data
 * comes from two SSE streams (live.ts) and updates without reload; the tab is in the URL.
 */
import { lazy, Suspense, useEffect, useMemo, useState, type ReactNode } from "react";
import { formatDate, formatDuration } from "../hooks";
import { Link, setQuery, useRoute } from "../router";
import StateBadge from "../components/StateBadge";
import Gantt from "../components/Gantt";
import LogView from "../components/LogView";
import Outputs from "../components/Outputs";
import type { Execution as ExecutionDoc, TaskRun } from "../types";
import { TERMINAL_STATES } from "../types";
import Actions from "./execution/Actions";
import { useLiveExecution, useLogStream } from "./execution/live";
import { spanMs, toMs, valueLabel } from "./execution/model";
import "./execution/execution.css";

const ExecutionTopology = lazy(() => import("./execution/ExecutionTopology"));

const TABS = [
  { id: "gantt", label: "Gantt" },
  { id: "topology", label: "Topology" },
  { id: "logs", label: "Logs" },
  { id: "outputs", label: "Outputs" },
] as const;

/** The clock, ticking every second while `live`, so durations and running bars grow. */
function useNow(live: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    setNow(Date.now());
    if (!live) return;
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [live]);
  return now;
}

export default function Execution({ id }: { id: string }) {
  const { execution, error, replace, epoch } = useLiveExecution(id);
  const logs = useLogStream(id, epoch);
  const { query } = useRoute();
  const tab = query.get("tab") ?? "gantt";
  const [selected, setSelected] = useState<string | null>(null);
  const [logRun, setLogRun] = useState<string | null>(null);
  const live = execution !== null && !TERMINAL_STATES.has(execution.state);
  const now = useNow(live);

  if (error) {
    return (
      <div>
        <Link href="/executions">← Executions</Link>
        <div className="error-box" data-testid="execution-error">{error}</div>
      </div>
    );
  }
  if (!execution) return <span className="spinner" />;

  const showLogsOf = (runId: string) => {
    setLogRun(runId);
    setQuery({ tab: "logs" });
  };

  return (
    <div className="execution-page" data-testid="execution-page" data-state={execution.state}>
      <Header execution={execution} now={now} selected={selected} onChange={replace} />
      <div className="tabs" role="tablist">
        {TABS.map((t) => (
          <button key={t.id} role="tab" className={tab === t.id ? "active" : ""} data-testid={`tab-${t.id}`}
            onClick={() => setQuery({ tab: t.id === "gantt" ? null : t.id })}>
            {t.label}
            {t.id === "logs" && logs.lines.length > 0 && <span className="tab-count">{logs.lines.length}</span>}
          </button>
        ))}
      </div>
      {tab === "gantt" && (
        <div className="gantt-layout">
          <Gantt execution={execution} now={now} selected={selected} onSelect={setSelected} />
          {selected && (
            <TaskRunPanel execution={execution} runId={selected} now={now}
              onClose={() => setSelected(null)} onLogs={showLogsOf} />
          )}
        </div>
      )}
      {tab === "topology" && (
        <Suspense fallback={<span className="spinner" />}>
          <ExecutionTopology execution={execution} onSelect={(taskId) => {
            const run = execution.taskRuns.find((r) => r.taskId === taskId);
            if (run) setSelected(run.id);
          }} />
        </Suspense>
      )}
      {tab === "logs" && (
        <LogView executionId={execution.id} store={logs} taskRuns={execution.taskRuns}
          taskRunId={logRun} onClearTaskRun={() => setLogRun(null)} />
      )}
      {tab === "outputs" && <Outputs execution={execution} />}
    </div>
  );
}

function Header({ execution, now, selected, onChange }: {
  execution: ExecutionDoc; now: number; selected: string | null; onChange: (doc: ExecutionDoc) => void;
}) {
  const [showInputs, setShowInputs] = useState(false);
  const duration = spanMs(execution.startDate, execution.endDate, now);
  const labels = Object.entries(execution.labels ?? {});
  const inputs = Object.entries(execution.inputs ?? {});
  const flowHref = `/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}`;
  const counts = useMemo(() => countStates(execution.taskRuns), [execution.taskRuns]);
  return (
    <div className="exec-header">
      <div className="page-header">
        <div>
          <div className="exec-crumbs">
            <Link href="/executions">Executions</Link>
            <span className="muted">/</span>
            <Link href={flowHref} data-testid="execution-flow">{execution.namespace}.{execution.flowId}</Link>
          </div>
          <h1 className="exec-title">
            <span className="mono" data-testid="execution-id">{execution.id}</span>
            <StateBadge state={execution.state} />
          </h1>
        </div>
        <Actions execution={execution} selected={selected} onChange={onChange} />
      </div>
      <div className="exec-meta panel">
        <Meta label="Started">{formatDate(execution.startDate)}</Meta>
        <Meta label="Ended">{execution.endDate ? formatDate(execution.endDate) : "—"}</Meta>
        <Meta label="Duration"><span data-testid="execution-duration">{formatDuration(duration)}</span></Meta>
        <Meta label="Revision">{execution.flowRevision ?? "—"}</Meta>
        <Meta label="Task runs">
          <span data-testid="taskrun-count">{execution.taskRuns.length}</span>
          {counts.map(([state, n]) => (
            <span key={state} className="exec-count" title={state}>
              <StateBadge state={state} small /> {n}
            </span>
          ))}
        </Meta>
        {labels.length > 0 && (
          <Meta label="Labels">
            {labels.map(([k, v]) => <span key={k} className="tag" data-testid="execution-label">{k}:{String(v)}</span>)}
          </Meta>
        )}
        {execution.parentId && execution.parentId !== execution.id && (
          <Meta label="Replay of"><Link href={`/executions/${execution.parentId}`} className="mono">{execution.parentId}</Link></Meta>
        )}
        {inputs.length > 0 && (
          <Meta label="Inputs">
            <button className="link" onClick={() => setShowInputs(!showInputs)} data-testid="toggle-inputs">
              {inputs.length} input{inputs.length > 1 ? "s" : ""} {showInputs ? "▾" : "▸"}
            </button>
          </Meta>
        )}
      </div>
      {showInputs && (
        <table className="grid panel exec-inputs" data-testid="execution-inputs">
          <tbody>
            {inputs.map(([k, v]) => (
              <tr key={k}><th>{k}</th><td className="mono">{typeof v === "string" ? v : JSON.stringify(v)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {execution.error && <div className="error-box" data-testid="execution-error-text">{String(execution.error)}</div>}
    </div>
  );
}

function Meta({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="exec-meta-item">
      <div className="exec-meta-label">{label}</div>
      <div className="exec-meta-value">{children}</div>
    </div>
  );
}

function countStates(runs: TaskRun[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const run of runs) counts.set(run.state, (counts.get(run.state) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

function TaskRunPanel({ execution, runId, now, onClose, onLogs }: {
  execution: ExecutionDoc; runId: string; now: number; onClose: () => void; onLogs: (id: string) => void;
}) {
  const run = execution.taskRuns.find((r) => r.id === runId);
  if (!run) return null;
  const value = valueLabel(run);
  return (
    <aside className="panel taskrun-panel" data-testid="taskrun-panel">
      <div className="panel-head">
        <div>
          <strong>{run.taskId}</strong> {value && <span className="gantt-value">{value}</span>}
        </div>
        <button className="small" onClick={onClose} aria-label="Close">✕</button>
      </div>
      <div className="panel-body">
        <div className="taskrun-line"><StateBadge state={run.state} /> <span className="mono muted">{run.id}</span></div>
        <div className="taskrun-line">Started {formatDate(run.startDate)}</div>
        <div className="taskrun-line">Duration {formatDuration(spanMs(run.startDate, run.endDate, now))}</div>
        {run.attempts.length > 0 && <h3>Attempts</h3>}
        <ol className="taskrun-attempts">
          {run.attempts.map((a, i) => (
            <li key={i}>
              <StateBadge state={a.state} small /> {formatDuration((toMs(a.endDate) ?? now) - (toMs(a.startDate) ?? now))}
              {a.error ? <pre className="taskrun-error">{String(a.error)}</pre> : null}
            </li>
          ))}
        </ol>
        {run.error && !run.attempts.some((a) => a.error) && <pre className="taskrun-error">{String(run.error)}</pre>}
        <div className="toolbar">
          <button className="small" onClick={() => onLogs(run.id)} data-testid="taskrun-logs">Logs of this task run</button>
        </div>
      </div>
    </aside>
  );
}
