//! The narrow storage trait every Strata file goes through, and its implementations over
//! `object_store`: a local directory (the embedded default), in-memory (tests) and
//! S3-compatible object storage.
//!
//! Contract of [`Storage`]:
//! - objects are written whole and are immutable once written; a `put` that returns `Ok` is
//!   complete, one that fails leaves either no object or the previous one (never a prefix);
//! - `read` returns exactly the requested range or an error, never a partial read;
//! - every method is safe to call concurrently from many threads;
//! - paths are `/`-separated and relative to the store's root.
//!
//! The async `object_store` API stays inside this module: [`ObjectStorage`] owns a small
//! tokio runtime and blocks on it, so callers must not call it from inside an async runtime.
//! For the local directory, ranged reads (the hot path: block reads) skip the runtime and use
//! positional reads on cached file handles; writes, lists and deletes go through
//! `object_store` for every backend.

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// How the caller intends to read after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadHint {
    /// A point lookup: fetch exactly the range.
    #[default]
    Random,
    /// A sequential scan follows: the caller asks for `ahead` bytes beyond the range to be
    /// fetched in the same request. [`read_with_hint`] implements this for every backend.
    Sequential {
        /// Bytes past the requested range worth fetching now.
        ahead: u64,
    },
}

/// An object's path and size, as returned by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the store's root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A store of immutable objects. See the module documentation for the contract.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes the whole object at `path`, replacing any previous one atomically.
    fn put(&self, path: &str, data: Bytes) -> Result<()>;
    /// Writes the whole object at `path` only if no object exists there, atomically with
    /// respect to other writers (a conditional create: S3's `If-None-Match: *`, a no-clobber
    /// link locally). Returns false, having written nothing, if one exists. Manifest
    /// generations are written this way, which fences out a writer that lost its lease.
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool>;
    /// Reads exactly `range` of the object; an out-of-range request is an error.
    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes>;
    /// Reads the whole object.
    fn read_all(&self, path: &str) -> Result<Bytes>;
    /// Lists objects whose path starts with `prefix` (a directory-like prefix ending in `/`,
    /// or empty for everything), sorted by path.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Deletes the object; deleting a missing object is not an error.
    fn delete(&self, path: &str) -> Result<()>;
    /// Size of the object in bytes.
    fn size(&self, path: &str) -> Result<u64>;
    /// Makes the object at `path` (and its name) survive a power loss. A no-op where a
    /// successful `put` is already durable (object stores, memory); for a local directory,
    /// an fsync of the file and of its directory. The engine calls it after every table
    /// file and manifest write when `wal_sync` is set, before anything refers to the object.
    fn sync(&self, _path: &str) -> Result<()> {
        Ok(())
    }
    /// True if the store is remote (reads cost a network round trip); the engine enables the
    /// block cache's local-disk tier only for remote stores.
    fn is_remote(&self) -> bool {
        false
    }
    /// Where `path` lives below this store's prefix, as (the identity of the underlying
    /// bucket or directory, the full object key), for server-side copies between two
    /// stores over one bucket; `None` if the store cannot say.
    fn object_key(&self, _path: &str) -> Option<(String, String)> {
        None
    }
    /// Copies `from` of `source` to `to` of this store without moving the bytes through
    /// this process, when both are over the same bucket (S3's `CopyObject`); returns false,
    /// having done nothing, when they are not.
    fn copy_from(&self, _source: &dyn Storage, _from: &str, _to: &str) -> Result<bool> {
        Ok(false)
    }
    /// A name for where the objects live, the same for every handle on the same objects:
    /// `file:///abs/dir`, `s3://bucket/prefix?endpoint=...`, `memory://<n>`. Manifests record
    /// it for files a database reads from another store (a checkpoint it was restored from);
    /// [`StoreSet`] resolves it back to a handle.
    fn location(&self) -> String;
}

/// Handles on the stores a database reads foreign files from, by [`Storage::location`].
/// `file://` locations resolve without registration; others (S3 needs credentials, a
/// memory store has no name outside this process) must be added.
#[derive(Debug, Clone, Default)]
pub struct StoreSet {
    stores: std::collections::HashMap<String, Arc<dyn Storage>>,
    /// Where remote stores' files are mirrored locally, and how many bytes at most.
    mirror: Option<(PathBuf, u64)>,
    mirrors: std::collections::HashMap<String, Arc<crate::mirror::Mirror>>,
}

impl StoreSet {
    /// Mirrors the files read from remote stores into `dir` (up to `max_bytes`; see
    /// [`crate::mirror::Mirror`]). Takes effect for stores resolved afterwards.
    pub fn set_mirror(&mut self, dir: PathBuf, max_bytes: u64) {
        self.mirror = Some((dir, max_bytes));
    }

    /// Registers `mirror` as the handle (and mirror) of its store's location.
    pub fn add_mirror(&mut self, mirror: Arc<crate::mirror::Mirror>) {
        let loc = mirror.location();
        self.stores.insert(loc.clone(), mirror.clone());
        self.mirrors.insert(loc, mirror);
    }

    /// The mirror of the store at `location`, if it has one.
    pub fn mirror_of(&self, location: &str) -> Option<Arc<crate::mirror::Mirror>> {
        self.mirrors.get(location).cloned()
    }

    /// Registers `storage` under its location.
    pub fn add(&mut self, storage: Arc<dyn Storage>) {
        self.stores.insert(storage.location(), storage);
    }

    /// The handle for `location`, opening a local directory on first use; a remote store
    /// comes wrapped in its mirror when one is set.
    pub fn resolve(&mut self, location: &str) -> Result<Arc<dyn Storage>> {
        if let Some(m) = self.mirrors.get(location) {
            return Ok(m.clone());
        }
        if let Some(s) = self.stores.get(location) {
            if let (Some((dir, max)), true) = (&self.mirror, s.is_remote()) {
                let sub = dir.join(format!(
                    "{:016x}",
                    crate::bloom::hash64(location.as_bytes())
                ));
                let m = Arc::new(crate::mirror::Mirror::new(s.clone(), sub, *max)?);
                self.mirrors.insert(location.to_string(), m.clone());
                return Ok(m);
            }
            return Ok(s.clone());
        }
        if let Some(dir) = location.strip_prefix("file://") {
            let s: Arc<dyn Storage> = Arc::new(ObjectStorage::local(dir)?);
            self.stores.insert(location.to_string(), s.clone());
            return Ok(s);
        }
        Err(Error::invalid(format!(
            "the database reads files from {location}, which is not registered: \
             add that store with DbBuilder::external_store"
        )))
    }
}

/// Reads `range` of `path`, fetching up to `hint`'s read-ahead beyond it in the same request
/// (clamped to `object_size`). Returns the bytes fetched, which start at `range.start`.
pub fn read_with_hint(
    storage: &dyn Storage,
    path: &str,
    range: Range<u64>,
    object_size: u64,
    hint: ReadHint,
) -> Result<Bytes> {
    let end = match hint {
        ReadHint::Random => range.end,
        ReadHint::Sequential { ahead } => range.end.saturating_add(ahead).min(object_size),
    };
    storage.read(path, range.start..end.max(range.end))
}

/// S3-compatible object storage settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Settings {
    /// Endpoint URL, e.g. `http://127.0.0.1:18333`; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Allow plain `http://` endpoints (test servers).
    pub allow_http: bool,
    /// Key prefix inside the bucket under which this store lives.
    pub prefix: String,
}

impl S3Settings {
    /// Reads settings from `STRATA_S3_ENDPOINT`, `STRATA_S3_BUCKET`, `STRATA_S3_REGION`,
    /// `STRATA_S3_ACCESS_KEY_ID` and `STRATA_S3_SECRET_ACCESS_KEY`; `None` if the endpoint or
    /// bucket is unset. Plain HTTP is allowed for `http://` endpoints.
    pub fn from_env(prefix: &str) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = var("STRATA_S3_ENDPOINT")?;
        Some(S3Settings {
            allow_http: endpoint.starts_with("http://"),
            endpoint: Some(endpoint),
            bucket: var("STRATA_S3_BUCKET")?,
            region: var("STRATA_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("STRATA_S3_ACCESS_KEY_ID").unwrap_or_default(),
            secret_access_key: var("STRATA_S3_SECRET_ACCESS_KEY").unwrap_or_default(),
            prefix: prefix.to_string(),
        })
    }
}

/// [`Storage`] over any `object_store` backend.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    remote: bool,
    description: String,
    location: String,
    /// The identity of the bucket (or directory, or memory store) under the prefix.
    bucket: String,
    runtime: tokio::runtime::Runtime,
    /// For the local directory: ranged reads bypass the async runtime and use positional
    /// reads (`pread`) on cached file handles (the objects are immutable; a `put` or
    /// `delete` of a path drops its handle).
    local: Option<LocalReads>,
}

/// Positional reads on cached handles of files under `root`.
struct LocalReads {
    root: PathBuf,
    files: parking_lot::Mutex<std::collections::HashMap<String, Arc<std::fs::File>>>,
}

const MAX_OPEN_FILES: usize = 4096;

impl LocalReads {
    fn file(&self, path: &str) -> std::io::Result<Arc<std::fs::File>> {
        if let Some(f) = self.files.lock().get(path) {
            return Ok(f.clone());
        }
        let f = Arc::new(std::fs::File::open(self.root.join(path))?);
        let mut files = self.files.lock();
        if files.len() >= MAX_OPEN_FILES {
            files.clear();
        }
        files.insert(path.to_string(), f.clone());
        Ok(f)
    }

    fn forget(&self, path: &str) {
        self.files.lock().remove(path);
    }

    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(path.to_string()),
            std::io::ErrorKind::UnexpectedEof => Error::io(
                format!("read {path} {range:?}"),
                "short read: the range ends past the end of the object",
            ),
            _ => Error::io(format!("read {path} {range:?}"), e),
        };
        let f = self.file(path).map_err(io)?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        f.read_exact_at(&mut buf, range.start).map_err(io)?;
        Ok(Bytes::from(buf))
    }
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl ObjectStorage {
    fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        remote: bool,
        description: String,
        location: String,
        bucket: String,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the I/O runtime", e))?;
        let prefix = prefix.trim_matches('/').to_string();
        Ok(ObjectStorage {
            store,
            prefix,
            remote,
            description,
            location,
            bucket,
            runtime,
            local: None,
        })
    }

    /// A local directory, created if missing. This is the embedded default.
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir: PathBuf = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::io(format!("opening {}", dir.display()), e))?
            .with_automatic_cleanup(true);
        let mut s = Self::with_store(
            Arc::new(store),
            "",
            false,
            format!("local directory {}", dir.display()),
            format!("file://{}", dir.display()),
            format!("file://{}", dir.display()),
        )?;
        s.local = Some(LocalReads {
            root: dir,
            files: Default::default(),
        });
        Ok(s)
    }

    /// A fresh in-memory store (for tests); its contents vanish when it is dropped.
    pub fn memory() -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::with_store(
            Arc::new(object_store::memory::InMemory::new()),
            "",
            false,
            format!("in-memory store {n}"),
            format!("memory://{}/{n}", std::process::id()),
            format!("memory://{}/{n}", std::process::id()),
        )
    }

    /// An S3-compatible object store. Requests are path-style.
    pub fn s3(settings: &S3Settings) -> Result<Self> {
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_allow_http(settings.allow_http)
            .with_virtual_hosted_style_request(false);
        if let Some(ep) = &settings.endpoint {
            b = b.with_endpoint(ep);
        }
        let store = b
            .build()
            .map_err(|e| Error::invalid(format!("S3 settings: {e}")))?;
        let desc = format!(
            "s3 bucket {} at {}",
            settings.bucket,
            settings.endpoint.as_deref().unwrap_or("aws")
        );
        let location = format!(
            "s3://{}/{}?endpoint={}",
            settings.bucket,
            settings.prefix.trim_matches('/'),
            settings.endpoint.as_deref().unwrap_or("aws")
        );
        let bucket = format!(
            "s3://{}?endpoint={}",
            settings.bucket,
            settings.endpoint.as_deref().unwrap_or("aws")
        );
        Self::with_store(
            Arc::new(store),
            &settings.prefix,
            true,
            desc,
            location,
            bucket,
        )
    }

    fn full_path(&self, path: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(path)
        } else {
            Path::from(format!("{}/{}", self.prefix, path))
        }
    }

    fn map_err(&self, op: &str, path: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
            other => Error::io(format!("{op} {path} on {}", self.description), other),
        }
    }
}

impl Storage for ObjectStorage {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        if let Some(l) = &self.local {
            l.forget(path);
        }
        let p = self.full_path(path);
        self.runtime
            .block_on(self.store.put(&p, data.into()))
            .map(|_| ())
            .map_err(|e| self.map_err("put", path, e))
    }

    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        if let Some(l) = &self.local {
            l.forget(path);
        }
        let p = self.full_path(path);
        let opts = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .runtime
            .block_on(self.store.put_opts(&p, data.into(), opts))
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.map_err("conditional put", path, e)),
        }
    }

    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        if range.start > range.end {
            return Err(Error::invalid(format!("bad range {range:?} for {path}")));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        if let Some(l) = &self.local {
            return l.read(path, range);
        }
        let want = range.end - range.start;
        let p = self.full_path(path);
        let got = self
            .runtime
            .block_on(self.store.get_range(&p, range.clone()))
            .map_err(|e| self.map_err("read", path, e))?;
        if got.len() as u64 != want {
            return Err(Error::io(
                format!("read {path} {range:?}"),
                format!("short read: {} of {want} bytes", got.len()),
            ));
        }
        Ok(got)
    }

    fn read_all(&self, path: &str) -> Result<Bytes> {
        let p = self.full_path(path);
        self.runtime
            .block_on(async { self.store.get(&p).await?.bytes().await })
            .map_err(|e| self.map_err("read", path, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // object_store lists by path segment; list the enclosing directory and filter by the
        // raw string prefix so that `prefix` may also end in a partial file name.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let root = if dir.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.full_path(dir))
        };
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(root.as_ref()).try_collect())
            .map_err(|e| self.map_err("list", prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let loc = m.location.to_string();
                let rel = loc.get(strip..)?;
                rel.starts_with(prefix).then(|| ObjectInfo {
                    path: rel.to_string(),
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<()> {
        if let Some(l) = &self.local {
            l.forget(path);
        }
        let p = self.full_path(path);
        match self.runtime.block_on(self.store.delete(&p)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err("delete", path, e)),
        }
    }

    fn sync(&self, path: &str) -> Result<()> {
        let Some(l) = &self.local else {
            return Ok(());
        };
        let file = l.root.join(path);
        let io = |e: std::io::Error| Error::io(format!("fsync {}", file.display()), e);
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        let dir = file.parent().unwrap_or(&l.root);
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    fn size(&self, path: &str) -> Result<u64> {
        let p = self.full_path(path);
        self.runtime
            .block_on(self.store.head(&p))
            .map(|m| m.size)
            .map_err(|e| self.map_err("head", path, e))
    }

    fn is_remote(&self) -> bool {
        self.remote
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn object_key(&self, path: &str) -> Option<(String, String)> {
        Some((self.bucket.clone(), self.full_path(path).to_string()))
    }

    fn copy_from(&self, source: &dyn Storage, from: &str, to: &str) -> Result<bool> {
        let Some((bucket, key)) = source.object_key(from) else {
            return Ok(false);
        };
        if bucket != self.bucket {
            return Ok(false);
        }
        if let Some(l) = &self.local {
            l.forget(to);
        }
        let to_path = self.full_path(to);
        self.runtime
            .block_on(self.store.copy(&Path::from(key), &to_path))
            .map_err(|e| self.map_err("copy to", to, e))?;
        Ok(true)
    }
}
