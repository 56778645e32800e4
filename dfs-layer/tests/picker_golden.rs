//! Runs the golden compaction-picking cases in `testdata/picker.txt`.

use std::collections::{BTreeMap, HashSet};

use strata_dfs::key::{internal_key, ValueKind};
use strata_dfs::{pick, CompactionOptions, FileMeta, Version, VersionEdit};

fn render(p: Option<strata_dfs::CompactionPick>) -> String {
    match p {
        None => "none".into(),
        Some(p) => {
            let nums = |fs: &[std::sync::Arc<FileMeta>]| {
                fs.iter()
                    .map(|f| f.number.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!(
                "{} L{}->L{} inputs={} overlap={} bottommost={}",
                p.table_id,
                p.level,
                p.output_level,
                nums(&p.inputs),
                nums(&p.overlapping),
                p.bottommost
            )
        }
    }
}

#[test]
fn golden_compaction_picks() {
    let text = include_str!("testdata/picker.txt");
    let mut cases = 0;
    for block in text.split("\ncase ").skip(1) {
        let mut lines = block.lines();
        let name = lines.next().unwrap().trim().to_string();
        let mut opts = CompactionOptions::default();
        let mut edit = VersionEdit::default();
        let mut pointers = BTreeMap::new();
        let mut busy = HashSet::new();
        let mut expect = None;
        for line in lines
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w[0] {
                "opts" => {
                    for kv in &w[1..] {
                        let (k, v) = kv.split_once('=').unwrap();
                        let v: u64 = v.parse().unwrap();
                        match k {
                            "l0_trigger" => opts.l0_trigger = v as usize,
                            "base" => opts.level_base_bytes = v,
                            "ratio" => opts.size_ratio = v,
                            _ => panic!("unknown option {k}"),
                        }
                    }
                }
                "file" => {
                    let (lo, hi) = w[5].split_once('-').unwrap();
                    let number: u64 = w[3].parse().unwrap();
                    edit.added.push((
                        w[2].parse().unwrap(),
                        FileMeta {
                            number,
                            table_id: w[1].parse().unwrap(),
                            size: w[4].parse().unwrap(),
                            entries: 1,
                            deletes: 0,
                            min_seq: number,
                            max_seq: number,
                            smallest: internal_key(lo.as_bytes(), number, ValueKind::Put),
                            largest: internal_key(hi.as_bytes(), number, ValueKind::Put),
                            checksum: 0,
                            origin: None,
                            filter: None,
                        },
                    ));
                }
                "pointer" => {
                    pointers.insert(
                        (w[1].parse().unwrap(), w[2].parse().unwrap()),
                        w[3].as_bytes().to_vec(),
                    );
                }
                "busy" => {
                    busy.insert(w[1].parse().unwrap());
                }
                "expect" => expect = Some(w[1..].join(" ")),
                other => panic!("case {name}: unknown directive {other}"),
            }
        }
        let version = Version::default().apply(&edit);
        let got = render(pick(&version, &opts, &pointers, &busy));
        assert_eq!(got, expect.expect("case has an expect line"), "case {name}");
        cases += 1;
    }
    assert_eq!(cases, 13, "all golden cases ran");
}
