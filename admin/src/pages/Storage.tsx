// Storage browser over the public Supabase-compatible API (/storage/v1) with the dashboard's key:
// buckets, folders, upload with progress, download, delete, signed links.

import { useRef, useState, type FormEvent } from "react";
import { ApiError, errorFrom } from "../api";
import { publicApi, serviceKey } from "../serviceKey";
import { Button, Confirm, ErrorBanner, Field, Grid, Loading, Modal, Notice, PageHeader, useAction, useAsync, when } from "../ui";

interface Bucket {
  id: string;
  name: string;
  public: boolean;
  created_at: string;
}

interface Item {
  name: string;
  id: string | null; // null: a folder
  updated_at: string | null;
  metadata: { size?: number; mimetype?: string } | null;
}

const objectPath = (bucket: string, path: string) =>
  `/storage/v1/object/${encodeURIComponent(bucket)}/${path.split("/").map(encodeURIComponent).join("/")}`;

function size(bytes: number | undefined): string {
  if (bytes === undefined) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** Upload with progress: fetch cannot report it, XMLHttpRequest can. */
async function upload(bucket: string, path: string, file: File, onProgress: (fraction: number) => void): Promise<void> {
  const key = await serviceKey();
  await new Promise<void>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", objectPath(bucket, path));
    xhr.setRequestHeader("apikey", key);
    xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.setRequestHeader("x-upsert", "true");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      if (xhr.status < 300) return resolve();
      let text = `${xhr.status} ${xhr.statusText}`;
      try {
        const body = JSON.parse(xhr.responseText);
        text = body.message ?? body.error ?? text;
      } catch {
        // Not JSON.
      }
      reject(new ApiError(xhr.status, "upload_failed", text));
    };
    xhr.onerror = () => reject(new Error("The upload failed: the connection broke"));
    xhr.send(file);
  });
}

export function StorageBrowser() {
  const buckets = useAsync(async () => {
    const response = await publicApi("/storage/v1/bucket");
    return (await response.json()) as Bucket[];
  }, []);
  const [bucket, setBucket] = useState<string>("");
  const [creating, setCreating] = useState(false);
  return (
    <>
      <PageHeader title="Storage">
        <Button kind="primary" onClick={() => setCreating(true)}>
          New bucket
        </Button>
      </PageHeader>
      <ErrorBanner error={buckets.error} />
      {buckets.loading && !buckets.data ? <Loading what="buckets" /> : null}
      {buckets.data ? (
        <div className="split">
          <nav className="table-list" aria-label="Buckets">
            <h2>Buckets</h2>
            {buckets.data.length === 0 ? <p className="muted">No buckets yet.</p> : null}
            <ul className="plain">
              {buckets.data.map((b) => (
                <li key={b.id}>
                  <button type="button" className={`list-item${b.id === bucket ? " selected" : ""}`} aria-pressed={b.id === bucket} onClick={() => setBucket(b.id)}>
                    {b.name} <span className="muted small">{b.public ? "public" : "private"}</span>
                  </button>
                </li>
              ))}
            </ul>
          </nav>
          <section className="grow" aria-label="Objects">
            {bucket ? (
              <Objects key={bucket} bucket={bucket} onDeleted={() => { setBucket(""); void buckets.reload(); }} />
            ) : (
              <p className="muted">Choose a bucket.</p>
            )}
          </section>
        </div>
      ) : null}
      {creating ? (
        <NewBucket
          onClose={() => setCreating(false)}
          onCreated={(name) => {
            setCreating(false);
            setBucket(name);
            void buckets.reload();
          }}
        />
      ) : null}
    </>
  );
}

function NewBucket({ onClose, onCreated }: { onClose: () => void; onCreated: (name: string) => void }) {
  const [name, setName] = useState("");
  const [isPublic, setPublic] = useState(false);
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const done = await run(() =>
      publicApi("/storage/v1/bucket", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: name, name, public: isPublic }),
      }),
    );
    if (done) onCreated(name);
  };
  return (
    <Modal title="New bucket" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Bucket name" value={name} onChange={setName} required />
        <label className="check">
          <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.target.checked)} /> Public (anyone with the
          link reads its files)
        </label>
        <ErrorBanner error={error} />
        <div className="row end">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy}>
            Create bucket
          </Button>
        </div>
      </form>
    </Modal>
  );
}

function Objects({ bucket, onDeleted }: { bucket: string; onDeleted: () => void }) {
  const [prefix, setPrefix] = useState("");
  const items = useAsync(async () => {
    const response = await publicApi(`/storage/v1/object/list/${encodeURIComponent(bucket)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prefix, limit: 1000, offset: 0, sortBy: { column: "name", order: "asc" } }),
    });
    return (await response.json()) as Item[];
  }, [bucket, prefix]);
  const [progress, setProgress] = useState<number | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [link, setLink] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Item | "bucket" | null>(null);
  const action = useAction();
  const fileInput = useRef<HTMLInputElement>(null);

  const full = (name: string) => (prefix ? `${prefix}/${name}` : name);

  const onUpload = async (chosen: FileList | null) => {
    // A copy: the FileList empties when the input is reset below.
    const files = Array.from(chosen ?? []);
    if (!files.length) return;
    const done = await action.run(async () => {
      for (const file of files) {
        setProgress(0);
        await upload(bucket, full(file.name), file, setProgress);
      }
      return true;
    });
    setProgress(null);
    if (fileInput.current) fileInput.current.value = "";
    if (done) {
      setNotice(`Uploaded ${files.length} file${files.length === 1 ? "" : "s"}`);
      void items.reload();
    }
  };

  const download = async (item: Item) => {
    await action.run(async () => {
      const response = await publicApi(`/storage/v1/object/authenticated/${encodeURIComponent(bucket)}/${full(item.name).split("/").map(encodeURIComponent).join("/")}`);
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = item.name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      return true;
    });
  };

  const sign = async (item: Item) => {
    const answer = await action.run(async () => {
      const response = await publicApi(`/storage/v1/object/sign/${encodeURIComponent(bucket)}/${full(item.name).split("/").map(encodeURIComponent).join("/")}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ expiresIn: 3600 }),
      });
      return (await response.json()) as { signedURL?: string; signedUrl?: string };
    });
    const url = answer?.signedURL ?? answer?.signedUrl;
    if (url) setLink(new URL(url.startsWith("/storage") ? url : `/storage/v1${url}`, window.location.origin).toString());
  };

  const confirmDelete = async () => {
    if (!deleting) return;
    const what = deleting;
    const done = await action.run(async () => {
      if (what === "bucket") {
        await publicApi(`/storage/v1/bucket/${encodeURIComponent(bucket)}/empty`, { method: "POST" });
        await publicApi(`/storage/v1/bucket/${encodeURIComponent(bucket)}`, { method: "DELETE" });
      } else {
        const response = await fetch(`/storage/v1/object/${encodeURIComponent(bucket)}`, {
          method: "DELETE",
          headers: { apikey: await serviceKey(), Authorization: `Bearer ${await serviceKey()}`, "Content-Type": "application/json" },
          body: JSON.stringify({ prefixes: [full(what.name)] }),
        });
        if (!response.ok) throw await errorFrom(response);
      }
      return true;
    });
    if (done) {
      setDeleting(null);
      if (what === "bucket") onDeleted();
      else {
        setNotice(`Deleted ${what.name}`);
        void items.reload();
      }
    }
  };

  const crumbs = prefix ? prefix.split("/") : [];
  return (
    <>
      <div className="row spread">
        <nav aria-label="Folder" className="crumbs">
          <button type="button" className="linkish" onClick={() => setPrefix("")}>
            {bucket}
          </button>
          {crumbs.map((c, i) => (
            <span key={i}>
              {" / "}
              <button type="button" className="linkish" onClick={() => setPrefix(crumbs.slice(0, i + 1).join("/"))}>
                {c}
              </button>
            </span>
          ))}
        </nav>
        <div className="row">
          <label className="btn btn-primary file-button">
            Upload files
            <input ref={fileInput} type="file" multiple className="sr-only" onChange={(e) => void onUpload(e.target.files)} aria-label="Upload files" />
          </label>
          <Button kind="danger" onClick={() => setDeleting("bucket")}>
            Delete bucket
          </Button>
        </div>
      </div>
      {progress !== null ? (
        <div className="field">
          <label htmlFor="upload-progress">Uploading</label>
          <progress id="upload-progress" max={1} value={progress} />
        </div>
      ) : null}
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={items.error ?? action.error} />
      {link ? (
        <div className="banner banner-ok" role="status">
          Signed link (valid one hour): <code className="breakable" data-testid="signed-link">{link}</code>
        </div>
      ) : null}
      {items.loading && !items.data ? <Loading what="files" /> : null}
      {items.data ? (
        <Grid
          caption={`Files in ${bucket}/${prefix}`}
          columns={["name", "size", "type", "updated"]}
          rows={items.data.map((item) => ({
            name: item.id === null ? `${item.name}/` : item.name,
            size: item.id === null ? "" : size(item.metadata?.size),
            type: item.id === null ? "folder" : item.metadata?.mimetype ?? "",
            updated: when(item.updated_at),
            _item: item,
          }))}
          actions={(row) => {
            const item = row._item as Item;
            if (item.id === null) {
              return <Button onClick={() => setPrefix(full(item.name))} label={`Open folder ${item.name}`}>Open</Button>;
            }
            return (
              <div className="row">
                <Button onClick={() => void download(item)} label={`Download ${item.name}`}>Download</Button>
                <Button onClick={() => void sign(item)} label={`Signed link for ${item.name}`}>Signed link</Button>
                <Button kind="danger" onClick={() => setDeleting(item)} label={`Delete ${item.name}`}>Delete</Button>
              </div>
            );
          }}
        />
      ) : null}
      {deleting ? (
        <Confirm
          title={deleting === "bucket" ? `Delete bucket ${bucket}?` : `Delete ${deleting.name}?`}
          confirmLabel={deleting === "bucket" ? "Empty and delete bucket" : "Delete file"}
          busy={action.busy}
          error={action.error}
          onCancel={() => setDeleting(null)}
          onConfirm={() => void confirmDelete()}
        >
          <p>{deleting === "bucket" ? "Every file in the bucket is deleted, then the bucket." : "The file is deleted for good."}</p>
        </Confirm>
      ) : null}
    </>
  );
}
