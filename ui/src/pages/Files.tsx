/** Namespace files: a tree of a namespace's files, view a text file, upload and delete. */
import { useEffect, useMemo, useRef, useState } from "react";
import { api, API_PREFIX, errorMessage } from "../api";
import NamespacePicker, { useFirstNamespace } from "../components/NamespacePicker";
import { formatBytes, useApi, useDebounced } from "../hooks";
import { setQuery, useRoute } from "../router";
import type { NamespaceFile } from "../types";

interface TreeNode {
  name: string;
  path: string; // "/a/b" for folders, the file's path for files
  file?: NamespaceFile;
  children: Map<string, TreeNode>;
}

/** Folders from the files' paths: the API lists files, folders are their prefixes. */
export function buildTree(files: NamespaceFile[]): TreeNode {
  const root: TreeNode = { name: "", path: "/", children: new Map() };
  for (const file of files) {
    const parts = file.path.split("/").filter(Boolean);
    let node = root;
    parts.forEach((part, i) => {
      const path = `/${parts.slice(0, i + 1).join("/")}`;
      let child = node.children.get(part);
      if (!child) {
        child = { name: part, path, children: new Map() };
        node.children.set(part, child);
      }
      if (i === parts.length - 1) child.file = file;
      node = child;
    });
  }
  return root;
}

const MAX_VIEW = 512 * 1024;

function looksBinary(text: string): boolean {
  return text.slice(0, 4096).includes("\u0000");
}

export default function FilesPage() {
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

  const base = `/namespaces/${encodeURIComponent(namespace)}/files`;
  const files = useApi<NamespaceFile[]>(namespace ? `${base}/directory?path=` : null);
  const tree = useMemo(() => buildTree(files.data ?? []), [files.data]);
  const [selected, setSelected] = useState<NamespaceFile | null>(null);
  const [content, setContent] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [folder, setFolder] = useState("/");
  const upload = useRef<HTMLInputElement>(null);

  useEffect(() => {
    setSelected(null);
    setContent(null);
  }, [namespace]);

  const open = async (file: NamespaceFile) => {
    setSelected(file);
    setContent(null);
    setError(null);
    if ((file.size ?? 0) > MAX_VIEW) {
      setContent(`(${formatBytes(file.size)}: too large to show here — download it)`);
      return;
    }
    try {
      const text = await api<string>(`${base}?path=${encodeURIComponent(file.path)}`, { headers: { Accept: "*/*" } });
      const shown = typeof text === "string" ? text : JSON.stringify(text, null, 2);
      setContent(looksBinary(shown) ? "(binary file)" : shown);
    } catch (reason) {
      setError(errorMessage(reason));
    }
  };

  const onUpload = async (list: FileList | null) => {
    if (!list?.length) return;
    setError(null);
    try {
      for (const file of Array.from(list)) {
        const form = new FormData();
        form.append("fileContent", file, file.name);
        const path = `${folder.replace(/\/$/, "")}/${file.name}`;
        await api(`${base}?path=${encodeURIComponent(path)}`, { method: "POST", body: form });
      }
      files.reload();
    } catch (reason) {
      setError(errorMessage(reason));
    } finally {
      if (upload.current) upload.current.value = "";
    }
  };

  const remove = async (file: NamespaceFile) => {
    if (!window.confirm(`Delete ${file.path}?`)) return;
    try {
      await api(`${base}?path=${encodeURIComponent(file.path)}`, { method: "DELETE" });
      setSelected(null);
      setContent(null);
      files.reload();
    } catch (reason) {
      setError(errorMessage(reason));
    }
  };

  return (
    <div data-testid="files-page">
      <div className="page-header">
        <div>
          <h1>Namespace files</h1>
          <div className="sub">Scripts and data a namespace's flows can read.</div>
        </div>
        <span className="toolbar">
          <span className="muted">into</span>
          <input style={{ width: 160 }} value={folder} onChange={(e) => setFolder(e.target.value || "/")} data-testid="upload-folder" />
          <input ref={upload} type="file" multiple hidden onChange={(e) => onUpload(e.target.files)} data-testid="file-upload" />
          <button className="primary" disabled={!namespace} onClick={() => upload.current?.click()}>
            ⇪ Upload
          </button>
        </span>
      </div>
      <div className="toolbar" style={{ marginBottom: 12 }}>
        <NamespacePicker value={typed} onChange={setTyped} />
        {files.loading && <span className="spinner" />}
      </div>
      {error || files.error ? <div className="error-box">{error ?? errorMessage(files.error)}</div> : null}
      <div className="split">
        <div className="panel" style={{ overflow: "auto", maxHeight: "calc(100vh - 220px)" }}>
          {tree.children.size === 0 ? (
            <div className="empty">{namespace ? "No files." : "Pick a namespace."}</div>
          ) : (
            <ul className="tree" data-testid="files-tree">
              <Folder node={tree} selected={selected?.path ?? null} onOpen={open} onFolder={setFolder} />
            </ul>
          )}
        </div>
        <div className="panel">
          {selected ? (
            <>
              <div className="panel-head">
                <span className="mono" data-testid="file-name">{selected.path}</span>
                <span className="toolbar">
                  <span className="muted">{formatBytes(selected.size)}</span>
                  <a className="btn" href={`${API_PREFIX}${base}?path=${encodeURIComponent(selected.path)}`} download>
                    Download
                  </a>
                  <button className="danger" data-testid="file-delete" onClick={() => remove(selected)}>Delete</button>
                </span>
              </div>
              <pre className="file-view" data-testid="file-content">{content ?? "…"}</pre>
            </>
          ) : (
            <div className="empty">Select a file to view it.</div>
          )}
        </div>
      </div>
    </div>
  );
}

function Folder({
  node, selected, onOpen, onFolder,
}: { node: TreeNode; selected: string | null; onOpen: (f: NamespaceFile) => void; onFolder: (path: string) => void }) {
  const [closed, setClosed] = useState<Set<string>>(new Set());
  const entries = [...node.children.values()].sort((a, b) => {
    const af = a.file && a.children.size === 0 ? 1 : 0;
    const bf = b.file && b.children.size === 0 ? 1 : 0;
    return af - bf || a.name.localeCompare(b.name);
  });
  return (
    <>
      {entries.map((child) => {
        const isFolder = child.children.size > 0;
        if (!isFolder && child.file) {
          const file = child.file;
          return (
            <li key={child.path}>
              <div
                className={`row${selected === file.path ? " selected" : ""}`}
                data-testid={`file-${file.path}`}
                onClick={() => onOpen(file)}
              >
                <span aria-hidden="true">▤</span> {child.name}
                <span className="muted" style={{ marginLeft: "auto", fontSize: 11 }}>{formatBytes(file.size)}</span>
              </div>
            </li>
          );
        }
        const open = !closed.has(child.path);
        return (
          <li key={child.path}>
            <div
              className="row"
              data-testid={`folder-${child.path}`}
              onClick={() => {
                onFolder(child.path);
                setClosed((prev) => {
                  const next = new Set(prev);
                  if (next.has(child.path)) next.delete(child.path);
                  else next.add(child.path);
                  return next;
                });
              }}
            >
              <span aria-hidden="true">{open ? "▾" : "▸"}</span> 📁 {child.name}
            </div>
            {open && (
              <ul>
                <Folder node={child} selected={selected} onOpen={onOpen} onFolder={onFolder} />
              </ul>
            )}
          </li>
        );
      })}
    </>
  );
}
