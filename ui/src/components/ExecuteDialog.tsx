/**
 * The execute dialog: a form generated from the flow's declared inputs. It checks what it can
 * in the browser (required, numbers, JSON, choices) and shows the server's verdict on the field
 * it concerns; files go up in the same multipart request that creates the execution.
 */
import { useMemo, useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError, errorMessage } from "../api";
import { navigate } from "../router";
import type { Execution } from "../types";

export interface InputDecl {
  id: string;
  type: string;
  description?: string;
  displayName?: string;
  required?: boolean;
  defaults?: unknown;
  values?: unknown;
  options?: unknown;
  itemType?: string;
  min?: unknown;
  max?: unknown;
  validator?: string;
  extension?: string;
  allowCustomValue?: boolean;
  [key: string]: unknown;
}

type Values = Record<string, unknown>;

function choicesOf(input: InputDecl): string[] | null {
  let values = input.values ?? input.options;
  if (typeof values === "string") {
    try {
      values = JSON.parse(values);
    } catch {
      return null; // an expression: the server renders it
    }
  }
  if (!Array.isArray(values)) return null;
  return values.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
}

function isRequired(input: InputDecl): boolean {
  return input.required !== false && input.defaults === undefined;
}

function toText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

/** The initial form value of an input from its default. */
function initial(input: InputDecl): unknown {
  const kind = input.type.toUpperCase();
  const d = input.defaults;
  if (kind === "BOOLEAN" || kind === "BOOL") return d === true || d === "true";
  if (kind === "MULTISELECT") return Array.isArray(d) ? d.map(String) : [];
  if (kind === "FILE") return null;
  if (kind === "DATETIME" && typeof d === "string") return d.replace(/(:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/, "$1");
  return toText(d);
}

/** A browser-side check of one value; null when fine. The server has the last word. */
export function checkValue(input: InputDecl, value: unknown): string | null {
  const kind = input.type.toUpperCase();
  const empty =
    value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0);
  if (empty) return isRequired(input) && kind !== "BOOLEAN" && kind !== "BOOL" ? "required" : null;
  const text = typeof value === "string" ? value.trim() : "";
  switch (kind) {
    case "INT":
      if (!/^[-+]?\d+$/.test(text)) return "must be a whole number";
      break;
    case "FLOAT":
      if (text === "" || !Number.isFinite(Number(text))) return "must be a number";
      break;
    case "JSON":
      try {
        JSON.parse(text);
      } catch {
        return "must be valid JSON";
      }
      break;
    case "ARRAY":
      try {
        if (!Array.isArray(JSON.parse(text))) return "must be a JSON array";
      } catch {
        return "must be a JSON array, e.g. [1, 2]";
      }
      break;
    case "DURATION":
      if (!/^-?P(?!$)(\d+(\.\d+)?D)?(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$/i.test(text))
        return "must be an ISO-8601 duration, e.g. PT1H30M";
      break;
    case "EMAIL":
      if (!/^[^@\s]+@[^@\s]+\.[^@\s.]+$/.test(text)) return "must be an email address";
      break;
    case "STRING":
    case "SECRET":
      if (input.validator) {
        try {
          if (!new RegExp(`^(?:${input.validator})$`).test(String(value))) return `must match ${input.validator}`;
        } catch {
          // a pattern the browser can't read: leave it to the server
        }
      }
      break;
  }
  if ((kind === "INT" || kind === "FLOAT") && text) {
    const n = Number(text);
    if (typeof input.min === "number" && n < input.min) return `must be >= ${input.min}`;
    if (typeof input.max === "number" && n > input.max) return `must be <= ${input.max}`;
  }
  return null;
}

/** The form as multipart: text fields as typed, lists as JSON, files as uploads. */
export function toFormData(inputs: InputDecl[], values: Values): FormData {
  const form = new FormData();
  for (const input of inputs) {
    const kind = input.type.toUpperCase();
    const value = values[input.id];
    if (kind === "FILE") {
      if (value instanceof File) form.append(input.id, value, value.name);
      continue;
    }
    if (kind === "BOOLEAN" || kind === "BOOL") {
      form.append(input.id, value ? "true" : "false");
      continue;
    }
    if (kind === "MULTISELECT") {
      const list = (value as string[] | undefined) ?? [];
      if (list.length) form.append(input.id, JSON.stringify(list));
      continue;
    }
    if (typeof value === "string" && (value !== "" || kind === "STRING" || kind === "SECRET")) {
      if (value === "" && input.defaults !== undefined) continue;
      if (value === "" && !isRequired(input)) continue;
      form.append(input.id, value);
    }
  }
  return form;
}

function parseLabels(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

interface Props {
  namespace: string;
  flowId: string;
  inputs: InputDecl[];
  onClose: () => void;
}

export default function ExecuteDialog({ namespace, flowId, inputs, onClose }: Props) {
  const [values, setValues] = useState<Values>(() => Object.fromEntries(inputs.map((i) => [i.id, initial(i)])));
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [labels, setLabels] = useState("");
  const [busy, setBusy] = useState(false);

  const clientErrors = useMemo(() => {
    const errors: Record<string, string> = {};
    for (const input of inputs) {
      const problem = checkValue(input, values[input.id]);
      if (problem) errors[input.id] = problem;
    }
    return errors;
  }, [inputs, values]);

  const set = (id: string, value: unknown) => {
    setValues((prev) => ({ ...prev, [id]: value }));
    setTouched((prev) => new Set(prev).add(id));
    setServerErrors((prev) => {
      const next = { ...prev };
      delete next[id];
      return next;
    });
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setTouched(new Set(inputs.map((i) => i.id)));
    if (Object.keys(clientErrors).length) return;
    setBusy(true);
    setError(null);
    try {
      const form = toFormData(inputs, values);
      const query = new URLSearchParams();
      for (const label of parseLabels(labels)) query.append("labels", label);
      const q = query.toString();
      const execution = await api<Execution>(
        `/executions/${encodeURIComponent(namespace)}/${encodeURIComponent(flowId)}${q ? `?${q}` : ""}`,
        { method: "POST", body: form },
      );
      onClose();
      navigate(`/executions/${execution.id}`);
    } catch (reason) {
      const fieldErrors: Record<string, string> = {};
      const rest: string[] = [];
      if (reason instanceof ApiError && reason.issues?.length) {
        for (const issue of reason.issues) {
          const id = (issue.path ?? "").replace(/^inputs\./, "");
          if (inputs.some((i) => i.id === id)) fieldErrors[id] = issue.message;
          else rest.push(issue.path ? `${issue.path}: ${issue.message}` : issue.message);
        }
      }
      setServerErrors(fieldErrors);
      setError(rest.length ? rest.join("\n") : Object.keys(fieldErrors).length ? null : errorMessage(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <form className="dialog" onSubmit={submit} data-testid="execute-dialog" noValidate>
        <div className="dialog-head">
          <h2 style={{ margin: 0 }}>
            Execute <span className="muted">{namespace}.</span>
            {flowId}
          </h2>
          <button type="button" className="link" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <div className="dialog-body">
          {inputs.length === 0 && <p className="muted">This flow has no inputs.</p>}
          {inputs.map((input) => {
            const problem = serverErrors[input.id] ?? (touched.has(input.id) ? clientErrors[input.id] : undefined);
            return (
              <Field key={input.id} input={input} error={problem}>
                <InputControl input={input} value={values[input.id]} onChange={(v) => set(input.id, v)} invalid={Boolean(problem)} />
              </Field>
            );
          })}
          <label className="field">
            <span className="name">Labels</span>
            <input
              data-testid="execute-labels"
              placeholder="key:value, key2:value2"
              value={labels}
              onChange={(e) => setLabels(e.target.value)}
            />
          </label>
          {error && (
            <div className="error-box" data-testid="execute-error">
              {error}
            </div>
          )}
        </div>
        <div className="dialog-foot">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button className="primary" type="submit" disabled={busy} data-testid="execute-submit">
            {busy ? "Starting…" : "▶ Execute"}
          </button>
        </div>
      </form>
    </div>
  );
}

function Field({ input, error, children }: { input: InputDecl; error?: string; children: ReactNode }) {
  return (
    <div className={`field${error ? " field-invalid" : ""}`} style={{ marginBottom: 12 }} data-testid={`input-field-${input.id}`}>
      <label htmlFor={`input-${input.id}`} style={{ display: "flex", gap: 6, alignItems: "baseline", marginBottom: 4 }}>
        <span style={{ fontWeight: 600, fontSize: 12 }}>{input.displayName ?? input.id}</span>
        {isRequired(input) && <span style={{ color: "var(--danger)" }}>*</span>}
        <span className="tag">{input.type.toUpperCase()}{input.itemType ? `<${input.itemType}>` : ""}</span>
      </label>
      {children}
      {input.description && <div className="muted" style={{ fontSize: 12, marginTop: 3 }}>{input.description}</div>}
      {error && (
        <div className="field-error" data-testid={`input-error-${input.id}`}>
          {error}
        </div>
      )}
    </div>
  );
}

function InputControl({
  input, value, onChange, invalid,
}: { input: InputDecl; value: unknown; onChange: (value: unknown) => void; invalid: boolean }) {
  const kind = input.type.toUpperCase();
  const id = `input-${input.id}`;
  const common = { id, name: input.id, "data-testid": id, "aria-invalid": invalid };
  const text = typeof value === "string" ? value : "";
  switch (kind) {
    case "BOOLEAN":
    case "BOOL":
      return (
        <label className="switch">
          <input type="checkbox" {...common} checked={Boolean(value)} onChange={(e) => onChange(e.target.checked)} />
          <span />
        </label>
      );
    case "INT":
    case "FLOAT":
      return <input type="number" step={kind === "INT" ? 1 : "any"} {...common} value={text} onChange={(e) => onChange(e.target.value)} />;
    case "SELECT":
    case "ENUM": {
      const choices = choicesOf(input);
      if (!choices || input.allowCustomValue) {
        return (
          <>
            <input {...common} list={choices ? `${id}-list` : undefined} value={text} onChange={(e) => onChange(e.target.value)} />
            {choices && (
              <datalist id={`${id}-list`}>
                {choices.map((c) => (
                  <option key={c} value={c} />
                ))}
              </datalist>
            )}
          </>
        );
      }
      return (
        <select {...common} value={text} onChange={(e) => onChange(e.target.value)}>
          <option value="">— choose —</option>
          {choices.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      );
    }
    case "MULTISELECT": {
      const choices = choicesOf(input) ?? [];
      const selected = new Set((value as string[] | undefined) ?? []);
      return (
        <div {...common} style={{ display: "flex", flexWrap: "wrap", gap: "4px 14px" }}>
          {choices.map((c) => (
            <label key={c} style={{ display: "inline-flex", gap: 5, alignItems: "center" }}>
              <input
                type="checkbox"
                checked={selected.has(c)}
                onChange={(e) => {
                  const next = new Set(selected);
                  if (e.target.checked) next.add(c);
                  else next.delete(c);
                  onChange(choices.filter((x) => next.has(x)));
                }}
              />
              {c}
            </label>
          ))}
        </div>
      );
    }
    case "DATE":
      return <input type="date" {...common} value={text} onChange={(e) => onChange(e.target.value)} />;
    case "TIME":
      return <input type="time" step={1} {...common} value={text} onChange={(e) => onChange(e.target.value)} />;
    case "DATETIME":
      return (
        <input
          type="datetime-local"
          step={1}
          {...common}
          value={text.replace(/Z$/, "")}
          onChange={(e) => onChange(e.target.value)}
        />
      );
    case "JSON":
    case "YAML":
    case "ARRAY":
      return (
        <textarea
          rows={4}
          {...common}
          placeholder={kind === "ARRAY" ? "[1, 2, 3]" : kind === "JSON" ? '{"key": "value"}' : ""}
          value={text}
          onChange={(e) => onChange(e.target.value)}
        />
      );
    case "FILE":
      return (
        <input
          type="file"
          {...common}
          accept={input.extension ?? undefined}
          onChange={(e) => onChange(e.target.files?.[0] ?? null)}
        />
      );
    case "SECRET":
      return <input type="password" autoComplete="off" {...common} value={text} onChange={(e) => onChange(e.target.value)} />;
    case "DURATION":
      return <input {...common} placeholder="PT1H30M" value={text} onChange={(e) => onChange(e.target.value)} />;
    default:
      return <input {...common} type={kind === "EMAIL" ? "email" : kind === "URI" ? "url" : "text"} value={text} onChange={(e) => onChange(e.target.value)} />;
  }
}
