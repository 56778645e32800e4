//! Helpers shared by the integration tests: every test runs against both the local-directory
//! store and the in-memory store.

use std::path::PathBuf;
use std::sync::Arc;

use strata::{Db, DbBuilder, ObjectStorage, S3Settings, Settings, Storage};

/// Which storage backend a test database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local directory (the embedded default).
    Local,
    /// The in-memory store.
    Memory,
}

/// Both backends.
pub const STORE_KINDS: [StoreKind; 2] = [StoreKind::Local, StoreKind::Memory];

/// A database home that survives reopening: a temporary directory (for the local store and
/// the WAL) and, for the in-memory kind, the store object itself.
pub struct TestHome {
    /// Backend kind.
    pub kind: StoreKind,
    /// Temporary directory, removed on drop.
    pub dir: tempfile::TempDir,
    memory: Option<Arc<dyn Storage>>,
}

impl TestHome {
    /// A fresh home.
    pub fn new(kind: StoreKind) -> Self {
        let memory: Option<Arc<dyn Storage>> = match kind {
            StoreKind::Memory => Some(Arc::new(ObjectStorage::memory().expect("memory store"))),
            StoreKind::Local => None,
        };
        TestHome {
            kind,
            dir: tempfile::tempdir().expect("tempdir"),
            memory,
        }
    }

    /// The directory table files live in, for the local kind.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The storage the database uses (for tests that damage files).
    pub fn storage(&self) -> Arc<dyn Storage> {
        match &self.memory {
            Some(m) => m.clone(),
            None => Arc::new(ObjectStorage::local(self.data_dir()).expect("local store")),
        }
    }

    /// Opens the database with `settings`; the WAL (if on) lives in the temporary directory.
    pub fn open(&self, settings: Settings) -> strata::Result<Db> {
        self.builder(settings).open()
    }

    /// A builder for the database with `settings`, for callers that add components.
    pub fn builder(&self, mut settings: Settings) -> DbBuilder {
        settings.wal_dir = Some(self.dir.path().join("wal"));
        match &self.memory {
            Some(m) => Db::builder(settings).storage(m.clone()),
            None => Db::builder(settings).path(self.dir.path()),
        }
    }
}

/// Copies the directory tree `from` to `to`, replacing `to` (for tests that damage a copy of
/// a database and restore it).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("read the source") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy a file");
        }
    }
}

/// S3 settings for a fresh prefix (named after `test`) of the test bucket `tests/run.sh`
/// starts, or `None` (a skip) when no server is configured; with `STRATA_REQUIRE_S3=1` a
/// missing server fails the test.
pub fn s3_settings(test: &str) -> Option<S3Settings> {
    let required = std::env::var("STRATA_REQUIRE_S3").is_ok_and(|v| v == "1");
    let prefix = format!(
        "{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
    );
    let s3 = S3Settings::from_env(&prefix);
    if s3.is_none() {
        assert!(
            !required,
            "STRATA_REQUIRE_S3=1 but STRATA_S3_ENDPOINT is not set"
        );
        eprintln!("{test}: no S3 server configured; skipped");
    }
    s3
}

/// This test binary run again as a child process that runs only the ignored test `name`,
/// with the environment variable `env` set to `dir` (the child's cue to do its work).
/// stderr is discarded; the caller chooses stdout and spawns it.
pub fn child_test(name: &str, env: &str, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env, dir)
    .stderr(std::process::Stdio::null());
    cmd
}
