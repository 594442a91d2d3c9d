//! The socket protocol: any line gives a request or an error response, never a panic; a
//! request read serializes back to one that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metasystem::control::protocol::{parse_request, Envelope};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match parse_request(line) {
        Ok(parsed) => {
            let again = serde_json::to_string(&Envelope {
                v: 1,
                id: parsed.id.unwrap_or(0),
                deadline_ms: None,
                command: parsed.command.clone(),
            })
            .expect("a read command serializes");
            let reparsed = parse_request(&again).expect("a serialized command reads");
            assert_eq!(reparsed.command, parsed.command, "{line} -> {again}");
            let _ = parsed.command.name();
            let _ = parsed.command.is_read_only();
        }
        Err(response) => {
            assert!(!response.ok);
            assert!(response.error.is_some());
            let _ = response.to_line();
        }
    }
});
