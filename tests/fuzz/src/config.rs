//! The config loader (`runtime::load::load_str`) over YAML, JSON and KrakenD files: every input
//! loads or is refused with at least one problem, each with a message; a loaded config written
//! back as JSON loads again to the same config.

use crate::Input;
use mcpgate::runtime::load::load_str;

/// The target: a format byte (even: YAML, odd: JSON), then the file.
pub fn config(data: &[u8]) {
    let mut input = Input::new(data);
    let json = input.byte() % 2 == 1;
    let text = String::from_utf8_lossy(input.rest());
    let cfg = match load_str(&text, json, "fuzz") {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused without a problem");
            for p in &e.problems {
                assert!(
                    !p.message.is_empty(),
                    "a problem without a message at {:?}",
                    p.path
                );
            }
            let _ = e.to_string();
            return;
        }
    };
    let written = match serde_json::to_string(&cfg) {
        Ok(w) => w,
        Err(e) => panic!("a loaded config cannot be written: {e}"),
    };
    // `$${` stands for a literal `${`: written back, it would be substituted a second time.
    if written.contains("${") {
        return;
    }
    let again = match load_str(&written, true, "fuzz-again") {
        Ok(c) => c,
        Err(e) => panic!("a loaded config, written as JSON, is refused: {e}\n{written}"),
    };
    match serde_json::to_string(&again) {
        Ok(w) => assert_eq!(w, written, "a loaded config reads otherwise once written"),
        Err(e) => panic!("{e}"),
    }
}
