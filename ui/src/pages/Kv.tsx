/** The KV store of a namespace: list, view, add, edit (typed values, TTL) and delete. */
import { useEffect, useState, type FormEvent } from "react";
import { api, errorMessage, qs } from "../api";
import NamespacePicker, { useFirstNamespace } from "../components/NamespacePicker";
import { formatDate, useApi, useDebounced } from "../hooks";
import { setQuery, useRoute } from "../router";
import type { KVEntry } from "../types";

const KV_TYPES = ["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"];

function display(entry: KVEntry): string {
  if (typeof entry.value === "string") return entry.value;
  return JSON.stringify(entry.value, null, 2);
}

export default function KvPage() {
  const { query } = useRoute();
  const first = useFirstNamespace();
  const [typed, setTyped] = useState(query.get("namespace") ?? "");
  const namespace = useDebounced(typed, 300);
  useEffect(() => {
    if (!typed && first) setTyped(first);
  }, [first, typed]);
  useEffect(() => {
    setQuery({ namespace: namespace || null });
  }, [namespace]);

  const entries = useApi<KVEntry[]>(namespace ? `/namespaces/${encodeURIComponent(namespace)}/kv` : null);
  const [editing, setEditing] = useState<KVEntry | "new" | null>(null);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string | null>(null);

  const remove = async (key: string) => {
    if (!window.confirm(`Delete the key “${key}”?`)) return;
    try {
      await api(`/namespaces/${encodeURIComponent(namespace)}/kv/${encodeURIComponent(key)}`, { method: "DELETE" });
      entries.reload();
    } catch (reason) {
      setError(errorMessage(reason));
    }
  };

  const list = (entries.data ?? []).filter((e) => !filter || e.key.toLowerCase().includes(filter.toLowerCase()));

  return (
    <div data-testid="kv-page">
      <div className="page-header">
        <div>
          <h1>KV store</h1>
          <div className="sub">Typed key-value pairs a namespace's flows read with kv() and write with the KV tasks.</div>
        </div>
        <button className="primary" data-testid="kv-add" disabled={!namespace} onClick={() => setEditing("new")}>
          + Add key
        </button>
      </div>
      <div className="toolbar" style={{ marginBottom: 12 }}>
        <NamespacePicker value={typed} onChange={setTyped} />
        <input className="search" placeholder="Filter keys…" value={filter} onChange={(e) => setFilter(e.target.value)} data-testid="kv-filter" />
        {entries.loading && <span className="spinner" />}
      </div>
      {error || entries.error ? <div className="error-box">{error ?? errorMessage(entries.error)}</div> : null}
      <div className="panel">
        <table className="grid" data-testid="kv-table">
          <thead>
            <tr>
              <th>Key</th>
              <th>Type</th>
              <th>Value</th>
              <th>Expires</th>
              <th>Updated</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((entry) => (
              <tr key={entry.key} data-testid={`kv-row-${entry.key}`}>
                <td className="mono"><strong>{entry.key}</strong></td>
                <td><span className="tag">{entry.type}</span></td>
                <td>
                  <div className="kv-value" data-testid={`kv-value-${entry.key}`}>{display(entry)}</div>
                </td>
                <td className="muted">{entry.expiresAt ? formatDate(entry.expiresAt) : "never"}</td>
                <td className="muted">{formatDate(entry.updated)}</td>
                <td style={{ textAlign: "right", whiteSpace: "nowrap" }}>
                  <button className="small" data-testid={`kv-edit-${entry.key}`} onClick={() => setEditing(entry)}>Edit</button>{" "}
                  <button className="small danger" data-testid={`kv-delete-${entry.key}`} onClick={() => remove(entry.key)}>Delete</button>
                </td>
              </tr>
            ))}
            {!entries.loading && list.length === 0 && (
              <tr><td colSpan={6} className="empty">{namespace ? "No keys in this namespace." : "Pick a namespace."}</td></tr>
            )}
          </tbody>
        </table>
      </div>
      {editing && (
        <KvDialog
          namespace={namespace}
          entry={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            entries.reload();
          }}
        />
      )}
    </div>
  );
}

function KvDialog({ namespace, entry, onClose, onSaved }: { namespace: string; entry: KVEntry | null; onClose: () => void; onSaved: () => void }) {
  const [key, setKey] = useState(entry?.key ?? "");
  const [type, setType] = useState(entry?.type ?? "STRING");
  const [value, setValue] = useState(entry ? display(entry) : "");
  const [ttl, setTtl] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!key.trim()) return setError("key: required");
    let body: string;
    if (type === "STRING" || type === "DATETIME" || type === "DATE" || type === "DURATION") {
      body = JSON.stringify(value);
    } else {
      try {
        JSON.parse(value);
      } catch {
        return setError(`value: not valid ${type === "JSON" ? "JSON" : type.toLowerCase()}`);
      }
      body = value;
    }
    setBusy(true);
    setError(null);
    try {
      await api(`/namespaces/${encodeURIComponent(namespace)}/kv/${encodeURIComponent(key.trim())}${qs({ type, ttl })}`, {
        method: "PUT",
        body,
        headers: { "Content-Type": "application/json" },
      });
      onSaved();
    } catch (reason) {
      setError(errorMessage(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <form className="dialog" onSubmit={submit} data-testid="kv-dialog">
        <div className="dialog-head">
          <h2 style={{ margin: 0 }}>{entry ? `Edit ${entry.key}` : "Add a key"}</h2>
          <button type="button" className="link" onClick={onClose}>✕</button>
        </div>
        <div className="dialog-body">
          <label className="field">
            <span className="name">Key</span>
            <input data-testid="kv-key" value={key} disabled={Boolean(entry)} onChange={(e) => setKey(e.target.value)} />
          </label>
          <label className="field">
            <span className="name">Type</span>
            <select data-testid="kv-type" value={type} onChange={(e) => setType(e.target.value)}>
              {KV_TYPES.map((t) => <option key={t}>{t}</option>)}
            </select>
          </label>
          <label className="field">
            <span className="name">Value</span>
            <textarea data-testid="kv-value-input" rows={type === "JSON" ? 8 : 3} value={value} onChange={(e) => setValue(e.target.value)} />
          </label>
          <label className="field">
            <span className="name">Time to live</span>
            <input data-testid="kv-ttl" placeholder="PT1H, or seconds; empty: never expires" value={ttl} onChange={(e) => setTtl(e.target.value)} />
          </label>
          {error && <div className="error-box" data-testid="kv-error">{error}</div>}
        </div>
        <div className="dialog-foot">
          <button type="button" onClick={onClose}>Cancel</button>
          <button className="primary" type="submit" disabled={busy} data-testid="kv-save">Save</button>
        </div>
      </form>
    </div>
  );
}
