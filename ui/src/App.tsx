/** The shell: login gate, left navigation, top bar, and the route table. */
import { lazy, Suspense, useEffect, type ReactNode } from "react";
import { AuthProvider, useAuth } from "./auth";
import { Link, matchPath, navigate, useRoute } from "./router";
import Icon from "./components/Icon";
import Login from "./pages/Login";
import FlowsList from "./pages/Flows";

const FlowPage = lazy(() => import("./pages/Flow"));
const Executions = lazy(() => import("./pages/Executions"));
const Execution = lazy(() => import("./pages/Execution"));
const KvPage = lazy(() => import("./pages/Kv"));
const FilesPage = lazy(() => import("./pages/Files"));
const TriggersPage = lazy(() => import("./pages/Triggers"));

interface RouteDef {
  pattern: string;
  title: string;
  render: (params: Record<string, string>) => ReactNode;
}

const ROUTES: RouteDef[] = [
  { pattern: "/flows", title: "Flows", render: () => <FlowsList /> },
  { pattern: "/flows/new", title: "New flow", render: () => <FlowPage namespace="" flowId="" /> },
  { pattern: "/flows/:ns/:id", title: "Flow", render: (p) => <FlowPage namespace={p.ns} flowId={p.id} /> },
  { pattern: "/executions", title: "Executions", render: () => <Executions /> },
  { pattern: "/executions/:id", title: "Execution", render: (p) => <Execution key={p.id} id={p.id} /> },
  { pattern: "/kv", title: "KV store", render: () => <KvPage /> },
  { pattern: "/files", title: "Namespace files", render: () => <FilesPage /> },
  { pattern: "/triggers", title: "Triggers", render: () => <TriggersPage /> },
];

const NAV = [
  { href: "/flows", label: "Flows", icon: "flows" },
  { href: "/executions", label: "Executions", icon: "executions" },
  { href: "/triggers", label: "Triggers", icon: "triggers" },
  { href: "/kv", label: "KV store", icon: "kv" },
  { href: "/files", label: "Namespace files", icon: "files" },
];

function resolve(path: string): { def: RouteDef; params: Record<string, string> } | null {
  for (const def of ROUTES) {
    const params = matchPath(def.pattern, path);
    if (params) return { def, params };
  }
  return null;
}

function Shell() {
  const { path } = useRoute();
  const { me, loading, logout } = useAuth();
  const found = resolve(path);

  useEffect(() => {
    if (path === "/" || path === "") navigate("/flows", { replace: true });
  }, [path]);

  useEffect(() => {
    if (!loading && !me && path !== "/login") {
      const here = window.location.pathname + window.location.search;
      navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
    }
  }, [loading, me, path]);

  useEffect(() => {
    document.title = found ? `${found.def.title} · kray` : "kray";
  }, [found]);

  if (path === "/login") return <Login />;
  if (loading || !me) {
    return (
      <div className="login-wrap">
        <span className="spinner" />
      </div>
    );
  }

  const onLogout = async () => {
    await logout();
    navigate("/login", { replace: true });
  };

  return (
    <div className="shell">
      <nav className="nav" data-testid="nav">
        <div className="brand">
          <span className="logo" /> kray
        </div>
        <div className="section">Orchestrate</div>
        {NAV.map((item) => (
          <Link
            key={item.href}
            href={item.href}
            className={path === item.href || path.startsWith(`${item.href}/`) ? "active" : ""}
            data-testid={`nav-${item.href.slice(1)}`}
          >
            <Icon name={item.icon} /> {item.label}
          </Link>
        ))}
      </nav>
      <header className="topbar">
        <div className="crumbs">{found?.def.title ?? ""}</div>
        <div className="user">
          <span className="avatar">{me.username.slice(0, 1).toUpperCase()}</span>
          <span data-testid="current-user">{me.username}</span>
          {me.authEnabled && (
            <button className="small" data-testid="logout" onClick={onLogout}>
              Log out
            </button>
          )}
        </div>
      </header>
      <main className="main">
        <Suspense fallback={<span className="spinner" />}>
          {found ? found.def.render(found.params) : <div className="empty">Nothing at {path}</div>}
        </Suspense>
      </main>
    </div>
  );
}

export default function App() {
  return (
    <AuthProvider>
      <Shell />
    </AuthProvider>
  );
}
