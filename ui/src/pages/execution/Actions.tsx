/**
 * What a user can do to an execution, offered only when the server would accept it: kill
 * (live), restart (FAILED, KILLED, WARNING), replay from a task run (ended; a new execution),
 * resume (PAUSED, with the paused task's onResume inputs) and change status (ended).
 * The server stays the judge: its refusal (409 and its message) is shown inline.
 */
import { useMemo, useState } from "react";
import { api, errorMessage } from "../../api";
import { navigate } from "../../router";
import type { Execution, Flow } from "../../types";
import { TERMINAL_STATES } from "../../types";
import { findTask, valueLabel } from "./model";
import ResumeForm, { type InputDecl } from "./ResumeForm";

const RESTARTABLE = new Set(["FAILED", "KILLED", "WARNING"]);
const STATUSES = ["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"];

interface Props {
  execution: Execution;
  /** The task run chosen in the Gantt: the default "replay from". */
  selected: string | null;
  onChange: (doc: Execution) => void;
}

type Panel = null | "replay" | "resume" | "status";

export default function Actions({ execution, selected, onChange }: Props) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel>(null);
  const [replayFrom, setReplayFrom] = useState<string>("");
  const [status, setStatus] = useState("SUCCESS");
  const [resumeInputs, setResumeInputs] = useState<InputDecl[] | null>(null);
  const id = encodeURIComponent(execution.id);
  const state = execution.state;
  const ended = TERMINAL_STATES.has(state);

  const call = async (run: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await run();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const kill = () => {
    if (!window.confirm("Kill this execution?")) return;
    call(async () => onChange(await api<Execution>(`/executions/${id}/kill`, { method: "DELETE" })));
  };
  const restart = () => call(async () => onChange(await api<Execution>(`/executions/${id}/restart`, { method: "POST" })));
  const replay = () => call(async () => {
    const from = replayFrom || selected || "";
    const doc = await api<Execution>(`/executions/${id}/replay${from ? `?taskRunId=${encodeURIComponent(from)}` : ""}`,
      { method: "POST" });
    setPanel(null);
    navigate(`/executions/${encodeURIComponent(doc.id)}`);
  });
  const statusChoices = STATUSES.filter((s) => s !== state);
  const chosenStatus = statusChoices.includes(status) ? status : statusChoices[0];
  const changeStatus = () => call(async () => {
    onChange(await api<Execution>(`/executions/${id}/change-status?status=${chosenStatus}`, { method: "POST" }));
    setPanel(null);
  });
  const openResume = () => call(async () => {
    const rev = execution.flowRevision ? `?revision=${execution.flowRevision}` : "";
    const flow = await api<Flow>(`/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}${rev}`);
    const paused = execution.taskRuns.filter((r) => r.state === "PAUSED");
    const decls: InputDecl[] = [];
    for (const run of paused) {
      const task = findTask(flow, run.taskId);
      const declared = task?.onResume;
      if (Array.isArray(declared)) decls.push(...(declared as InputDecl[]));
    }
    setResumeInputs(decls);
    setPanel("resume");
  });

  // Replay candidates: task runs in execution order, ForEach values shown.
  const choices = useMemo(() => execution.taskRuns.slice(0, 3000).map((r) => ({
    id: r.id, label: `${r.taskId}${valueLabel(r) ? ` [${valueLabel(r)}]` : ""} · ${r.state}`,
  })), [execution.taskRuns]);

  return (
    <div className="exec-actions" data-testid="actions">
      <div className="toolbar">
        {!ended && state !== "KILLING" && (
          <button className="danger" onClick={kill} disabled={busy} data-testid="action-kill">Kill</button>
        )}
        {state === "PAUSED" && (
          <button className="primary" onClick={openResume} disabled={busy} data-testid="action-resume">Resume…</button>
        )}
        {RESTARTABLE.has(state) && (
          <button className="primary" onClick={restart} disabled={busy} data-testid="action-restart">Restart</button>
        )}
        {ended && (
          <button onClick={() => setPanel(panel === "replay" ? null : "replay")} disabled={busy} data-testid="action-replay">
            Replay…
          </button>
        )}
        {ended && (
          <button onClick={() => setPanel(panel === "status" ? null : "status")} disabled={busy} data-testid="action-status">
            Change status…
          </button>
        )}
        {busy && <span className="spinner" />}
      </div>
      {error && <div className="error-box" data-testid="action-error">{error}</div>}
      {panel === "replay" && (
        <div className="panel exec-action-panel" data-testid="replay-panel">
          <div className="panel-body toolbar">
            <span>Replay as a new execution from</span>
            <select value={replayFrom || selected || ""} onChange={(e) => setReplayFrom(e.target.value)} data-testid="replay-from">
              <option value="">the start</option>
              {choices.map((c) => <option key={c.id} value={c.id}>{c.label}</option>)}
            </select>
            <button className="primary" onClick={replay} disabled={busy} data-testid="replay-submit">Replay</button>
            <button onClick={() => setPanel(null)}>Cancel</button>
          </div>
        </div>
      )}
      {panel === "status" && (
        <div className="panel exec-action-panel" data-testid="status-panel">
          <div className="panel-body toolbar">
            <span>Set the state to</span>
            <select value={chosenStatus} onChange={(e) => setStatus(e.target.value)} data-testid="status-select">
              {statusChoices.map((s) => <option key={s}>{s}</option>)}
            </select>
            <button className="primary" onClick={changeStatus} disabled={busy} data-testid="status-submit">Change</button>
            <button onClick={() => setPanel(null)}>Cancel</button>
          </div>
        </div>
      )}
      {panel === "resume" && resumeInputs && (
        <ResumeForm execution={execution} inputs={resumeInputs}
          onDone={(doc) => { setPanel(null); onChange(doc); }} onCancel={() => setPanel(null)} />
      )}
    </div>
  );
}
