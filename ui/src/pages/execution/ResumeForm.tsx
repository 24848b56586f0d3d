/**
 * The form that resumes a PAUSED execution, generated from the paused task's `onResume`
 * input declarations (taken from the flow revision the execution runs). Values go as
 * multipart form fields (files as file parts), which the server validates like any input;
 * its per-field issues are shown next to the fields.
 */
import { useState, type FormEvent } from "react";
import { api, ApiError, errorMessage, type Issue } from "../../api";
import type { Execution } from "../../types";

export interface InputDecl {
  id: string;
  type?: string;
  required?: boolean;
  defaults?: unknown;
  description?: string;
  values?: unknown[];
  [key: string]: unknown;
}

interface Props {
  execution: Execution;
  inputs: InputDecl[];
  onDone: (doc: Execution) => void;
  onCancel: () => void;
}

function initial(decl: InputDecl): string {
  const d = decl.defaults;
  if (d === null || d === undefined) return decl.type === "BOOLEAN" ? "false" : "";
  return typeof d === "string" ? d : JSON.stringify(d);
}

export default function ResumeForm({ execution, inputs, onDone, onCancel }: Props) {
  const [values, setValues] = useState<Record<string, string>>(
    () => Object.fromEntries(inputs.map((i) => [i.id, initial(i)])));
  const [files, setFiles] = useState<Record<string, File | null>>({});
  const [error, setError] = useState<string | null>(null);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setIssues([]);
    const body = new FormData();
    for (const decl of inputs) {
      const file = files[decl.id];
      if (decl.type === "FILE") {
        if (file) body.append(decl.id, file, file.name);
      } else if (values[decl.id] !== "") {
        body.append(decl.id, values[decl.id]);
      }
    }
    try {
      const doc = await api<Execution>(`/executions/${encodeURIComponent(execution.id)}/resume`,
        { method: "POST", body });
      onDone(doc);
    } catch (e) {
      setError(errorMessage(e));
      if (e instanceof ApiError && e.issues) setIssues(e.issues);
    } finally {
      setBusy(false);
    }
  };

  const issueOf = (id: string) => issues.find((i) => (i.path ?? "").split(".").pop() === id ||
    (i.path ?? "").endsWith(`.${id}`) || i.path === id);

  return (
    <form className="panel resume-form" onSubmit={submit} data-testid="resume-form">
      <div className="panel-head"><h3>Resume the execution</h3></div>
      <div className="panel-body">
        {inputs.length === 0 && <p className="muted">The paused task asks for no input.</p>}
        {inputs.map((decl) => {
          const issue = issueOf(decl.id);
          return (
            <label key={decl.id} className={`field${issue ? " field-invalid" : ""}`}
              data-testid={`resume-field-${decl.id}`} data-invalid={issue ? "true" : undefined}>
              <span className="name">
                {decl.id}{decl.required !== false && decl.defaults === undefined ? " *" : ""}
                <span className="muted"> {decl.type ?? "STRING"}</span>
              </span>
              <Field decl={decl} value={values[decl.id] ?? ""}
                onChange={(v) => setValues({ ...values, [decl.id]: v })}
                onFile={(f) => setFiles({ ...files, [decl.id]: f })} />
              {decl.description && <span className="desc">{decl.description}</span>}
              {issue && <span className="err" data-testid={`resume-issue-${decl.id}`}>{issue.message}</span>}
            </label>
          );
        })}
        {error && <div className="error-box" data-testid="resume-error">{error}</div>}
        <div className="toolbar">
          <button type="submit" className="primary" disabled={busy} data-testid="resume-submit">Resume</button>
          <button type="button" onClick={onCancel}>Cancel</button>
        </div>
      </div>
    </form>
  );
}

function Field({ decl, value, onChange, onFile }: {
  decl: InputDecl; value: string; onChange: (v: string) => void; onFile: (f: File | null) => void;
}) {
  const name = `resume-${decl.id}`;
  switch ((decl.type ?? "STRING").toUpperCase()) {
    case "BOOLEAN":
    case "BOOL":
      return (
        <select name={name} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      );
    case "SELECT":
    case "ENUM":
      return (
        <select name={name} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">—</option>
          {(decl.values ?? []).map((v) => <option key={String(v)} value={String(v)}>{String(v)}</option>)}
        </select>
      );
    case "INT":
    case "FLOAT":
      return <input name={name} type="number" step={decl.type === "INT" ? 1 : "any"} value={value}
        onChange={(e) => onChange(e.target.value)} />;
    case "DATETIME":
    case "DATE":
    case "TIME":
      return <input name={name} value={value} placeholder={decl.type === "DATE" ? "2026-01-31" : "2026-01-31T12:00:00Z"}
        onChange={(e) => onChange(e.target.value)} />;
    case "JSON":
    case "ARRAY":
    case "MULTISELECT":
      return <textarea name={name} rows={3} value={value} onChange={(e) => onChange(e.target.value)} />;
    case "FILE":
      return <input name={name} type="file" onChange={(e) => onFile(e.target.files?.[0] ?? null)} />;
    case "SECRET":
      return <input name={name} type="password" value={value} onChange={(e) => onChange(e.target.value)} />;
    default:
      return <input name={name} value={value} onChange={(e) => onChange(e.target.value)} />;
  }
}
