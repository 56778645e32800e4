//! A separate process for the cross-process lock test: opens the database in the directory
//! given as the first argument and reports what happened on stdout ("opened" or
//! "busy: <message>"), exit code 0 either way, 1 on any other error.

use strata::{Db, Error, Settings};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: open_probe DIR");
        std::process::exit(2);
    };
    match Db::open(&dir, Settings::small_for_tests(1 << 20)) {
        Ok(db) => {
            println!("opened");
            let _ = db.close();
        }
        Err(Error::Busy(m)) => println!("busy: {m}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
