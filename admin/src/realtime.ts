// A minimal Supabase Realtime (Phoenix vsn 1.0.0) client for the inspector: one channel listening to
// one table's postgres_changes, heartbeats every 25 s.

export interface Change {
  schema: string;
  table: string;
  type: string;
  commit_timestamp: string;
  record?: Record<string, unknown>;
  old_record?: Record<string, unknown>;
}

export interface Watch {
  close: () => void;
}

export function watchTable(
  key: string,
  schema: string,
  table: string,
  handlers: { onStatus: (status: string) => void; onChange: (change: Change) => void },
): Watch {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ apikey: key, vsn: "1.0.0" });
  const socket = new WebSocket(`${scheme}://${window.location.host}/realtime/v1/websocket?${params}`);
  const topic = `realtime:dashboard-inspector-${schema}-${table}`;
  let ref = 0;
  const send = (event: string, payload: unknown) =>
    socket.send(JSON.stringify({ topic: event === "heartbeat" ? "phoenix" : topic, event, payload, ref: String(++ref), join_ref: "1" }));
  let heartbeat: number | undefined;
  let closed = false;
  socket.onopen = () => {
    handlers.onStatus("joining");
    send("phx_join", { config: { postgres_changes: [{ event: "*", schema, table }], broadcast: { self: false }, presence: { key: "" } } });
    heartbeat = window.setInterval(() => send("heartbeat", {}), 25_000);
  };
  socket.onmessage = (message) => {
    const frame = JSON.parse(String(message.data)) as { event: string; topic: string; payload: any };
    if (frame.event === "phx_reply" && frame.topic === topic) {
      if (frame.payload?.status === "ok") handlers.onStatus("listening");
      else handlers.onStatus(`refused: ${frame.payload?.response?.reason ?? "unknown reason"}`);
    } else if (frame.event === "postgres_changes") {
      handlers.onChange(frame.payload.data as Change);
    } else if (frame.event === "system" && frame.payload?.status === "error") {
      handlers.onStatus(`error: ${frame.payload.message ?? ""}`);
    } else if (frame.event === "phx_error" || frame.event === "phx_close") {
      handlers.onStatus("closed by the server");
    }
  };
  socket.onclose = () => {
    window.clearInterval(heartbeat);
    if (!closed) handlers.onStatus("disconnected");
  };
  socket.onerror = () => handlers.onStatus("connection failed");
  return {
    close: () => {
      closed = true;
      window.clearInterval(heartbeat);
      socket.close();
    },
  };
}
