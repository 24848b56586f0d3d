/** Triggers with their status, last event and errors; enable/disable and a backfill form. */
import { useState, type FormEvent } from "react";
import { api, errorMessage } from "../api";
import { formatDate } from "../hooks";
import { Link } from "../router";

export interface TriggerContext {
  namespace: string;
  flowId: string;
  triggerId: string;
  type: string;
  disabled: boolean;
  date?: string | null;
  nextExecutionDate?: string | null;
  executionId?: string | null;
  lastError?: string | null;
  backfill?: Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface TriggerView {
  abstractTrigger: Record<string, unknown>;
  triggerContext: TriggerContext;
}

function shortType(type: string): string {
  return type.split(".").pop() ?? type;
}

function ref(c: TriggerContext) {
  return { namespace: c.namespace, flowId: c.flowId, triggerId: c.triggerId };
}

export default function TriggersTable({
  triggers, onChanged, showFlow = true,
}: { triggers: TriggerView[]; onChanged: () => void; showFlow?: boolean }) {
  const [error, setError] = useState<string | null>(null);
  const [backfillFor, setBackfillFor] = useState<TriggerContext | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const act = async (key: string, call: () => Promise<unknown>) => {
    setBusy(key);
    setError(null);
    try {
      await call();
      onChanged();
    } catch (reason) {
      setError(errorMessage(reason));
    } finally {
      setBusy(null);
    }
  };

  const toggle = (c: TriggerContext) =>
    act(`toggle-${c.triggerId}`, () => api("/triggers", { method: "PUT", json: { ...ref(c), disabled: !c.disabled } }));

  return (
    <>
      {error && <div className="error-box" data-testid="triggers-error">{error}</div>}
      <div className="panel">
        <table className="grid" data-testid="triggers-table">
          <thead>
            <tr>
              {showFlow && <th>Flow</th>}
              <th>Trigger</th>
              <th>Type</th>
              <th>Enabled</th>
              <th>Last event</th>
              <th>Next</th>
              <th>Last execution</th>
              <th>Backfill</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {triggers.map(({ triggerContext: c }) => {
              const key = `${c.namespace}/${c.flowId}/${c.triggerId}`;
              const bf = c.backfill;
              return (
                <tr key={key} data-testid={`trigger-row-${c.flowId}-${c.triggerId}`}>
                  {showFlow && (
                    <td>
                      <Link href={`/flows/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.flowId)}`}>
                        <span className="muted">{c.namespace}.</span>
                        {c.flowId}
                      </Link>
                    </td>
                  )}
                  <td>
                    <strong>{c.triggerId}</strong>
                    {c.lastError && (
                      <div className="field-error" title={c.lastError} data-testid="trigger-last-error">
                        ⚠ {c.lastError.length > 90 ? `${c.lastError.slice(0, 89)}…` : c.lastError}
                      </div>
                    )}
                  </td>
                  <td>
                    <span className="tag" title={c.type}>{shortType(c.type)}</span>
                  </td>
                  <td>
                    <label className="switch" title={c.disabled ? "Disabled: click to enable" : "Enabled: click to disable"}>
                      <input
                        type="checkbox"
                        data-testid={`trigger-toggle-${c.triggerId}`}
                        checked={!c.disabled}
                        disabled={busy === `toggle-${c.triggerId}`}
                        onChange={() => toggle(c)}
                      />
                      <span />
                    </label>
                  </td>
                  <td className="muted">{formatDate(c.date)}</td>
                  <td className="muted">{formatDate(c.nextExecutionDate)}</td>
                  <td>{c.executionId ? <Link href={`/executions/${c.executionId}`} className="mono">{c.executionId.slice(0, 10)}</Link> : <span className="muted">—</span>}</td>
                  <td>
                    {bf ? (
                      <span className="toolbar">
                        <span className="tag">{bf.paused ? "paused" : "running"} · {formatDate(bf.currentDate as string | undefined)}</span>
                        <button className="small" onClick={() => act(`bf-${key}`, () => api(`/triggers/backfill/${bf.paused ? "unpause" : "pause"}`, { method: "PUT", json: ref(c) }))}>
                          {bf.paused ? "Resume" : "Pause"}
                        </button>
                        <button className="small danger" onClick={() => act(`bf-${key}`, () => api("/triggers/backfill/delete", { method: "POST", json: ref(c) }))}>
                          Delete
                        </button>
                      </span>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td>
                    {c.type.toLowerCase().includes("schedule") && !bf && (
                      <button className="small" data-testid={`backfill-${c.triggerId}`} onClick={() => setBackfillFor(c)}>
                        Backfill…
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
            {triggers.length === 0 && (
              <tr>
                <td colSpan={showFlow ? 9 : 8} className="empty">
                  No triggers.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {backfillFor && (
        <BackfillDialog
          trigger={backfillFor}
          onClose={() => setBackfillFor(null)}
          onDone={() => {
            setBackfillFor(null);
            onChanged();
          }}
        />
      )}
    </>
  );
}

function localToIso(value: string): string {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

function BackfillDialog({ trigger, onClose, onDone }: { trigger: TriggerContext; onClose: () => void; onDone: () => void }) {
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [inputs, setInputs] = useState("{}");
  const [labels, setLabels] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    let parsedInputs: unknown;
    try {
      parsedInputs = JSON.parse(inputs || "{}");
      if (typeof parsedInputs !== "object" || parsedInputs === null || Array.isArray(parsedInputs)) throw new Error();
    } catch {
      setError("inputs: must be a JSON object");
      return;
    }
    if (!start) {
      setError("start: required");
      return;
    }
    const labelMap: Record<string, string> = {};
    for (const part of labels.split(/[\n,]/).map((s) => s.trim()).filter(Boolean)) {
      const [k, ...v] = part.split(":");
      labelMap[k.trim()] = v.join(":").trim();
    }
    setBusy(true);
    setError(null);
    try {
      await api("/triggers", {
        method: "PUT",
        json: {
          namespace: trigger.namespace, flowId: trigger.flowId, triggerId: trigger.triggerId,
          backfill: { start: localToIso(start), end: end ? localToIso(end) : null, inputs: parsedInputs, labels: labelMap },
        },
      });
      onDone();
    } catch (reason) {
      setError(errorMessage(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <form className="dialog" onSubmit={submit} data-testid="backfill-dialog">
        <div className="dialog-head">
          <h2 style={{ margin: 0 }}>Backfill {trigger.flowId} · {trigger.triggerId}</h2>
          <button type="button" className="link" onClick={onClose}>✕</button>
        </div>
        <div className="dialog-body">
          <p className="muted" style={{ marginTop: 0 }}>
            Runs the schedule for every tick between start and end (end empty: up to now).
          </p>
          <label className="field">
            <span className="name">Start *</span>
            <input type="datetime-local" step={1} data-testid="backfill-start" value={start} onChange={(e) => setStart(e.target.value)} />
          </label>
          <label className="field">
            <span className="name">End</span>
            <input type="datetime-local" step={1} data-testid="backfill-end" value={end} onChange={(e) => setEnd(e.target.value)} />
          </label>
          <label className="field">
            <span className="name">Inputs (JSON)</span>
            <textarea rows={3} data-testid="backfill-inputs" value={inputs} onChange={(e) => setInputs(e.target.value)} />
          </label>
          <label className="field">
            <span className="name">Labels</span>
            <input placeholder="key:value, key2:value2" value={labels} onChange={(e) => setLabels(e.target.value)} />
          </label>
          {error && <div className="error-box" data-testid="backfill-error">{error}</div>}
        </div>
        <div className="dialog-foot">
          <button type="button" onClick={onClose}>Cancel</button>
          <button className="primary" type="submit" disabled={busy} data-testid="backfill-submit">Start backfill</button>
        </div>
      </form>
    </div>
  );
}
