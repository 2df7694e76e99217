//! `fuzz TARGET` runs one target under AFL++ (input from AFL's shared memory or stdin);
//! `fuzz TARGET FILE_OR_DIR...` runs the target on each file and exits non-zero on the first
//! failure (a panic), naming the file. `fuzz --list` prints the targets.

use std::path::{Path, PathBuf};

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(dir) => {
            let mut entries: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for e in entries {
                files(&e, out);
            }
        }
        Err(_) => out.push(path.to_path_buf()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: fuzz TARGET [FILE_OR_DIR...] | fuzz --list");
        std::process::exit(2);
    };
    if name == "--list" {
        for (n, _) in mcpgate_fuzz::TARGETS {
            println!("{n}");
        }
        return;
    }
    let Some(check) = mcpgate_fuzz::target(name) else {
        eprintln!("unknown target {name}");
        std::process::exit(2);
    };
    if args.len() == 1 {
        afl::fuzz!(|data: &[u8]| check(data));
        return;
    }
    let mut all = Vec::new();
    for a in &args[1..] {
        files(Path::new(a), &mut all);
    }
    for f in &all {
        let Ok(data) = std::fs::read(f) else {
            eprintln!("cannot read {}", f.display());
            std::process::exit(2);
        };
        eprintln!("{name}: {}", f.display());
        check(&data);
    }
    println!("{name}: {} inputs passed", all.len());
}
