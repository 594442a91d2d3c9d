//! The config reader: any text gives a validated tree or errors, never a panic, and every
//! error names a position inside the file (a line of it, a column within that line).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // A host identity from the environment: reading a config must not write one anywhere.
    std::env::set_var("METASYSTEM_HOST_ID", "fuzz");
    let base = std::path::Path::new("/nonexistent/fuzz");
    let Err(errors) = metasystem::config::parse(source, "f.toml", base) else {
        return;
    };
    assert!(!errors.0.is_empty(), "an error without a diagnostic");
    let lines: Vec<&str> = source.split('\n').collect();
    for e in &errors.0 {
        assert!(e.line >= 1 && e.line <= lines.len(), "{e}: {} lines", lines.len());
        let width = lines[e.line - 1].chars().count();
        assert!(e.column >= 1 && e.column <= width + 1, "{e}: line of {width}");
        assert!(!e.message.is_empty(), "{e}");
    }
});
