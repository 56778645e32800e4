//! The `strata` tool against real databases: `verify` exits 0 on a healthy database and
//! non-zero, naming the file, on each kind of damage; `info`, `dump`, `sst` and `compact`
//! print what the database holds.

use std::path::Path;
use std::process::Command;

use strata::{Db, MergeKind, Settings, TableOptions};
use strata_tests::copy_tree as copy;

fn strata(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A database with two tables in table files and more writes only in the WAL.
fn make_db(dir: &Path) {
    let s = Settings {
        wal_enabled: true,
        flush_on_close: false,
        ..Settings::small_for_tests(1 << 20)
    };
    let db = Db::open(dir, s).unwrap();
    let t = db.default_table();
    let lists = db
        .create_table("lists", TableOptions::with_merge(MergeKind::Append))
        .unwrap();
    for i in 0..3000u32 {
        db.put(&t, format!("k{i:05}").as_bytes(), &i.to_le_bytes())
            .unwrap();
        db.merge(&lists, format!("l{:03}", i % 100).as_bytes(), b"x")
            .unwrap();
    }
    db.flush().unwrap();
    db.put(&t, b"only-in-wal", b"yes").unwrap();
    db.close().unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

fn newest(dir: &Path, ext: Option<&str>) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn verify_passes_a_healthy_database_and_fails_each_kind_of_damage() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("db");
    make_db(&dir);
    let d = dir.to_str().unwrap();
    let (ok, out) = strata(&["verify", d]);
    assert!(ok, "{out}");
    assert!(out.contains("0 damaged files"), "{out}");

    let pristine = home.path().join("pristine");
    copy(&dir, &pristine);
    let damage = [
        ("table file", "data/sst", Some("sst")),
        ("manifest", "data/manifest", None),
        ("WAL", "wal", Some("log")),
    ];
    for (what, sub, ext) in damage {
        copy(&pristine, &dir);
        let f = newest(&dir.join(sub), ext);
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        flip(&f, len / 3);
        let (ok, out) = strata(&["verify", d]);
        assert!(!ok, "{what}: verify passed a damaged file\n{out}");
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            out.contains("DAMAGED") && out.contains(name),
            "{what}: the report names {name}\n{out}"
        );
    }
    // A missing table file.
    copy(&pristine, &dir);
    std::fs::remove_file(newest(&dir.join("data/sst"), Some("sst"))).unwrap();
    let (ok, out) = strata(&["verify", d]);
    assert!(!ok && out.contains("missing"), "{out}");
}

#[test]
fn info_dump_sst_and_compact_show_the_database() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("db");
    make_db(&dir);
    let d = dir.to_str().unwrap();
    let (ok, out) = strata(&["info", d]);
    assert!(ok, "{out}");
    assert!(
        out.contains("\"lists\"") && out.contains("merge Append"),
        "{out}"
    );
    // Which levels hold the files depends on background compaction and on where flushes
    // land (the deepest level without overlap); some level lists them.
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("level ") && l.contains(" files, ")),
        "{out}"
    );
    let (ok, out) = strata(&["dump", d, "--table", "default", "--prefix", "only"]);
    assert!(
        ok && out.contains("only-in-wal => yes"),
        "the WAL's writes are shown\n{out}"
    );
    let (ok, out) = strata(&[
        "dump", d, "--table", "lists", "--prefix", "6c303037", "--hex",
    ]);
    assert!(ok, "{out}");
    assert!(out.starts_with("6c303037 => 787878"), "{out}");
    let sst = newest(&dir.join("data/sst"), Some("sst"));
    let (ok, out) = strata(&["sst", sst.to_str().unwrap(), "--entries", "3"]);
    assert!(
        ok && out.contains("index:") && out.contains("entries"),
        "{out}"
    );
    let (ok, out) = strata(&["compact", d]);
    assert!(ok && out.contains("compacted \"lists\""), "{out}");
    let (ok, out) = strata(&["verify", d]);
    assert!(ok, "{out}");
    let (ok, out) = strata(&["dump", d, "--table", "nope"]);
    assert!(!ok && out.contains("no table"), "{out}");
}

#[test]
fn verify_and_info_work_on_s3() {
    let required = std::env::var("STRATA_REQUIRE_S3").is_ok_and(|v| v == "1");
    let prefix = format!("cli-{}", std::process::id());
    let Some(s3) = strata::S3Settings::from_env(&prefix) else {
        assert!(
            !required,
            "STRATA_REQUIRE_S3=1 but STRATA_S3_ENDPOINT is not set"
        );
        eprintln!("verify_and_info_work_on_s3: no S3 server configured; skipped");
        return;
    };
    let storage: std::sync::Arc<dyn strata::Storage> =
        std::sync::Arc::new(strata::ObjectStorage::s3(&s3).unwrap());
    {
        let db = Db::builder(Settings::small_for_tests(1 << 20))
            .storage(storage.clone())
            .open()
            .unwrap();
        let t = db.default_table();
        for i in 0..2000u32 {
            db.put(&t, format!("k{i:05}").as_bytes(), b"v").unwrap();
        }
        db.close().unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    let d = home.path().to_str().unwrap();
    let (ok, out) = strata(&["verify", d, "--s3-prefix", &prefix]);
    assert!(ok && out.contains("0 damaged files"), "{out}");
    let (ok, out) = strata(&["info", d, "--s3-prefix", &prefix]);
    assert!(ok && out.contains("s3 bucket"), "{out}");
    let sst = storage.list("sst/").unwrap().pop().unwrap().path;
    let mut b = storage.read_all(&sst).unwrap().to_vec();
    b[10] ^= 1;
    storage.put(&sst, b.into()).unwrap();
    let (ok, out) = strata(&["verify", d, "--s3-prefix", &prefix]);
    assert!(
        !ok && out.contains("DAMAGED") && out.contains(&sst),
        "{out}"
    );
    for o in storage.list("").unwrap() {
        storage.delete(&o.path).unwrap();
    }
}
