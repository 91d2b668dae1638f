//! Fuzz the configuration parser: `config::parse` (what `rvs check`, the
//! start-up and SIGHUP run on the file's text) and `parse_lcores` (the
//! `[dpdk] cores` mini-language it calls).
//!
//! Input: the file's text (inputs that are not UTF-8 are skipped: the
//! director refuses such a file before parsing). Seeds: the files in
//! `configs/` and the sections of the SPEC's example (see `ci/fuzz.sh`).
//!
//! Checked: no panic; an accepted configuration has a port and validates
//! clean (what `rvs ctl` edits rely on); a refused one names at least one
//! error, each on a line of the text, each message on one line (the
//! director logs and `rvs check` prints one error per line); `parse_lcores`
//! only returns lcores below `MAX_LCORES`.
#![no_main]

use engine::config::{self, parse_lcores, MAX_LCORES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(cfg) => {
            assert!(!cfg.ports.is_empty(), "accepted without a port");
            let errors = cfg.validate();
            assert!(errors.is_empty(), "accepted but invalid: {errors:?}");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            let lines = text.lines().count().max(1);
            for e in errors.iter() {
                assert!(
                    e.line <= lines + 1,
                    "error on line {} of a {lines}-line text: {e}",
                    e.line
                );
                assert!(!e.message.contains('\n'), "multi-line message: {e:?}");
            }
        }
    }
    // The cores string alone, as `[dpdk] cores` would give it.
    if text.len() <= 256 {
        if let Ok(maps) = parse_lcores(text) {
            for m in maps {
                assert!(m.lcore < MAX_LCORES, "lcore {} out of range", m.lcore);
            }
        }
    }
});
