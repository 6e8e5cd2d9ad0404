// Overview: the last hour of the server's own metrics (GET /api/v1/admin/metrics), refreshed every 10 s.

import { useEffect } from "react";
import { admin } from "../api";
import { LineChart } from "../charts";
import { ErrorBanner, Loading, PageHeader, Button, useAsync } from "../ui";

interface Point {
  at: number;
  requests_per_second: number;
  errors_per_second: number;
  requests: number;
  errors: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  db_connections_in_use: number;
  db_connections_idle: number;
  realtime_connections: number;
}

interface History {
  interval_seconds: number;
  window_seconds: number;
  points: Point[];
}

export function Overview() {
  const { data, error, loading, reload } = useAsync(() => admin<History>("/metrics"), []);
  useEffect(() => {
    const timer = setInterval(() => void reload(), 10_000);
    return () => clearInterval(timer);
  }, [reload]);
  useEffect(() => {
    // The benchmark's "overview rendered" moment: charts drawn from the first answer.
    if (data && !performance.getEntriesByName("overview-rendered").length) performance.mark("overview-rendered");
  }, [data]);
  const points = data?.points ?? [];
  const times = points.map((p) => p.at);
  const pick = (key: keyof Point) => points.map((p) => p[key] as number | null);
  const totals = points.reduce(
    (sum, p) => ({ requests: sum.requests + p.requests, errors: sum.errors + p.errors }),
    { requests: 0, errors: 0 },
  );
  return (
    <>
      <PageHeader title="Overview">
        <Button onClick={() => void reload()} busy={loading && data !== undefined}>
          Refresh
        </Button>
      </PageHeader>
      <p className="muted">
        The last hour of this server&apos;s metrics, sampled every {data?.interval_seconds ?? 10} s. The same
        numbers are at <code>/metrics</code> for Prometheus.
      </p>
      <ErrorBanner error={error} />
      {data === undefined && loading ? <Loading what="metrics" /> : null}
      {data ? (
        <div className="charts" data-testid="overview-charts">
          <LineChart
            title="Requests"
            unit="per second"
            times={times}
            series={[
              { name: "requests", values: pick("requests_per_second"), className: "series-1" },
              { name: "5xx errors", values: pick("errors_per_second"), className: "series-err" },
            ]}
          />
          <LineChart
            title="Latency"
            unit="ms"
            times={times}
            series={[
              { name: "p50", values: pick("p50_ms"), className: "series-1" },
              { name: "p95", values: pick("p95_ms"), className: "series-2" },
              { name: "p99", values: pick("p99_ms"), className: "series-3" },
            ]}
          />
          <LineChart
            title="Database connections"
            unit="connections"
            times={times}
            series={[
              { name: "in use", values: pick("db_connections_in_use"), className: "series-1" },
              { name: "idle", values: pick("db_connections_idle"), className: "series-2" },
            ]}
          />
          <LineChart
            title="Realtime connections"
            unit="sockets"
            times={times}
            series={[{ name: "open", values: pick("realtime_connections"), className: "series-1" }]}
          />
        </div>
      ) : null}
      {data ? (
        <p className="muted small">
          About {Math.round(totals.requests)} requests and {Math.round(totals.errors)} server errors in the window.
        </p>
      ) : null}
    </>
  );
}
